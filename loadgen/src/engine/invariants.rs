//! Promises the stores make, checked from the client side while the load runs, and counted apart
//! from errors: an error is Redis saying "no"; a violation is Redis saying "yes" to something it
//! should not have (or forgetting something it should not have).
//!
//! - **lost sessions**: a session we created and kept alive reads as missing (eviction, a failover
//!   that lost writes, a restart without persistence). See [`crate::keyspace`] for how races with
//!   our own logouts are excluded.
//! - **rate-limit over-admission**: more requests allowed for one ip/endpoint in one window than the
//!   rule permits, counted across all users (a limiter that forgets its counters — eviction again —
//!   fails open without an error).
//! - **revoked tokens still validating**: a token whose revocation had completed before the lookup
//!   was sent came back valid.
//! - **admitted while degraded**: requests a fail-open limiter let through because Redis could not
//!   count them — over-admission by policy rather than by a lost counter, counted apart so neither
//!   hides in the error rate.
//!
//! Every promise also counts how much it judged (`checked`): a run that never read a session has
//! not shown that no session was lost, and its verdict says `not_checked`, never pass.
//!
//! Token cache misses (an unrevoked, unexpired token not found) are reported too, but are not a
//! violation: the server falls back to its database.
//!
//! How a window is identified without trusting clocks, for the fixed window (the default): the
//! first decision seen for a key says the window resets in `reset_after`; `sent + reset_after` is
//! then no later than the real reset, because Redis started counting after we sent. Every
//! decision that *completed* before that instant is certainly in the same window. A decision
//! completing later opens the next tracked window from its own `reset_after`. If Redis loses the
//! counter mid-window, its fresh count restarts at 1 but our window does not, so the excess
//! admissions show. The sliding window is checked per aligned window of *Redis's* clock (what it
//! guarantees: the script reads `TIME`), through the offset [`super::clock::ServerClock`] keeps;
//! GCRA against its bound of `limit + elapsed / emission interval` admissions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache::{Algorithm, Decision, Rule};

pub(crate) use crate::report::summary::InvariantCounts;

/// A violation count and how many cases it judged.
#[derive(Default)]
struct Tally {
    violations: AtomicU64,
    checked: AtomicU64,
}

impl Tally {
    fn judged(&self, checked: u64, violations: u64) {
        self.checked.fetch_add(checked, Ordering::Relaxed);
        self.violations.fetch_add(violations, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (
            self.violations.load(Ordering::Relaxed),
            self.checked.load(Ordering::Relaxed),
        )
    }
}

/// Violation and miss counters; cheap to update from every user.
#[derive(Default)]
pub(crate) struct Invariants {
    sessions: Tally,
    revoked_tokens: Tally,
    token_lookups: Tally,
    degraded: Tally,
    admissions: Mutex<AdmissionChecker>,
}

impl Invariants {
    /// `checked` sessions the model expected alive were judged; `lost` of them were gone.
    pub(crate) fn sessions_judged(&self, checked: u64, lost: u64) {
        self.sessions.judged(checked, lost);
    }

    /// A token whose revocation had completed was presented again; `validated` if it still passed.
    pub(crate) fn revoked_token_probed(&self, validated: bool) {
        self.revoked_tokens.judged(1, u64::from(validated));
    }

    /// A live, unexpired token was looked up; `missed` if the cache did not have it.
    pub(crate) fn token_looked_up(&self, missed: bool) {
        self.token_lookups.judged(1, u64::from(missed));
    }

    /// A limiter decision made without Redis; `admitted` if it failed open.
    pub(crate) fn degraded_decision(&self, admitted: bool) {
        self.degraded.judged(1, u64::from(admitted));
    }

    /// Feeds one non-degraded rate-limit decision for `(ip, endpoint)` under `rule`; `server_now`
    /// is Redis's clock at completion ([`super::clock::ServerClock::now`]).
    pub(crate) fn rate_limit_decision(
        &self,
        key: (u32, &str),
        rule: &Rule,
        d: &Decision,
        (sent, completed): (Instant, Instant),
        server_now: SystemTime,
    ) {
        self.admissions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(key, rule, d, sent, completed, server_now);
    }

