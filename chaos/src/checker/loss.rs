//! What was acknowledged and then lost, and who acknowledged it.
//!
//! - **acked write lost**: a write of any kind (session create, session update, token put, token
//!   revoke) answered `ok` that the final reads, once the system settled, do not find: the session
//!   gone, the update not visible, the token unknown, the revocation's tombstone gone. Indeterminate
//!   writes are never counted either way.
//! - **split brain**: an `ok` write sent to (node recorded *before* the call) a primary that a
//!   `+switch-master` had already replaced when the write was acknowledged — two primaries taking
//!   writes at once. Writes lost by a failover but acknowledged before its announcement are lost
//!   writes, not split brain: the client could not have known.
//! - **loss windows**: a crash with persistence excuses only writes acknowledged within the
//!   promise (`max_loss_window` before the crash, up to the moment the kill landed); a partition
//!   with `min-replicas-max-lag` excuses only writes acknowledged within `max_loss_after_fault`
//!   after it landed. Either way a lost write acknowledged outside the window is a violation.

use std::collections::BTreeMap;

use serde_json::json;

use super::timing::main_fault;
use super::{Check, Measures};
use crate::history::{AckedWrite, Outcome};
use crate::recorded::Recorded;

/// How long before a fault a write may still be missing from the replicas: asynchronous
/// replication ships a write within a millisecond or two on a healthy link; 100 ms is generous.
pub const REPLICATION_SLACK_MS: f64 = 100.0;

pub fn checks(h: &Recorded, m: &mut Measures) -> Vec<Check> {
    let exp = &h.experiment.expect;
    let fs = &h.final_state;
    let lost: Vec<&AckedWrite> = fs
        .lost_writes
        .iter()
        .filter_map(|&i| h.writes.get(i))
        .collect();
    m.acked_writes = h.writes.len();
    m.acked_writes_lost = lost.len();
    m.lost_by_kind = BTreeMap::new();
    for w in &lost {
        *m.lost_by_kind.entry(w.kind.name()).or_default() += 1;
    }
    m.lost_window_ms = lost.iter().fold(None, |acc, w| match acc {
        None => Some((w.acked_ms, w.acked_ms)),
        Some((a, b)) => Some((f64::min(a, w.acked_ms), f64::max(b, w.acked_ms))),
    });
    let expected = match (exp.min_acked_writes_lost, exp.max_acked_writes_lost) {
        (None, None) => None,
        (Some(lo), None) => Some(format!("≥ {lo} (a loss this fault must show)")),
        (None, Some(hi)) => Some(format!("≤ {hi}")),
        (Some(lo), Some(hi)) => Some(format!("between {lo} and {hi}")),
    };
    let n = lost.len();
    let acked = Check::new(
        "acked_writes_lost",
        expected,
        fs.writes_checked,
        json!({ "lost": n, "by_kind": m.lost_by_kind, "acked": h.writes.len(),
                "window_ms": m.lost_window_ms, "error": fs.error }),
        exp.min_acked_writes_lost.is_none_or(|lo| n >= lo)
            && exp.max_acked_writes_lost.is_none_or(|hi| n <= hi),
    );
    vec![
        acked,
        split_brain(h, m),
        persistence(h, &lost),
        loss_after_fault(h, &lost),
    ]
}

