//! `loadgen evict`'s results: the schema of `evict.json` ([`EvictReport`]), and `evict.md` (the
//! matrix a person reads) and the console lines, rendered from it.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::capacity::{self, CapacityReport};
use super::fmt::bytes as human_bytes;
use super::markdown::{Align, Table};
use super::summary::ScenarioInfo;

/// Bumped on incompatible changes to `evict.json`.
/// 2: `verdict` may be `NOT TESTED`; `seeded_accounts`, `peak_used_memory`, `max_error_rate`.
pub const SCHEMA_VERSION: u32 = 2;

/// SAFE, UNSAFE, or NOT TESTED: the run proved nothing either way (the workload did not run, or
/// memory never came near `maxmemory`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "SAFE")]
    Safe,
    #[serde(rename = "UNSAFE")]
    Unsafe,
    #[default]
    #[serde(rename = "NOT TESTED")]
    NotTested,
}

/// One policy's outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyResult {
    pub policy: String,
    pub maxmemory_bytes: Option<u64>,
    pub verdict: Verdict,
    /// Why, in the operator's words (for SAFE: what was checked).
    pub reasons: Vec<String>,
    pub seeded_sessions: u64,
    /// Accounts that got a session while seeding (the audit reads one session of each).
    pub seeded_accounts: u64,
    /// Sign-ins refused with OOM while seeding.
    pub seed_oom_errors: u64,
    pub seed_other_errors: u64,
    /// Live sessions read as missing before their deadline during the load...
    pub lost_sessions_during_load: u64,
    /// ... and when every account came back once after it.
    pub lost_sessions_at_audit: u64,
    pub audited_sessions: u64,
    pub ratelimit_over_admissions: u64,
    pub revoked_tokens_validating: u64,
    /// `api_call`s that found their token, of all `api_call`s.
    pub token_hit_ratio: Option<f64>,
    /// Unrevoked, unexpired tokens not found (evicted).
    pub tokens_missing_before_expiry: u64,
    /// OOM errors during the load.
    pub load_oom_errors: u64,
    pub load_errors: u64,
    pub operations: u64,
    pub throughput: f64,
    /// `evicted_keys` over the whole policy run (seeding, load, audit).
    pub evicted_keys: u64,
    pub used_memory_after: u64,
    /// Highest `used_memory` seen: the INFO series during the load, and after the audit.
    pub peak_used_memory: u64,
    /// The scenario's error bound the load's non-OOM errors were held to (`slo.max_error_rate`,
    /// 1 % when unset).
    pub max_error_rate: f64,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct EvictReport {
    pub schema_version: u32,
    pub scenario: ScenarioInfo,
    /// The target URL (redacted), or `throwaway servers`.
    pub target: String,
    pub started_utc: String,
    pub results_dir: String,
    pub duration: String,
    pub users: u32,
    /// The keyspace, what it needs, what fits (measured apart from the policy runs).
    pub capacity: Option<CapacityReport>,
    pub smallest_safe_maxmemory_bytes: Option<u64>,
    pub policies: Vec<PolicyResult>,
    /// Every policy SAFE (a NOT TESTED one is not).
    pub all_safe: bool,
    pub interrupted: bool,
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Safe => "SAFE",
        Verdict::Unsafe => "UNSAFE",
        Verdict::NotTested => "NOT TESTED",
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.1} %", r * 100.0))
}

/// What the keyspace needs and the smallest maxmemory projected to hold it.
fn keyspace_needs(c: &CapacityReport) -> String {
    format!(
        "The keyspace ({} sessions, {} tokens, up to {} rate-limit counters) needs {}; the smallest maxmemory projected to be safe for it is {} ({:.0} % headroom and the replication backlog included).",
        c.scenario.sessions,
        c.scenario.tokens,
        c.scenario.counters,
        human_bytes(c.scenario_needs_bytes as f64),
        human_bytes(c.smallest_safe_maxmemory_bytes as f64),
        c.projection
            .as_ref()
            .map_or(capacity::DEFAULT_HEADROOM, |p| p.headroom.fraction)
            * 100.0
    )
}

/// One policy on one line, for the terminal.
pub fn line(r: &PolicyResult) -> String {
    format!(
        "{:<14} {:<10} lost sessions {:>6}  over-admitted {:>5}  OOM {:>6}  token hits {:>7}  evicted {:>7}",
        r.policy,
        verdict(r.verdict),
        r.lost_sessions_during_load + r.lost_sessions_at_audit,
        r.ratelimit_over_admissions,
        r.seed_oom_errors + r.load_oom_errors,
        ratio(r.token_hit_ratio),
        r.evicted_keys
    )
}

/// The terminal summary: the matrix, each verdict's reasons, the projected safe maxmemory.
pub fn table(r: &EvictReport) -> String {
    let mut o = String::new();
    for p in &r.policies {
        let _ = writeln!(o, "{}", line(p));
        for why in p.reasons.iter().chain(&p.notes) {
            let _ = writeln!(o, "    {why}");
        }
    }
    if let Some(c) = &r.capacity {
        let _ = writeln!(o, "{}", keyspace_needs(c));
    }
    o
}

fn markdown(r: &EvictReport) -> String {
    let mut o = format!(
        "# loadgen evict: {}\n\n- target: {}\n- load: {} users for {} per policy, then every account reads its session once (audit)\n- started {} UTC\n\n",
        r.scenario.name, r.target, r.users, r.duration, r.started_utc
    );
    if let Some(c) = &r.capacity {
        let _ = writeln!(o, "{}\n", keyspace_needs(c));
    }
    let right = Align::Right;
    let mut t = Table::new(&[
        ("policy", Align::Left),
        ("maxmemory", right),
        ("verdict", Align::Left),
        ("users logged out early", right),
        ("over-admitted requests", right),
        ("OOM refusals", right),
        ("token hit ratio", right),
        ("tokens evicted before expiry", right),
        ("evicted keys", right),
    ]);
    for p in &r.policies {
        t.row([
            p.policy.clone(),
            p.maxmemory_bytes
                .map_or("unset".into(), |m| human_bytes(m as f64)),
            format!("**{}**", verdict(p.verdict)),
            (p.lost_sessions_during_load + p.lost_sessions_at_audit).to_string(),
            p.ratelimit_over_admissions.to_string(),
            (p.seed_oom_errors + p.load_oom_errors).to_string(),
            ratio(p.token_hit_ratio),
            p.tokens_missing_before_expiry.to_string(),
            p.evicted_keys.to_string(),
        ]);
    }
    o.push_str(&t.render());
    o.push('\n');
    for p in &r.policies {
        let _ = writeln!(o, "## {} — {}\n", p.policy, verdict(p.verdict));
        for why in p.reasons.iter().chain(&p.notes) {
            let _ = writeln!(o, "- {why}");
        }
        let _ = writeln!(
            o,
            "- seeded {} sessions; {} operations at {:.0} ops/s, {} errors; used_memory after {}\n",
            p.seeded_sessions,
            p.operations,
            p.throughput,
            p.load_errors,
            human_bytes(p.used_memory_after as f64)
        );
    }
    if let Some(c) = &r.capacity {
        o.push_str(&capacity::markdown(c));
    }
    o
}

/// Writes `evict.json` and `evict.md` into `dir`.
pub fn write_all(dir: &Path, r: &EvictReport) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("evict.json"), json + "\n")?;
    std::fs::write(dir.join("evict.md"), markdown(r))
}