    pub(crate) fn counts(&self) -> InvariantCounts {
        let admissions = self.admissions.lock().unwrap_or_else(|p| p.into_inner());
        let (lost_sessions, sessions_checked) = self.sessions.get();
        let (revoked_tokens_validating, revoked_tokens_checked) = self.revoked_tokens.get();
        let (token_cache_misses, tokens_checked) = self.token_lookups.get();
        let (admitted_while_degraded, degraded_decisions) = self.degraded.get();
        InvariantCounts {
            lost_sessions,
            sessions_checked,
            ratelimit_over_admissions: admissions.over_admitted(),
            ratelimit_decisions_checked: admissions.judged + degraded_decisions,
            admitted_while_degraded,
            degraded_decisions,
            revoked_tokens_validating,
            revoked_tokens_checked,
            token_cache_misses,
            tokens_checked,
        }
    }
}

enum Window {
    /// Tracked fixed window: decisions completed before `certain_until` are in it.
    Fixed {
        certain_until: Instant,
        allowed: u64,
    },
    /// Aligned window number of Redis's clock and admissions in it.
    Aligned { index: u64, allowed: u64 },
    /// Admissions since the first one, and the worst excess over the GCRA bound seen.
    Gcra {
        first_sent: Instant,
        allowed: u64,
        worst_excess: u64,
    },
}

#[derive(Default)]
struct AdmissionChecker {
    windows: HashMap<(u32, String), Window>,
    /// Excess admissions in windows that are closed or were replaced (fixed/aligned).
    excess: u64,
    /// Decisions judged.
    judged: u64,
}

impl AdmissionChecker {
    fn observe(
        &mut self,
        key: (u32, &str),
        rule: &Rule,
        d: &Decision,
        sent: Instant,
        completed: Instant,
        wall: SystemTime,
    ) {
        let limit = rule.limit as u64;
        let k = (key.0, key.1.to_string());
        self.judged += 1;
        match rule.algorithm {
            Algorithm::FixedWindow => {
                let w = self.windows.entry(k).or_insert(Window::Fixed {
                    certain_until: sent + d.reset_after,
                    allowed: 0,
                });
                if let Window::Fixed {
                    certain_until,
                    allowed,
                } = w
                {
                    if completed > *certain_until {
                        *certain_until = sent + d.reset_after;
                        *allowed = 0;
                    }
                    if d.allowed {
                        *allowed += 1;
                        if *allowed > limit {
                            self.excess += 1;
                        }
                    }
                }
            }
            Algorithm::SlidingWindow => {
                let window_ms = rule.window.as_millis().max(1) as u64;
                let now_ms = wall
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                let sent_ms =
                    now_ms.saturating_sub(completed.duration_since(sent).as_millis() as u64);
                let index = now_ms / window_ms;
                // A decision that may straddle two windows belongs to neither for certain.
                if sent_ms / window_ms != index || !d.allowed {
                    return;
                }
                let w = self
                    .windows
                    .entry(k)
                    .or_insert(Window::Aligned { index, allowed: 0 });
                if let Window::Aligned { index: i, allowed } = w {
                    if index > *i {
                        *i = index;
                        *allowed = 0;
                    }
                    if index == *i {
                        *allowed += 1;
                        if *allowed > limit {
                            self.excess += 1;
                        }
                    }
                }
            }
            Algorithm::Gcra => {
                if !d.allowed {
                    return;
                }
                let emission = rule.window / rule.limit.max(1);
                let w = self.windows.entry(k).or_insert(Window::Gcra {
                    first_sent: sent,
                    allowed: 0,
                    worst_excess: 0,
                });
                if let Window::Gcra {
                    first_sent,
                    allowed,
                    worst_excess,
                } = w
                {
                    *allowed += 1;
                    let elapsed = completed.duration_since(*first_sent);
                    let bound = limit + div_duration(elapsed, emission) + 1;
                    *worst_excess = (*worst_excess).max(allowed.saturating_sub(bound));
                }
            }
        }
    }

    fn over_admitted(&self) -> u64 {
        self.excess
            + self
                .windows
                .values()
                .map(|w| match w {
                    Window::Gcra { worst_excess, .. } => *worst_excess,
                    _ => 0,
                })
                .sum::<u64>()
    }
}

fn div_duration(a: Duration, b: Duration) -> u64 {
    if b.is_zero() {
        return u64::MAX / 4;
    }
    (a.as_nanos() / b.as_nanos()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, reset_ms: u64) -> Decision {
        Decision {
            allowed,
            limit: 3,
            remaining: 0,
            reset_after: Duration::from_millis(reset_ms),
            retry_after: None,
            degraded: None,
        }
    }

    fn rule(algorithm: Algorithm) -> Rule {
        Rule {
            limit: 3,
            window: Duration::from_secs(60),
            algorithm,
        }
    }

    #[test]
    fn a_counter_reset_mid_window_is_over_admission() {
        let mut c = AdmissionChecker::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let r = rule(Algorithm::FixedWindow);
        let wall = SystemTime::now();
        // Three allowed, then refused: a healthy window.
        for i in 0..3 {
            c.observe(
                (1, "signin"),
                &r,
                &decision(true, 60_000 - i),
                t0 + ms(i),
                t0 + ms(i + 1),
                wall,
            );
        }
        c.observe(
            (1, "signin"),
            &r,
            &decision(false, 59_990),
            t0 + ms(10),
            t0 + ms(11),
            wall,
        );
        assert_eq!(c.over_admitted(), 0);
        // The counter vanished (evicted): Redis starts a fresh window and admits again.
        c.observe(
            (1, "signin"),
            &r,
            &decision(true, 60_000),
            t0 + ms(20),
            t0 + ms(21),
            wall,
        );
        assert_eq!(c.over_admitted(), 1);
        // After the real reset, a new window is legitimately allowed again.
        let later = t0 + Duration::from_secs(61);
        for i in 0..3 {
            c.observe(
                (1, "signin"),
                &r,
                &decision(true, 60_000),
                later + ms(i),
                later + ms(i + 1),
                wall,
            );
        }
        assert_eq!(c.over_admitted(), 1);
        // Another key is independent.
        c.observe(
            (2, "signin"),
            &r,
            &decision(true, 60_000),
            t0,
            t0 + ms(1),
            wall,
        );
        assert_eq!(c.over_admitted(), 1);
    }

    #[test]
    fn gcra_bursts_within_limit_pass_and_beyond_count() {
        let mut c = AdmissionChecker::default();
        let t0 = Instant::now();
        let r = rule(Algorithm::Gcra);
        let wall = SystemTime::now();
        for i in 0..4 {
            c.observe(
                (1, "token"),
                &r,
                &decision(true, 1),
                t0,
                t0 + Duration::from_micros(i),
                wall,
            );
        }
        assert_eq!(c.over_admitted(), 0, "limit + 1 of slack");
        c.observe(
            (1, "token"),
            &r,
            &decision(true, 1),
            t0,
            t0 + Duration::from_micros(9),
            wall,
        );
        assert_eq!(c.over_admitted(), 1);
    }
}
