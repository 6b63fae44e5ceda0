//! Meaning checks that serde cannot express: zero counts and weights, durations under a second,
//! fractions outside 0–1, percentiles outside 0–100, endpoints without a rule, Redis settings the
//! server would refuse. Each problem names its TOML path, so [`super::source`] can point at the
//! line (or the `--set`) it came from; all problems are reported at once.

use std::time::Duration;

use super::schema::{MAX_CONNECTIONS, Op, REQUIRABLE, Scenario};
use super::values::parse_size;

const POLICIES: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

fn valid_endpoint(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 64
        && e.chars()
            .all(|c| c.is_ascii_graphic() && !":*?[]\\\"'{}".contains(c))
}

/// A semantic error before it is given a location: the TOML path of the value and the message.
#[derive(Debug)]
pub struct Invalid {
    pub path: Vec<String>,
    pub message: String,
}

fn invalid(path: &[&str], message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
    }
}

/// Most accounts loadgen keeps state for; each costs ~200 bytes of loadgen memory per session.
pub const MAX_ACCOUNTS: u32 = 2_000_000;

impl Scenario {
    /// Checks meaning; every problem is returned, not only the first.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let l = &self.load;
        if l.users == 0 {
            let why = if l.rate.is_some() {
                "a target rate needs at least one user to send it"
            } else {
                "expected at least 1"
            };
            out.push(invalid(&["load", "users"], format!("is 0: {why}")));
        }
        if let Some(r) = l.ramp
            && !(r.is_finite() && r > 0.0)
        {
            out.push(invalid(
                &["load", "ramp"],
                "expected users started per second, greater than 0 (e.g. 50)",
            ));
        }
        if let Some(c) = l.connections
            && !(1..=MAX_CONNECTIONS).contains(&c)
        {
            out.push(invalid(
                &["load", "connections"],
                format!("is {c}: expected connections to Redis from 1 to {MAX_CONNECTIONS}"),
            ));
        }
        if l.duration.0 < Duration::from_secs(1) {
            out.push(invalid(
                &["load", "duration"],
                format!(
                    "is {}: expected at least 1s (a duration like \"10s\" or \"5m\")",
                    l.duration
                ),
            ));
        }
        if let Some(r) = l.rate
            && !(r.is_finite() && r > 0.0)
        {
            out.push(invalid(
                &["load", "rate"],
                "expected operations per second, greater than 0 (or leave it out for a closed model)",
            ));
        }
        self.validate_keyspace(&mut out);
        if self.mix.total() == 0 {
            out.push(invalid(
                &["mix"],
                "all weights are 0: expected at least one of login, page_view, api_call, token_refresh, logout, ratelimit, logout_everywhere with a weight ≥ 1",
            ));
        }
        self.validate_ratelimit(&mut out);
        self.validate_redis(&mut out);
        self.validate_slo(&mut out);
        out
    }

    fn validate_keyspace(&self, out: &mut Vec<Invalid>) {
        let k = &self.keyspace;
        let positive = |v: u32, name: &str, out: &mut Vec<Invalid>| {
            if v == 0 {
                out.push(invalid(&["keyspace", name], "is 0: expected at least 1"));
            }
        };
        positive(k.users, "users", out);
        positive(k.sessions_per_user, "sessions_per_user", out);
        positive(k.client_ips, "client_ips", out);
        if k.users as u64 * k.sessions_per_user as u64 > MAX_ACCOUNTS as u64 {
            out.push(invalid(
                &["keyspace", "users"],
                format!("users × sessions_per_user is above {MAX_ACCOUNTS}: loadgen keeps every session id in memory"),
            ));
        }
        if cache::KeySchema::new(&k.prefix).is_err() {
            out.push(invalid(
                &["keyspace", "prefix"],
                "expected printable ASCII without spaces, `:`, `*`, `?`, brackets, braces or quotes (e.g. \"loadgen\")",
            ));
        }
        if k.endpoints.is_empty() && self.mix.ratelimit > 0 {
            out.push(invalid(
                &["keyspace", "endpoints"],
                "is empty but mix.ratelimit > 0: expected endpoint names such as [\"authorize\", \"token\"]",
            ));
        }
        let rules = self.ratelimit.resolved_rules();
        for e in &k.endpoints {
            if !rules.contains_key(e) {
                out.push(invalid(
                    &["keyspace", "endpoints"],
                    format!(
                        "endpoint `{e}` has no rate-limit rule: expected one of {} or a [ratelimit.rules.{e}] table",
                        rules.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if k.payload.max() > 1024 * 1024 {
            out.push(invalid(
                &["keyspace", "payload"],
                "expected at most 1048576 bytes",
            ));
        }
        for (name, d) in [
            ("session_idle_timeout", k.session_idle_timeout),
            ("session_absolute_lifetime", k.session_absolute_lifetime),
            ("token_ttl", k.token_ttl),
        ] {
            if d.0 < Duration::from_secs(1) {
                out.push(invalid(
                    &["keyspace", name],
                    "expected at least 1s (e.g. \"60m\")",
                ));
            }
        }
        // The token cache refuses claims that outlive its longest token lifetime (24 h): every
        // token put would fail.
        if k.token_ttl.0 > Duration::from_secs(24 * 3600) {
            out.push(invalid(
                &["keyspace", "token_ttl"],
                format!(
                    "is {}: expected at most 24h (the token cache refuses tokens that outlive its longest token lifetime)",
                    k.token_ttl
                ),
            ));
        }
        if !(0.0..=1.0).contains(&k.revoked_probe) {
            out.push(invalid(
                &["keyspace", "revoked_probe"],
                "expected a fraction from 0 to 1 (e.g. 0.05)",
            ));
        }
    }

    fn validate_ratelimit(&self, out: &mut Vec<Invalid>) {
        for (endpoint, r) in &self.ratelimit.rules {
            let path = ["ratelimit", "rules", endpoint.as_str()];
            if !valid_endpoint(endpoint) {
                out.push(invalid(
                    &path,
                    "endpoint names are 1–64 printable ASCII characters without spaces, `:`, `*`, `?`, brackets, braces or quotes",
                ));
            }
            if r.limit == 0 {
                out.push(invalid(
                    &[&path[..], &["limit"]].concat(),
                    "is 0: expected at least 1",
                ));
            }
            if r.window.0 < Duration::from_millis(1) {
                out.push(invalid(
                    &[&path[..], &["window"]].concat(),
                    "expected at least 1ms (e.g. \"60s\")",
                ));
            }
        }
    }

    fn validate_redis(&self, out: &mut Vec<Invalid>) {
        let r = &self.redis;
        if let Some(m) = &r.maxmemory
            && parse_size(m).is_err()
        {
            out.push(invalid(
                &["redis", "maxmemory"],
                "expected a size like \"64mb\", \"1gb\" or \"1048576\"",
            ));
        }
        if let Some(p) = &r.maxmemory_policy
            && !POLICIES.contains(&p.as_str())
        {
            out.push(invalid(
                &["redis", "maxmemory_policy"],
                format!(
                    "`{p}` is not a policy: expected one of {}",
                    POLICIES.join(", ")
                ),
            ));
        }
        if !(3..=16).contains(&r.primaries) {
            out.push(invalid(
                &["redis", "primaries"],
                format!(
                    "is {}: a throwaway cluster needs 3 to 16 primaries",
                    r.primaries
                ),
            ));
        }
        for (name, d) in [
            ("connect_timeout", r.connect_timeout),
            ("response_timeout", r.response_timeout),
        ] {
            if d.0 < Duration::from_millis(1) {
                out.push(invalid(
                    &["redis", name],
                    "expected at least 1ms (e.g. \"1s\")",
                ));
            }
        }
    }

    fn validate_slo(&self, out: &mut Vec<Invalid>) {
        let s = &self.slo;
        if let Some(e) = s.max_error_rate
            && !(0.0..=1.0).contains(&e)
        {
            out.push(invalid(
                &["slo", "max_error_rate"],
                "expected a fraction from 0 to 1 (0.001 = 0.1 % of operations may fail)",
            ));
        }
        if let Some(t) = s.min_throughput
            && !(t.is_finite() && t >= 0.0)
        {
            out.push(invalid(
                &["slo", "min_throughput"],
                "expected operations per second, 0 or more",
            ));
        }
        for (i, r) in s.require.iter().enumerate() {
            if !REQUIRABLE.contains(&r.as_str()) {
                out.push(invalid(
                    &["slo", "require", &i.to_string()],
                    format!(
                        "`{r}` is not a check: expected one of {}",
                        REQUIRABLE.join(", ")
                    ),
                ));
            }
        }
        for (i, l) in s.latency.iter().enumerate() {
            let idx = i.to_string();
            if l.op != "all" && !Op::ALL.iter().any(|o| o.name() == l.op) {
                out.push(invalid(
                    &["slo", "latency", &idx, "op"],
                    format!(
                        "`{}` is not an operation: expected all, {}",
                        l.op,
                        Op::ALL.map(Op::name).join(", ")
                    ),
                ));
            }
            if !(l.percentile > 0.0 && l.percentile <= 100.0) {
                out.push(invalid(
                    &["slo", "latency", &idx, "percentile"],
                    format!(
                        "{} is outside 0–100: expected a percentile such as 99 or 99.9",
                        l.percentile
                    ),
                ));
            }
        }
    }
}
