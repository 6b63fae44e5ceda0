//! Whose clock a deadline is measured on.
//!
//! Redis enforces every expiry with *its own* clock, so every deadline the stores ask it to enforce
//! must be in Redis's clock too. The application hosts' clocks are not: an OAuth server fleet runs on
//! many machines, any of which may be seconds (or, misconfigured, hours) off. Writing a deadline
//! computed on a skewed host into `PXAT` shifts it by the skew, and a deadline that lands in Redis's
//! past deletes the key on the spot (`GETEX ... PXAT <past>` deletes: the session-store bug this
//! module exists to prevent).
//!
//! Two clocks, then:
//! - [`HostClock`]: this host's wall clock as the stores read it. Production uses
//!   [`HostClock::system`]; tests inject an offset ([`HostClock::with_offset`]) and may change it
//!   while the stores run ([`HostClock::set_offset_ms`]), to prove that nothing the stores promise
//!   depends on it. It is only ever a *first guess* of Redis's clock, and the guard against
//!   obviously expired input (a token whose `exp` has passed).
//! - `ServerClock` (crate-private): an estimate of Redis's clock, with its error bound, for what
//!   must be decided before Redis can be asked: a new session's absolute deadline (part of its
//!   id), and whether a read is far enough from a session's deadline to skip capping its TTL. It
//!   is anchored on the `TIME` reading (whole ms) that the create script returns every time, or
//!   that a read asks for when the store has none younger than a minute
//!   (Cristian's algorithm: Redis's reading is taken as the midpoint of the round trip, so the anchor
//!   is within half a round trip), and runs on this process's *monotonic* clock in between, so a
//!   step of the host's wall clock (NTP, a VM resume, an injected offset) does not move it. The
//!   anchor is replaced by a reading more certain than itself (its uncertainty grows by the 500 ppm
//!   a monotonic clock may drift), by one that contradicts it (Redis's clock stepped, or a failover
//!   put a primary with another clock behind the handle), when Redis refused a deadline built from
//!   it, and by a read's reading once it is a minute old.
//!
//! The estimate never decides alone: the create script checks the proposed deadline against
//! Redis's own `TIME` and refuses one off by more than the store's tolerance (nothing written, the
//! reply carries Redis's time, the store re-anchors and retries). So the bound holds by
//! construction, whatever the host's clock says.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

/// This host's wall clock as the stores read it, with an injectable offset. Cheap to clone; clones
/// share the offset, so a test can skew a running store.
#[derive(Clone, Debug, Default)]
pub struct HostClock {
    offset_ms: Arc<AtomicI64>,
}

impl HostClock {
    /// The system clock, unmodified.
    pub fn system() -> HostClock {
        HostClock::default()
    }

    /// The system clock shifted by `offset_ms` (positive: this host runs ahead): simulates a host
    /// whose clock is off.
    pub fn with_offset(offset_ms: i64) -> HostClock {
        let clock = HostClock::default();
        clock.set_offset_ms(offset_ms);
        clock
    }

    /// Changes the offset of this clock and every clone of it, as a clock step on a live host would.
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Unix time in milliseconds as this host believes it (0 before 1970).
    pub fn now_ms(&self) -> u64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        system.saturating_add(self.offset_ms()).max(0) as u64
    }
}

/// Every reading of the monotonic clock is relative to this process-wide instant.
static MONOTONIC_BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

fn monotonic_us(at: Instant) -> i64 {
    at.saturating_duration_since(*MONOTONIC_BASE).as_micros() as i64
}

/// How fast a monotonic clock may drift from a disciplined one: NTP's maximum slew, 500 ppm.
const DRIFT_PPM: i64 = 500;

#[derive(Clone, Copy, Debug)]
struct Anchor {
    /// Redis's clock minus the monotonic clock, µs.
    offset_us: i64,
    /// Monotonic time of the reading, µs.
    taken_us: i64,
    /// Half the round trip of the reading, µs.
    half_rtt_us: i64,
}

impl Anchor {
    fn uncertainty_us(&self, now_us: i64) -> i64 {
        self.half_rtt_us + (now_us - self.taken_us).max(0) * DRIFT_PPM / 1_000_000
    }
}

/// Redis's clock now as estimated, and how far it may be off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    pub(crate) now_ms: u64,
    pub(crate) uncertainty_ms: u64,
}

/// An estimate of Redis's clock; see the module docs. Shared by the clones of one store.
#[derive(Debug)]
pub(crate) struct ServerClock {
    host: HostClock,
    anchor: Mutex<Option<Anchor>>,
}

impl ServerClock {
    pub(crate) fn new(host: HostClock) -> ServerClock {
        LazyLock::force(&MONOTONIC_BASE);
        ServerClock {
            host,
            anchor: Mutex::new(None),
        }
    }

