//! cluster_check: what the checker's verdict means on a Redis Cluster, applied after
//! [`crate::checker::judge`].
//!
//! The generic checker counts every ok write; on a cluster the two primaries that were not hit
//! keep acking writes for their own slots, so the write gap over *all* writes says nothing. Here:
//! - **faulted range**: the slots the faulted primary owned (from the `+switch-master` the cluster
//!   watcher recorded for it, else [`RANGES`]`[0]`, whose owner `target = "primary"` hits);
//! - **write gap** (replaces the generic one, and its `max_write_gap` verdict): the longest
//!   stretch from the fault without an ok session write *whose key hashes into the faulted range*
//!   (session ids carry a hash tag, so the workload's sessions spread over the three ranges);
//! - **slots unavailable** (measured only): how long at least one node said `cluster_state:fail`.
//!
//! Failover time and acked writes lost need nothing extra: the watcher's `+switch-master` and the
//! final reads through the cluster URL feed the generic definitions.

use cache::KeySchema;
use serde_json::json;

use crate::checker::{Evidence, Invariant, Verdict};
use crate::db::cluster::{RANGES, key_slot};
use crate::history::Outcome;

/// The faulted primary's slot range, `(first, last)`.
fn faulted_range(ev: &Evidence, fault_port: Option<u16>) -> Option<(u16, u16)> {
    let switched = ev
        .sentinel_events
        .iter()
        .filter(|e| e.sentinel == "cluster" && e.event == "+switch-master")
        .find_map(|e| {
            let mut w = e.detail.split_whitespace().skip(1);
            let (range, old) = (w.next()?, w.next()?);
            let old: u16 = old.rsplit(':').next()?.parse().ok()?;
            (Some(old) == fault_port).then_some(())?;
            let (a, b) = range.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
    switched.or((fault_port == Some(ev.initial_primary_port)).then_some(RANGES[0]))
}

/// Total time during which some node reported `cluster_state:fail`.
fn unavailable_ms(ev: &Evidence, end_ms: f64) -> f64 {
    let mut failing = std::collections::BTreeSet::new();
    let (mut total, mut since) = (0.0, None);
    for e in ev
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
    total + since.map_or(0.0, |s| end_ms - s)
}

/// Rewrites `verdict` for a cluster topology (see the module docs).
pub fn refine(verdict: &mut Verdict, ev: &Evidence) {
    let m = &mut verdict.measures;
    let fault_port = ev
        .faults
        .iter()
        .find(|f| m.fault_ms == Some(f.at_ms))
        .map(|f| f.port);
    let range = faulted_range(ev, fault_port);
    let keys = KeySchema::default();
    let in_range = |slot: u16| range.is_some_and(|(a, b)| a <= slot && slot <= b);
    let mut completions: Vec<f64> = ev
        .ops
        .iter()
        .filter(|o| o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none())
        .filter_map(|o| {
            let s = ev.sessions.get(o.session?)?;
            in_range(key_slot(&keys.session(s.id.expose()))).then_some(o.complete_ms)
        })
        .collect();
    completions.sort_by(f64::total_cmp);
    let in_range_writes = completions.len();
    m.write_gap_ms = m.fault_ms.filter(|_| range.is_some()).and_then(|f| {
        let after: Vec<f64> = std::iter::once(f)
            .chain(completions.iter().copied().filter(|&t| t >= f))
            .collect();
        after.windows(2).map(|w| w[1] - w[0]).reduce(f64::max)
    });
    let gap = m.write_gap_ms;
    let end = ev.ops.iter().map(|o| o.complete_ms).fold(0.0, f64::max);
    let unavailable = unavailable_ms(ev, end);
    let gap_max = ev
        .experiment
        .expect
        .max_write_gap
        .map(|d| d.as_secs_f64() * 1000.0);
    for inv in verdict
        .invariants
        .iter_mut()
        .filter(|i| i.name == "write_gap")
    {
        inv.measured = json!(gap);
        inv.holds = gap_max.map(|g| gap.is_some_and(|w| w <= g));
    }
    verdict.invariants.push(Invariant {
        name: "cluster_faulted_slots",
        expected: "measured only".into(),
        measured: json!({
            "range": range.map(|(a, b)| format!("{a}-{b}")),
            "ok_session_writes_in_range": in_range_writes,
            "write_gap_ms": gap,
            "slots_unavailable_ms": unavailable,
        }),
        holds: None,
    });
    verdict.pass = verdict.invariants.iter().all(|i| i.holds != Some(false));
}
