//! `evict.json` (data) and `evict.md` (the matrix a person reads), from one [`EvictReport`].

use std::fmt::Write;
use std::path::Path;

use super::{EvictReport, PolicyResult, Verdict};
use crate::capacity::CapacityReport;
use crate::capacity::model::human_bytes;

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Safe => "SAFE",
        Verdict::Unsafe => "UNSAFE",
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
            .map_or(crate::capacity::DEFAULT_HEADROOM, |p| p.headroom.fraction)
            * 100.0
    )
}

/// One policy on one line, for the terminal.
pub fn line(r: &PolicyResult) -> String {
    format!(
        "{:<14} {:<6} lost sessions {:>6}  over-admitted {:>5}  OOM {:>6}  token hits {:>7}  evicted {:>7}",
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
    o.push_str("| policy | maxmemory | verdict | users logged out early | over-admitted requests | OOM refusals | token hit ratio | tokens evicted before expiry | evicted keys |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for p in &r.policies {
        let _ = writeln!(
            o,
            "| {} | {} | **{}** | {} | {} | {} | {} | {} | {} |",
            p.policy,
            p.maxmemory_bytes
                .map_or("unset".into(), |m| human_bytes(m as f64)),
            verdict(p.verdict),
            p.lost_sessions_during_load + p.lost_sessions_at_audit,
            p.ratelimit_over_admissions,
            p.seed_oom_errors + p.load_oom_errors,
            ratio(p.token_hit_ratio),
            p.tokens_missing_before_expiry,
            p.evicted_keys
        );
    }
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
        o.push_str(&crate::capacity::render_markdown(c));
    }
    o
}

/// Writes `evict.json` and `evict.md` into `dir`.
pub fn write_all(dir: &Path, r: &EvictReport) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("evict.json"), json + "\n")?;
    std::fs::write(dir.join("evict.md"), markdown(r))
}