fn split_brain(h: &Recorded, m: &mut Measures) -> Check {
    let exp = &h.experiment.expect;
    let first_switch = m.failovers.first().map(|s| s.at_ms);
    let primary_at = |t: f64| {
        m.failovers
            .iter()
            .rfind(|s| s.at_ms <= t)
            .map_or(h.initial_primary_port, |s| s.new_port)
    };
    // Every ok write is judged against the primary of its time (before any switch: the first).
    let mut judged = 0;
    // Replaced primary -> (writes it acknowledged after its replacement, last such ack).
    let mut stale: BTreeMap<u16, (usize, f64)> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for o in h.ops.iter().filter(|o| {
        o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none() && o.node_port.is_some()
    }) {
        judged += 1;
        if first_switch.is_none_or(|s| o.complete_ms <= s) {
            continue;
        }
        let node = o.node_port.unwrap_or_default();
        if node != primary_at(o.complete_ms) {
            let e = stale.entry(node).or_insert((0, o.complete_ms));
            e.0 += 1;
            e.1 = e.1.max(o.complete_ms);
            *by_kind.entry(o.kind.name()).or_default() += 1;
        }
    }
    m.split_brain_writes = stale.values().map(|(n, _)| n).sum();
    m.split_brain_window_ms = stale
        .iter()
        .filter_map(|(port, (_, last))| {
            let replaced = m.failovers.iter().find(|s| s.old_port == *port)?.at_ms;
            Some(last - replaced)
        })
        .reduce(f64::max);
    let primaries: Vec<_> = stale
        .iter()
        .map(|(port, (n, last))| json!({"port": port, "writes_after_replacement": n, "last_ack_ms": last}))
        .collect();
    Check::new(
        "split_brain_writes",
        exp.max_split_brain_writes.map(|x| format!("≤ {x}")),
        judged,
        json!({ "writes": m.split_brain_writes, "by_kind": by_kind,
                "window_ms": m.split_brain_window_ms, "stale_primaries": primaries,
                "failovers": m.failovers.len() }),
        exp.max_split_brain_writes
            .is_none_or(|x| m.split_brain_writes <= x),
    )
}

/// Standalone crash + restart: only writes acknowledged within the promise may be lost.
fn persistence(h: &Recorded, lost: &[&AckedWrite]) -> Check {
    let window = h.experiment.expect.max_loss_window;
    let crash = h.faults.iter().find(|f| {
        f.role == "primary" && matches!(f.action.as_str(), "kill" | "stop") && f.error.is_none()
    });
    let (checked, outside, before) = match crash {
        Some(c) => {
            let w = window.map_or(0.0, |w| w.as_secs_f64() * 1000.0);
            let outside = lost
                .iter()
                .filter(|x| x.acked_ms < c.at_ms - w || x.acked_ms > c.done_ms)
                .count();
            let before = h.writes.iter().filter(|x| x.acked_ms < c.at_ms).count();
            (h.final_state.writes_checked, outside, before)
        }
        None => (0, 0, 0),
    };
    let lost_before = crash.map_or(0, |c| {
        lost.iter().filter(|x| x.acked_ms <= c.done_ms).count()
    });
    Check::new(
        "persistence_loss_within_promise",
        window.map(|w| {
            format!(
                "every lost write acked < {} ms before the crash (none after it)",
                w.as_millis()
            )
        }),
        checked,
        json!({ "acked_before_crash": before, "lost_before_crash": lost_before,
                "lost_outside_window": outside,
                "survival_rate": if before > 0 { before.saturating_sub(lost_before) as f64 / before as f64 } else { 1.0 } }),
        outside == 0,
    )
}

/// A partition bounded by `min-replicas-max-lag`: loss only within the bound after the fault.
fn loss_after_fault(h: &Recorded, lost: &[&AckedWrite]) -> Check {
    let bound = h.experiment.expect.max_loss_after_fault;
    let fault = main_fault(h);
    let outside: Vec<f64> = match (fault, bound) {
        (Some(f), Some(b)) => lost
            .iter()
            .map(|x| x.acked_ms)
            .filter(|&t| {
                t < f.at_ms - REPLICATION_SLACK_MS || t > f.done_ms + b.as_secs_f64() * 1000.0
            })
            .collect(),
        _ => Vec::new(),
    };
    let latest = fault.and_then(|f| lost.iter().map(|x| x.acked_ms - f.done_ms).reduce(f64::max));
    Check::new(
        "loss_within_lag_after_fault",
        bound.map(|b| {
            format!(
                "every lost write acked ≤ {} ms after the fault",
                b.as_millis()
            )
        }),
        if fault.is_some() {
            h.final_state.writes_checked
        } else {
            0
        },
        json!({ "lost": lost.len(), "lost_outside_bound": outside.len(),
                "latest_lost_after_fault_ms": latest }),
        outside.is_empty(),
    )
}
