//! [`RateLimiter`]: a distributed limiter at `<prefix>:ratelimit:<ip>:<endpoint>`, shared by every
//! instance of the OAuth server that talks to the same Redis.
//!
//! Each decision is **one `EVALSHA`**: the read, the update and the expiry happen in one atomic script,
//! so concurrent instances cannot both see "one left", and a crash between `INCR` and `EXPIRE` can
//! never leave an immortal counter. Three algorithms:
//!
//! | algorithm | state per key | guarantee |
//! |---|---|---|
//! | [`Algorithm::FixedWindow`] | counter with TTL (the guide's) | exactly `limit` admitted per window; a burst of up to 2×limit can straddle a window boundary |
//! | [`Algorithm::SlidingWindow`] | hash of two window counters | never more than `limit` admitted in any aligned window; in any rolling window at most 2×limit in the worst case (all of the previous window's admissions at its very end), typically within a few % of `limit` |
//! | [`Algorithm::Gcra`] | one theoretical arrival time | smooth: `limit` per window with bursts up to `limit`, the same decisions as the `governor` crate |
//!
//! Time comes from Redis (`TIME` inside the scripts), so instances with skewed clocks still agree.
//!
//! `Retry-After` ([`Decision::retry_after`]) is the earliest moment a refused client is admitted if
//! no one else spends the limit meanwhile, so a client that honours it gets in on its first retry
//! (and waiting longer never hurts: each algorithm's admission only becomes easier with time):
//! - fixed window: the counter's TTL + 1 ms (Redis expires a key once its clock passes the
//!   deadline, not at it);
//! - sliding window: the first whole ms at which the weighted estimate leaves room for one more,
//!   later in this window when the previous window's weight is what blocks, or in the next window
//!   when this one is already full;
//! - GCRA: the theoretical arrival time minus the burst tolerance, exactly `governor`'s
//!   `NotUntil::wait_time_from`.
//!
//! When Redis fails, the configured [`FailureMode`] decides: fail open (admit) or fail closed (refuse).
//! Either way the [`Decision`] says it was [`Decision::degraded`], so callers can log and count it.
//!
//! Keys cannot be forged: IPs are parsed and printed canonically ([`normalize_ip`]: IPv4-mapped IPv6
//! becomes IPv4, IPv6 can be grouped by /64), and endpoint names exclude `:`, whitespace and control
//! characters ([`crate::keys`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use crate::connection::Redis;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::KeySchema;

static FIXED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ratelimit_fixed.lua")));
static SLIDING: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ratelimit_sliding.lua")));
static GCRA: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ratelimit_gcra.lua")));

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    FixedWindow,
    SlidingWindow,
    Gcra,
}

impl Algorithm {
    /// Every algorithm, for tools and tests that exercise them all.
    pub const ALL: [Algorithm; 3] = [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ];

    /// The name used in configuration files (`fixed_window`, `sliding_window`, `gcra`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }
}

/// `limit` requests per `window` for one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub limit: u32,
    pub window: Duration,
    pub algorithm: Algorithm,
}

impl Rule {
    pub fn per_minute(limit: u32) -> Rule {
        Rule {
            limit,
            window: Duration::from_secs(60),
            algorithm: Algorithm::FixedWindow,
        }
    }

    fn check(&self) -> Result<()> {
        if self.limit == 0 || self.window < Duration::from_millis(1) {
            return Err(Error::Invalid {
                field: "rate limit rule",
                reason: "limit must be at least 1 and window at least 1 ms".into(),
            });
        }
        Ok(())
    }
}

/// What to do when Redis cannot be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Admit: availability over protection (the usual choice for authorize/token endpoints).
    #[default]
    Open,
    /// Refuse: protection over availability (the usual choice for sign-in brute-force protection).
    Closed,
}

/// How a decision was reached when Redis was not available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Degraded {
    FailedOpen { kind: ErrorKind, cause: String },
    FailedClosed { kind: ErrorKind, cause: String },
}

impl Degraded {
    /// Why Redis could not decide.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Degraded::FailedOpen { kind, .. } | Degraded::FailedClosed { kind, .. } => *kind,
        }
    }
}

/// The limiter's answer for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Time until the limit is fully available again (window reset for the window algorithms).
    pub reset_after: Duration,
    /// For a refused request: how long to wait before retrying.
    pub retry_after: Option<Duration>,
    /// Set when Redis failed and [`FailureMode`] decided instead of the algorithm.
    pub degraded: Option<Degraded>,
}

impl Decision {
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds, rounded up) and, when
    /// refused, `Retry-After` (seconds, rounded up).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| d.as_millis().div_ceil(1000).to_string();
        let mut h = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", secs(self.reset_after)),
        ];
        if let Some(r) = self.retry_after {
            h.push(("Retry-After", secs(r)));
        }
        h
    }
}

