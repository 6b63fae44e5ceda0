//! Open-model pacing and the time an operation is measured from.
//!
//! Goose runs a closed model: each user starts its next transaction when the last one ends, so a
//! Redis that stalls for a second simply receives fewer requests, and the stall shows up as one
//! slow sample instead of the thousand requests that would have queued behind it in production
//! ("coordinated omission"). `throttle_requests` does not apply to custom operations either.
//!
//! With a target rate, each user instead follows its own schedule: operation *k* is *intended* to
//! start at `phase + k × interval`, where `interval = users / rate`. A user that falls behind
//! starts the overdue operations back to back, and every operation records two times:
//! - **service time**: from when it was actually sent to its completion (what Redis cost);
//! - **response time**: from its *intended* start to its completion (what a client would have
//!   waited, queueing included).
//!
//! Without a target rate both are the same. A pacer never sleeps longer than [`MAX_IDLE`] at a
//! time: it returns to goose in between, because goose only notices the end of a run between
//! transactions.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

/// Longest single wait inside a transaction; bounds how long a user takes to stop.
pub(crate) const MAX_IDLE: Duration = Duration::from_millis(100);

/// One user's schedule.
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    /// `interval`: time between this user's intended starts, or `None` for the closed model. The
    /// first start falls at a random point of the first interval, so users do not fire in lockstep.
    pub(crate) fn new(interval: Option<Duration>, rng: &mut SmallRng) -> Pacer {
        let phase = interval.map_or(Duration::ZERO, |i| i.mul_f64(rng.random::<f64>()));
        Pacer {
            interval,
            next: Instant::now() + phase,
        }
    }

    /// Per-user interval for `rate` operations per second spread over `users`.
    pub(crate) fn interval_for(rate: Option<f64>, users: u32) -> Option<Duration> {
        rate.map(|r| Duration::from_secs_f64(users.max(1) as f64 / r))
    }

    /// The intended start of the next operation if it is due now (after waiting up to
    /// [`MAX_IDLE`] for it), or `None` if it is not due yet.
    pub(crate) async fn due(&mut self) -> Option<std::time::Instant> {
        let Some(interval) = self.interval else {
            return Some(std::time::Instant::now());
        };
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next.min(now + MAX_IDLE)).await;
            if self.next > Instant::now() {
                return None;
            }
        }
        let intended = self.next;
        self.next += interval;
        Some(intended.into_std())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn interval_spreads_the_rate_over_users() {
        assert_eq!(Pacer::interval_for(None, 10), None);
        assert_eq!(
            Pacer::interval_for(Some(1000.0), 10),
            Some(Duration::from_millis(10))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_user_catches_up_and_reports_intended_starts() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut p = Pacer::new(Some(Duration::from_millis(10)), &mut rng);
        let first = loop {
            if let Some(t) = p.due().await {
                break t;
            }
        };
        // Stall for 35 ms (a slow Redis): the next three starts are overdue and come at once,
        // each with its own intended time, 10 ms apart.
        tokio::time::advance(Duration::from_millis(35)).await;
        let mut overdue = Vec::new();
        for _ in 0..3 {
            overdue.push(p.due().await.unwrap());
        }
        for (k, t) in overdue.iter().enumerate() {
            assert_eq!(
                t.duration_since(first),
                Duration::from_millis(10 * (k as u64 + 1))
            );
        }
        // The fourth is not due until 40 ms: the pacer waits for it (paused clock auto-advances).
        let t4 = loop {
            if let Some(t) = p.due().await {
                break t;
            }
        };
        assert_eq!(t4.duration_since(first), Duration::from_millis(40));
    }
}
