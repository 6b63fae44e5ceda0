//! `Retry-After` is honest for every algorithm: a refused client that waits exactly the advertised
//! time is admitted on its first retry, and (for the sliding window and GCRA) one that retries a
//! moment earlier is not, so the hint is neither too short nor longer than it needs to be.
//!
//! - Sliding window and GCRA, property-tested on a real redis-server in *virtual* time: random
//!   limits, windows and arrival schedules are replayed with `RateLimiter::check_at` (the scripts
//!   decide at the given instant instead of Redis's `TIME`), so thousands of decisions take
//!   milliseconds. GCRA is compared decision by decision, wait by wait, with the `governor` crate;
//!   the sliding window with a small model in this file whose `Retry-After` comes from a search over
//!   future instants, not from the script's formula. After every refusal the schedule retries at
//!   the advertised instant minus one tick (must be refused) and at it (must be admitted).
//! - Fixed window, and all three in real time: a client that sleeps the advertised time is
//!   admitted on its first retry, including right after a full window (where the sliding window's
//!   old hint, "until this window ends", was too short).
//!
//! `PROPTEST_CASES=2000 cargo test -p cache --test retry_after` runs more cases.

mod support;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache::{Algorithm, Decision, FailureMode, IpPolicy, KeySchema, RateLimiter, Redis, Rule};
use governor::Quota;
use governor::clock::{Clock, FakeRelativeClock};
use localredis::{RedisServer, ServerConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::*;

const IP: &str = "198.51.100.44";

fn limiter(
    redis: &Redis,
    prefix: &str,
    limit: u32,
    window: Duration,
    algorithm: Algorithm,
) -> RateLimiter {
    let rule = Rule {
        limit,
        window,
        algorithm,
    };
    RateLimiter::new(
        redis.clone(),
        KeySchema::new(prefix).unwrap(),
        [("signin".to_string(), rule)].into_iter().collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap()
}

/// The sliding window as the module docs define it, in whole ms, with `Retry-After` found by a
/// binary search for the first instant that admits (admission only gets easier with time).
struct SlidingModel {
    window: u64,
    limit: u64,
    counts: BTreeMap<u64, u64>,
}

impl SlidingModel {
    fn estimate(&self, now: u64) -> f64 {
        let current = now / self.window;
        let elapsed = now - current * self.window;
        let count = |w: u64| self.counts.get(&w).copied().unwrap_or(0) as f64;
        let prev = if current == 0 {
            0.0
        } else {
            count(current - 1)
        };
        prev * (self.window - elapsed) as f64 / self.window as f64 + count(current)
    }

    fn admits(&self, now: u64) -> bool {
        self.estimate(now) + 1.0 <= self.limit as f64
    }

    /// (allowed, remaining, ms until admitted when refused)
    fn check(&mut self, now: u64) -> (bool, u32, Option<u64>) {
        let estimate = self.estimate(now);
        let remaining = |estimate: f64| {
            let used = ((estimate * 1000.0).floor() as u64).div_ceil(1000);
            self.limit.saturating_sub(used) as u32
        };
        if estimate + 1.0 <= self.limit as f64 {
            *self.counts.entry(now / self.window).or_default() += 1;
            return (true, remaining(estimate + 1.0), None);
        }
        let (mut lo, mut hi) = (1, 2 * self.window);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.admits(now + mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        (false, remaining(estimate), Some(lo))
    }
}

/// The oracle for one case: governor for GCRA, the model above for the sliding window.
enum Oracle {
    Gcra {
        clock: FakeRelativeClock,
        limiter: governor::RateLimiter<
            governor::state::NotKeyed,
            governor::state::InMemoryState,
            FakeRelativeClock,
            governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
        >,
        at_us: u64,
    },
    Sliding(SlidingModel),
}

impl Oracle {
    fn new(algorithm: Algorithm, limit: u32, window: Duration, start_us: u64) -> Oracle {
        match algorithm {
            Algorithm::Gcra => {
                // The same emission interval as the store's, in whole µs.
                let t = Duration::from_micros((window.as_micros() / limit as u128) as u64);
                let quota = Quota::with_period(t)
                    .unwrap()
                    .allow_burst(NonZeroU32::new(limit).unwrap());
                let clock = FakeRelativeClock::default();
                let limiter = governor::RateLimiter::direct_with_clock(quota, clock.clone());
                Oracle::Gcra {
                    clock,
                    limiter,
                    at_us: start_us,
                }
            }
            _ => Oracle::Sliding(SlidingModel {
                window: window.as_millis() as u64,
                limit: limit as u64,
                counts: BTreeMap::new(),
            }),
        }
    }

    /// (allowed, retry after when refused) at `now_us`.
    fn check(&mut self, now_us: u64) -> (bool, Option<Duration>, Option<u32>) {
        match self {
            Oracle::Gcra {
                clock,
                limiter,
                at_us,
            } => {
                clock.advance(Duration::from_micros(now_us - *at_us));
                *at_us = now_us;
                match limiter.check() {
                    Ok(()) => (true, None, None),
                    Err(not_until) => (false, Some(not_until.wait_time_from(clock.now())), None),
                }
            }
            Oracle::Sliding(m) => {
                let (allowed, remaining, wait) = m.check(now_us / 1000);
                (allowed, wait.map(Duration::from_millis), Some(remaining))
            }
        }
    }

    /// The smallest step of this algorithm's clock.
    fn tick(&self) -> Duration {
        match self {
            Oracle::Gcra { .. } => Duration::from_micros(1),
            Oracle::Sliding(_) => Duration::from_millis(1),
        }
    }
}

static CASE: AtomicU32 = AtomicU32::new(0);

/// Tally over the cases of one property: decisions compared, refusals whose hint was probed.
#[derive(Default)]
struct Tally {
    decisions: AtomicU32,
    probed: AtomicU32,
}

fn at(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// Replays `gaps` (µs between arrivals) against Redis and the oracle; after each refusal, retries
/// one tick before the advertised instant (refused) and at it (admitted).
async fn replay(
    tally: &Tally,
    redis: &Redis,
    algorithm: Algorithm,
    limit: u32,
    window: Duration,
    gaps: &[u64],
) -> Result<(), TestCaseError> {
    let prefix = format!("ra{}", CASE.fetch_add(1, Ordering::Relaxed));
    let l = limiter(redis, &prefix, limit, window, algorithm);
    // A virtual start on a whole second, some day in 2030: far from the real clock, so keys written
    // in virtual time do not collide with anything real.
    let mut now = 1_900_000_000_000_000u64;
    let mut oracle = Oracle::new(algorithm, limit, window, now);
    let decide = async |now: u64, oracle: &mut Oracle| -> Result<Decision, TestCaseError> {
        let d = l
            .check_at(IP, "signin", at(now))
            .await
            .map_err(|e| TestCaseError::fail(format!("check_at: {e}")))?;
        let (allowed, retry, remaining) = oracle.check(now);
        tally.decisions.fetch_add(1, Ordering::Relaxed);
        prop_assert_eq!(d.allowed, allowed, "at +{} µs: {:?}", now, d);
        prop_assert_eq!(d.retry_after, retry, "at +{} µs: {:?}", now, d);
        if let Some(r) = remaining {
            prop_assert_eq!(d.remaining, r, "at +{} µs: {:?}", now, d);
        }
        prop_assert!(d.degraded.is_none());
        Ok(d)
    };
    for gap in gaps {
        now += gap;
        let d = decide(now, &mut oracle).await?;
        let Some(wait) = d.retry_after else { continue };
        // The hint, honoured to the tick: refused just before, admitted at it.
        let wait = wait.as_micros() as u64;
        let tick = oracle.tick().as_micros() as u64;
        let early = decide(now + wait - tick, &mut oracle).await?;
        prop_assert!(!early.allowed, "admitted {} µs before the hint", tick);
        now += wait;
        let retry = decide(now, &mut oracle).await?;
        prop_assert!(retry.allowed, "refused at the advertised instant");
        tally.probed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// limit, window (1 min to 2 h, so no key expires in real time during the test), and gaps of up
/// to three emission intervals, with bursts (gap 0) likely.
fn schedule() -> impl Strategy<Value = (u32, Duration, Vec<u64>)> {
    (1u32..=10, 60u64..=7200).prop_flat_map(|(limit, window_s)| {
        let interval = window_s * 1_000_000 / limit as u64;
        let gap = prop_oneof![2 => Just(0u64), 3 => 0..=3 * interval, 1 => 0..=1000u64];
        (
            Just(limit),
            Just(Duration::from_secs(window_s)),
            proptest::collection::vec(gap, 1..40),
        )
    })
}

fn property(algorithm: Algorithm) {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).expect("start redis-server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = rt.block_on(connect(&server.url()));
    let tally = Tally::default();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&schedule(), |(limit, window, gaps)| {
        rt.block_on(replay(&tally, &redis, algorithm, limit, window, &gaps))
    });
    if let Err(e) = result {
        panic!("{algorithm:?}: {e}");
    }
    let decisions = tally.decisions.load(Ordering::Relaxed);
    let probed = tally.probed.load(Ordering::Relaxed);
    let compared = match algorithm {
        Algorithm::Gcra => "governor's (allowed, Retry-After)",
        _ => "the model's (allowed, remaining, Retry-After)",
    };
    println!(
        "{algorithm:?}: {} random schedules, {decisions} decisions equal to {compared}; {probed} \
         refusals retried one tick early (refused) and at the hint (admitted)",
        cases()
    );
    assert!(probed >= cases() / 2, "too few refusals probed: {probed}");
}

#[test]
fn gcra_retry_after_is_governors_and_admits_on_the_first_retry() {
    property(Algorithm::Gcra);
}

#[test]
fn sliding_window_retry_after_is_the_first_admitting_instant() {
    property(Algorithm::SlidingWindow);
}

/// Real time, every algorithm: saturate, sleep the hint, retry once: admitted. The rounds start at
/// different points of the window, and one round per algorithm starts right after a full window.
#[tokio::test]
async fn a_client_that_sleeps_the_hint_is_admitted_on_its_first_retry() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).expect("start redis-server");
    let redis = connect(&server.url()).await;
    let (limit, window) = (3u32, Duration::from_millis(300));
    let mut figures = Vec::new();
    for (i, algorithm) in Algorithm::ALL.into_iter().enumerate() {
        let mut waits = Vec::new();
        for round in 0..6u32 {
            let l = limiter(&redis, &format!("rt{i}-{round}"), limit, window, algorithm);
            // Start somewhere else in the window each round.
            tokio::time::sleep(window * round / 6).await;
            let refused = loop {
                let d = l.check(IP, "signin").await.unwrap();
                if !d.allowed {
                    break d;
                }
            };
            let wait = refused.retry_after.expect("a refusal carries Retry-After");
            tokio::time::sleep(wait).await;
            let retry = l.check(IP, "signin").await.unwrap();
            assert!(
                retry.allowed,
                "{algorithm:?} round {round}: refused again after waiting {wait:?}: {retry:?}"
            );
            waits.push(wait.as_millis());
        }
        figures.push(format!(
            "{algorithm:?} waited {waits:?} ms, admitted each time"
        ));
    }
    println!("{}", figures.join("; "));
}
