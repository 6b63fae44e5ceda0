//! What the stores promise about their keys, judged on the final reads and the workload's own
//! independent looks: revoked tokens stay revoked, every key has a TTL, a rate-limit counter never
//! outlives its window, and a restarted old primary comes back as a replica.
//!
//! The rate-limit window is read with a `PTTL` of its own after each check (recorded in the op) and
//! by the final scan, never from the limiter's reply: the limiter computes its `reset_after` from
//! the TTL its own script just set, so that number could never disagree with the window.

use serde_json::json;

use super::Check;
use crate::client::RATE_WINDOW;
use crate::history::{OpKind, Outcome};
use crate::recorded::Recorded;

pub fn checks(h: &Recorded) -> Vec<Check> {
    let exp = &h.experiment.expect;
    let fs = &h.final_state;
    // Revocations were read back if the final reads got that far.
    let revocations = if fs.writes_checked > 0 {
        h.writes
            .iter()
            .filter(|w| w.kind == OpKind::TokenRevoke)
            .count()
    } else {
        0
    };
    let window_ms = RATE_WINDOW.as_millis() as i64;
    let looks: Vec<i64> = h
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::RateLimitCheck && o.outcome == Outcome::Ok)
        .filter_map(|o| o.pttl_ms)
        .collect();
    let over = looks.iter().filter(|&&t| t == -1 || t > window_ms).count();
    let rejoins: Vec<_> = h
        .faults
        .iter()
        .filter(|f| f.action.starts_with("rejoin") || f.action == "still-primary")
        .collect();
    let rejoined = rejoins
        .iter()
        .all(|f| f.error.is_none() && f.action == "rejoined-as-replica");
    vec![
        Check::new(
            "revocations_kept",
            exp.revocations_kept.then(|| "0 revoked tokens valid again".into()),
            revocations,
            json!({ "valid_again": fs.revocations_valid_again.len() }),
            fs.revocations_valid_again.is_empty(),
        ),
        // Always expected: every key the stores write must have a TTL, whatever the experiment.
        Check::new(
            "no_key_without_ttl",
            Some("0 keys without TTL".into()),
            fs.keys_scanned,
            json!({ "scanned": fs.keys_scanned, "without_ttl": fs.keys_without_ttl, "error": fs.error }),
            fs.keys_without_ttl == 0,
        ),
        Check::new(
            "ratelimit_window_kept",
            Some(format!("every counter's PTTL ≤ {window_ms} ms")),
            looks.len() + fs.counters_scanned,
            json!({ "looks": looks.len(), "looks_over_window": over,
                    "counters_scanned": fs.counters_scanned, "counters_beyond_window": fs.counters_beyond_window,
                    "max_pttl_ms": looks.iter().max() }),
            over + fs.counters_beyond_window == 0,
        ),
        Check::new(
            "old_primary_rejoins_as_replica",
            exp.old_primary_rejoins.then(|| "true".into()),
            rejoins.len(),
            json!(rejoins
                .iter()
                .map(|f| json!({"node": f.node, "at_ms": f.at_ms, "outcome": f.action, "ok": f.error.is_none()}))
                .collect::<Vec<_>>()),
            rejoined,
        ),
    ]
}