/// How client IPs are grouped into keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IpPolicy {
    /// Count an IPv6 client by its /64 network, as one host usually owns a whole /64.
    pub group_ipv6_by_64: bool,
}

/// Canonical text of a client IP for use in a key. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes
/// IPv4; with `group_ipv6_by_64`, an IPv6 address becomes its /64 network (`2001:db8:1:2::/64`).
pub fn normalize_ip(ip: &str, policy: IpPolicy) -> Result<String> {
    // `[v6]` as in a Host header or URL; brackets anywhere else are not part of an address.
    let bare = ip
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(ip);
    let parsed: IpAddr = bare.parse().map_err(|_| Error::Invalid {
        field: "client ip",
        reason: "expected an IPv4 or IPv6 address".into(),
    })?;
    Ok(match parsed {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None if policy.group_ipv6_by_64 => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            None => v6.to_string(),
        },
    })
}

/// The server's limits per 60 s: signin 5, token 20, authorize 30, register 10, device 10.
pub fn default_rules() -> BTreeMap<String, Rule> {
    [
        ("signin", 5),
        ("token", 20),
        ("authorize", 30),
        ("register", 10),
        ("device", 10),
    ]
    .into_iter()
    .map(|(e, n)| (e.to_string(), Rule::per_minute(n)))
    .collect()
}

/// Rules per endpoint, shared by all callers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    redis: Redis,
    keys: KeySchema,
    rules: BTreeMap<String, Rule>,
    failure_mode: FailureMode,
    ip_policy: IpPolicy,
}

impl RateLimiter {
    /// A limiter with `rules` (see [`default_rules`]); endpoints without a rule are refused as invalid.
    pub fn new(
        redis: Redis,
        keys: KeySchema,
        rules: BTreeMap<String, Rule>,
        failure_mode: FailureMode,
        ip_policy: IpPolicy,
    ) -> Result<RateLimiter> {
        for (endpoint, rule) in &rules {
            keys.ratelimit("0.0.0.0", endpoint)?;
            rule.check()?;
        }
        Ok(RateLimiter {
            redis,
            keys,
            rules,
            failure_mode,
            ip_policy,
        })
    }

    pub fn rule(&self, endpoint: &str) -> Option<&Rule> {
        self.rules.get(endpoint)
    }

    /// Counts one request from `ip` to `endpoint` and decides. Input errors (unknown endpoint, bad
    /// IP) are returned as errors; Redis errors become a degraded decision per the failure mode.
    pub async fn check(&self, ip: &str, endpoint: &str) -> Result<Decision> {
        self.check_inner(ip, endpoint, None).await
    }

