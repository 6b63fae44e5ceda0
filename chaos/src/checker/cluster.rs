//! What the checker's verdict means on a Redis Cluster, applied at the end of
//! [`super::judge`].
//!
//! The generic checker counts every ok write; on a cluster the two primaries that were not hit
//! keep acking writes for their own slots, so the write gap over *all* writes says nothing. Here:
//! - **faulted range**: the slots the faulted primary owned (from the `+switch-master` the cluster
//!   watcher recorded for it, else [`RANGES`]`[0]`, whose owner `target = "primary"` hits);
//! - **write gap** (replaces the generic one, and its `max_write_gap` verdict): the longest
//!   from the fault to the first ok session write, sent after the fault landed, *whose key hashes
//!   into the faulted range* (each session's slot is recorded, so `chaos check` re-judges it);
//! - **slots unavailable** (measured only): how long at least one node said `cluster_state:fail`.
//!
//! Failover time and acked writes lost need nothing extra: the watcher's `+switch-master` and the
//! final reads through the cluster URL feed the generic definitions.

use serde_json::json;

use super::timing::{main_fault, write_gap_check};
use super::{Check, Verdict};
use crate::db::cluster::RANGES;
use crate::history::{Op, Outcome};
use crate::recorded::Recorded;

/// The faulted primary's slot range, `(first, last)`.
fn faulted_range(h: &Recorded, fault_port: Option<u16>) -> Option<(u16, u16)> {
    let switched = h
        .sentinel_events
        .iter()
        .filter(|e| e.sentinel == "cluster" && e.event == "+switch-master")
        .find_map(|e| {
            // `slots:<first>-<last> <ip> <old port> <ip> <new port>` (see `db::cluster`).
            let w: Vec<&str> = e.detail.split(' ').collect();
            let range = w.first()?.strip_prefix("slots:")?;
            let old: u16 = w.get(2)?.parse().ok()?;
            (Some(old) == fault_port).then_some(())?;
            let (a, b) = range.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
    switched.or((fault_port == Some(h.initial_primary_port)).then_some(RANGES[0]))
}

/// Total time during which some node reported `cluster_state:fail`.
fn unavailable_ms(h: &Recorded) -> f64 {
    let mut failing = std::collections::BTreeSet::new();
    let (mut total, mut since) = (0.0, None);
    for e in h
        .sentinel_events
        .iter()
        .filter(|e| e.event == "+cluster-state")
    {
        let Some((node, state)) = e.detail.split_once(' ') else {
            continue;
        };
        if state == "fail" {
            failing.insert(node.to_string());
        } else {
            failing.remove(node);
        }
        match (failing.is_empty(), since) {
            (false, None) => since = Some(e.at_ms),
            (true, Some(s)) => {
                total += e.at_ms - s;
                since = None;
            }
            _ => {}
        }
    }
    total + since.map_or(0.0, |s| h.end_ms - s)
}

/// Rewrites `verdict` for a cluster topology (see the module docs).
pub fn refine(verdict: &mut Verdict, h: &Recorded) {
    let fault = main_fault(h);
    let range = faulted_range(h, fault.map(|f| f.port));
    let in_range = |o: &Op| {
        let slot = o
            .session
            .and_then(|i| h.sessions.get(i))
            .and_then(|s| s.slot);
        slot.zip(range).is_some_and(|(s, (a, b))| a <= s && s <= b)
    };
    let ok_in_range: Vec<&Op> = h
        .ops
        .iter()
        .filter(|o| o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none())
        .filter(|o| in_range(o))
        .collect();
    let m = &mut verdict.measures;
    if let Some(f) = fault.filter(|_| range.is_some()) {
        m.first_ok_write_after_fault_ms = ok_in_range
            .iter()
            .filter(|o| o.invoke_ms >= f.done_ms)
            .map(|o| o.complete_ms)
            .reduce(f64::min);
        m.writes_resumed = m.first_ok_write_after_fault_ms.is_some();
        m.write_gap_ms = Some(m.first_ok_write_after_fault_ms.unwrap_or(h.end_ms) - f.at_ms);
    }
    let write_gap = write_gap_check(h, m);
    let faulted = Check::new(
        "cluster_faulted_slots",
        None,
        ok_in_range.len(),
        json!({
            "range": range.map(|(a, b)| format!("{a}-{b}")),
            "ok_session_writes_in_range": ok_in_range.len(),
            "write_gap_ms": m.write_gap_ms,
            "slots_unavailable_ms": unavailable_ms(h),
        }),
        true,
    );
    verdict.checks.retain(|c| c.name != "write_gap");
    verdict.checks.push(write_gap);
    verdict.checks.push(faulted);
    verdict.pass = !verdict.checks.iter().any(Check::fails_run);
}
