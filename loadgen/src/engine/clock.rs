//! Redis's clock, as seen from here. The rate limiter's sliding window and the sessions' deadlines
//! are decided by Redis's `TIME`; judging them with this machine's clock would turn clock skew into
//! false violations. [`ServerClock`] keeps the offset between the two, measured with `TIME` at the
//! midpoint of its round trip (error ≤ half the round trip, tens of µs on a LAN), re-measured by
//! the sampler every second.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache::Redis;

/// The offset of Redis's clock from ours, shared by the users and the sampler.
#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    /// Redis minus local, µs.
    offset_us: AtomicI64,
    /// Round trip of the measurement the offset came from, µs (0: never measured).
    rtt_us: AtomicI64,
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl ServerClock {
    /// Measures the offset once; keeps the previous one if `TIME` fails (or is refused by the ACL).
    pub(crate) async fn sync(&self, redis: &Redis) {
        let mut conn = redis.clone();
        let sent = Instant::now();
        let before = SystemTime::now();
        let Ok((secs, micros)) = redis::cmd("TIME")
            .query_async::<(i64, i64)>(&mut conn)
            .await
        else {
            return;
        };
        let rtt = sent.elapsed();
        let local_mid = unix_us(before) + rtt.as_micros() as i64 / 2;
        self.offset_us
            .store(secs * 1_000_000 + micros - local_mid, Ordering::Relaxed);
        self.rtt_us.store(rtt.as_micros() as i64, Ordering::Relaxed);
    }

    /// Redis's idea of now.
    pub(crate) fn now(&self) -> SystemTime {
        let offset = self.offset_us.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_micros(offset as u64)
        } else {
            now - Duration::from_micros(offset.unsigned_abs())
        }
    }

    /// Redis minus local, ms (for the report); `None` if never measured.
    pub(crate) fn offset_ms(&self) -> Option<f64> {
        (self.rtt_us.load(Ordering::Relaxed) > 0)
            .then(|| (self.offset_us.load(Ordering::Relaxed) as f64 / 100.0).round() / 10.0)
    }
}