    /// Test hook: decides as if Redis's clock read `at` (sliding window and GCRA; a fixed window
    /// resets by key expiry, which only Redis's real clock drives). It lets property tests replay
    /// arrival schedules against an oracle without sleeping. Production code calls
    /// [`RateLimiter::check`]: the limiter's whole point is that Redis's clock decides.
    #[doc(hidden)]
    pub async fn check_at(
        &self,
        ip: &str,
        endpoint: &str,
        at: std::time::SystemTime,
    ) -> Result<Decision> {
        let at_us = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Invalid {
                field: "at",
                reason: "expected a time after 1970".into(),
            })?
            .as_micros() as u64;
        self.check_inner(ip, endpoint, Some(at_us)).await
    }

    async fn check_inner(&self, ip: &str, endpoint: &str, at_us: Option<u64>) -> Result<Decision> {
        let rule = *self.rules.get(endpoint).ok_or_else(|| Error::Invalid {
            field: "endpoint",
            reason: format!(
                "no rate-limit rule for it; configured: {}",
                self.rules.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        let key = self
            .keys
            .ratelimit(&normalize_ip(ip, self.ip_policy)?, endpoint)?;
        match self.decide(&key, &rule, at_us).await {
            Ok(d) => Ok(d),
            // Redis could not decide (down, refusing the write, refusing the user): the failure
            // mode decides. Input and data errors stay errors.
            Err(e) if e.redis_error().is_some() || e.kind() == ErrorKind::NoPrimary => {
                Ok(self.degraded(&rule, e))
            }
            Err(e) => Err(e),
        }
    }

    fn degraded(&self, rule: &Rule, e: Error) -> Decision {
        let (kind, cause) = (e.kind(), e.to_string());
        let (allowed, degraded) = match self.failure_mode {
            FailureMode::Open => (true, Degraded::FailedOpen { kind, cause }),
            FailureMode::Closed => (false, Degraded::FailedClosed { kind, cause }),
        };
        Decision {
            allowed,
            limit: rule.limit,
            remaining: 0,
            reset_after: rule.window,
            retry_after: (!allowed).then_some(Duration::from_secs(1)),
            degraded: Some(degraded),
        }
    }

    async fn decide(&self, key: &str, rule: &Rule, at_us: Option<u64>) -> Result<Decision> {
        let mut conn = self.redis.clone();
        let window_ms = rule.window.as_millis() as u64;
        let at = at_us.map_or(String::new(), |t| t.to_string());
        match rule.algorithm {
            Algorithm::FixedWindow => {
                let (count, ttl_ms): (u64, i64) = FIXED
                    .key(key)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await?;
                let allowed = count <= rule.limit as u64;
                let reset = Duration::from_millis(ttl_ms.max(0) as u64);
                Ok(Decision {
                    allowed,
                    limit: rule.limit,
                    remaining: (rule.limit as u64).saturating_sub(count) as u32,
                    // The window's TTL: never more than the window.
                    reset_after: reset,
                    // Redis drops the key once its clock is *past* the deadline: 1 ms after the TTL.
                    retry_after: (!allowed).then_some(reset + Duration::from_millis(1)),
                    degraded: None,
                })
            }
            Algorithm::SlidingWindow => {
                let (allowed, estimate_milli, until_ms, wait_ms): (i64, u64, i64, i64) = SLIDING
                    .key(key)
                    .arg(window_ms)
                    .arg(rule.limit)
                    .arg(&at)
                    .invoke_async(&mut conn)
                    .await?;
                let used = estimate_milli.div_ceil(1000);
                Ok(Decision {
                    allowed: allowed == 1,
                    limit: rule.limit,
                    remaining: (rule.limit as u64).saturating_sub(used) as u32,
                    reset_after: Duration::from_millis(until_ms.max(0) as u64),
                    retry_after: (allowed != 1)
                        .then_some(Duration::from_millis(wait_ms.max(1) as u64)),
                    degraded: None,
                })
            }
            Algorithm::Gcra => {
                let t_us = (rule.window.as_micros() / rule.limit as u128).max(1) as u64;
                let tau_us = t_us * (rule.limit as u64 - 1);
                let (allowed, remaining, wait_us): (i64, i64, i64) = GCRA
                    .key(key)
                    .arg(t_us)
                    .arg(tau_us)
                    .arg(&at)
                    .invoke_async(&mut conn)
                    .await?;
                let wait = Duration::from_micros(wait_us.max(0) as u64);
                Ok(Decision {
                    allowed: allowed == 1,
                    limit: rule.limit,
                    remaining: remaining.max(0) as u32,
                    reset_after: wait,
                    retry_after: (allowed != 1).then_some(wait),
                    degraded: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_canonical() {
        let p = IpPolicy::default();
        let g = IpPolicy {
            group_ipv6_by_64: true,
        };
        assert_eq!(normalize_ip("::ffff:10.1.2.3", p).unwrap(), "10.1.2.3");
        assert_eq!(normalize_ip("10.1.2.3", p).unwrap(), "10.1.2.3");
        assert_eq!(
            normalize_ip("2001:DB8:0:0:0:0:0:1", p).unwrap(),
            "2001:db8::1"
        );
        assert_eq!(normalize_ip("[2001:db8::1]", p).unwrap(), "2001:db8::1");
        assert_eq!(
            normalize_ip("2001:db8:1:2:3:4:5:6", g).unwrap(),
            "2001:db8:1:2::/64"
        );
        for bad in [
            "",
            "1.2.3.4:signin",
            "1.2.3.4 ",
            "localhost",
            "1.2.3.4\r\n",
            "*",
            "]]1.2.3.4[[",
            "[1.2.3.4",
            "[[::1]]",
        ] {
            assert!(normalize_ip(bad, p).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_round_up_to_seconds() {
        let d = Decision {
            allowed: false,
            limit: 5,
            remaining: 0,
            reset_after: Duration::from_millis(1500),
            retry_after: Some(Duration::from_millis(1)),
            degraded: None,
        };
        assert_eq!(
            d.headers(),
            vec![
                ("X-RateLimit-Limit", "5".to_string()),
                ("X-RateLimit-Remaining", "0".to_string()),
                ("X-RateLimit-Reset", "2".to_string()),
                ("Retry-After", "1".to_string()),
            ]
        );
    }

    #[test]
    fn algorithm_names_are_their_configuration_names() {
        for a in Algorithm::ALL {
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
    }

    #[test]
    fn default_rules_are_the_servers() {
        let r = default_rules();
        assert_eq!(r["signin"].limit, 5);
        assert_eq!(r["token"].limit, 20);
        assert_eq!(r["authorize"].limit, 30);
        assert_eq!(r.len(), 5);
    }
}