    fn anchor(&self) -> Option<Anchor> {
        *self.anchor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Redis's clock now, Unix ms, as well as this store knows it (the host's clock until the first
    /// reading).
    pub(crate) fn now_ms(&self) -> u64 {
        match self.anchor() {
            Some(a) => ((monotonic_us(Instant::now()) + a.offset_us) / 1000).max(0) as u64,
            None => self.host.now_ms(),
        }
    }

    /// The estimate with its error bound, `None` before the first reading or once the reading is
    /// older than `max_age` (then the caller asks Redis for a fresh one).
    pub(crate) fn estimate(&self, max_age: std::time::Duration) -> Option<Estimate> {
        let a = self.anchor()?;
        let now_us = monotonic_us(Instant::now());
        if now_us - a.taken_us > max_age.as_micros() as i64 {
            return None;
        }
        Some(Estimate {
            now_ms: ((now_us + a.offset_us) / 1000).max(0) as u64,
            // + 1 ms: the estimate is truncated to whole ms.
            uncertainty_ms: (a.uncertainty_us(now_us) / 1000 + 1) as u64,
        })
    }

    /// Takes in a reading of Redis's clock (`server_ms`, Unix ms) from a request sent at `sent`
    /// and answered at `received`. It replaces the anchor when it is more certain, when the two
    /// disagree by more than both error bounds (Redis's clock stepped, or another primary answers),
    /// or when `force`d: Redis refused a deadline built from the anchor, or a read renews an anchor
    /// that has grown old.
    pub(crate) fn observe(&self, server_ms: u64, sent: Instant, received: Instant, force: bool) {
        let (sent_us, received_us) = (monotonic_us(sent), monotonic_us(received));
        let reading = Anchor {
            // The reading is whole ms: taken as the middle of its ms.
            offset_us: (server_ms * 1000 + 500) as i64 - (sent_us + received_us) / 2,
            taken_us: received_us,
            half_rtt_us: (received_us - sent_us).max(0) / 2 + 500,
        };
        let mut anchor = self.anchor.lock().unwrap_or_else(|p| p.into_inner());
        let replace = match *anchor {
            None => true,
            Some(a) => {
                let bound = a.uncertainty_us(received_us);
                force
                    || reading.half_rtt_us <= bound
                    || (reading.offset_us - a.offset_us).abs() > reading.half_rtt_us + bound
            }
        };
        if replace {
            *anchor = Some(reading);
        }
    }

    /// How far the current estimate may be from Redis's clock (`None` before the first reading).
    #[cfg(test)]
    pub(crate) fn uncertainty(&self) -> Option<std::time::Duration> {
        let a = self.anchor()?;
        Some(std::time::Duration::from_micros(
            a.uncertainty_us(monotonic_us(Instant::now())) as u64,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_injected_offset_moves_the_host_clock_and_is_shared_by_clones() {
        let real = HostClock::system().now_ms();
        let clock = HostClock::with_offset(30_000);
        let clone = clock.clone();
        assert!(clone.now_ms() >= real + 30_000 && clone.now_ms() < real + 31_000);
        clock.set_offset_ms(-7_200_000);
        assert!(clone.now_ms() < real - 7_100_000);
    }

    #[test]
    fn the_server_estimate_follows_readings_not_the_host_clock() {
        let host = HostClock::with_offset(-3_600_000);
        let server = ServerClock::new(host.clone());
        assert!(server.now_ms() < HostClock::system().now_ms() - 3_500_000);
        // Redis reads 1_000_000 ms ahead of the host's true clock, seen over a 2 ms round trip.
        let sent = Instant::now();
        let received = sent + Duration::from_millis(2);
        let true_now = HostClock::system().now_ms();
        server.observe(true_now + 1_000_000, sent, received, false);
        let estimate = server.now_ms();
        assert!(
            estimate.abs_diff(true_now + 1_000_000) < 100,
            "{estimate} vs {}",
            true_now + 1_000_000
        );
        // A step of the host's clock does not move the estimate.
        host.set_offset_ms(86_400_000);
        assert!(server.now_ms().abs_diff(estimate) < 100);
        assert!(server.uncertainty().unwrap() < Duration::from_millis(5));
    }

    #[test]
    fn a_less_certain_reading_replaces_the_anchor_only_if_it_contradicts_it_or_is_forced() {
        let server = ServerClock::new(HostClock::system());
        let t0 = Instant::now();
        server.observe(5_000_000, t0, t0 + Duration::from_millis(1), false);
        let before = server.now_ms();
        // From a 400 ms round trip and consistent with the anchor: less certain, ignored...
        server.observe(5_000_100, t0, t0 + Duration::from_millis(400), false);
        assert!(server.now_ms().abs_diff(before) < 5);
        // ...but 10 s off is more than both bounds: Redis's clock stepped, take it...
        server.observe(5_010_000, t0, t0 + Duration::from_millis(400), false);
        assert!(server.now_ms().abs_diff(before + 10_000) < 500);
        // ...and a forced reading always wins.
        server.observe(5_000_000, t0, t0 + Duration::from_millis(400), true);
        assert!(server.now_ms().abs_diff(before) < 500);
    }
}
