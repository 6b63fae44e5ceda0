//! When things happened: the fault, Sentinel's failovers, and how long clients could not write.
//!
//! - **fault time**: the first fault that hit the primary (or, if none did, the first fault)
//!   that did damage (kill, stop, pause, partition); **landed** is when the nemesis call returned
//!   (a `docker kill` takes ~50 ms, and the dying primary acknowledges writes meanwhile).
//! - **failovers**: every `+switch-master`, grouped per (old, new) pair and timed at the first
//!   sentinel that announced it. More than one means Sentinel failed over again (issue 11's CI
//!   failure: a spurious second failover 1 s after the first).
//! - **write gap**: from the fault to the completion of the first `ok` write *invoked after the
//!   fault landed*; if writes never resume, to the end of the run — an outage that lasts to the end
//!   is the longest gap of all, not no gap.

use serde::Serialize;
use serde_json::json;

use super::{Check, Measures};
use crate::experiment::TopologyKind;
use crate::history::{FaultEvent, Outcome};
use crate::recorded::Recorded;

/// One failover as Sentinel announced it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Switch {
    pub at_ms: f64,
    pub old_port: u16,
    pub new_port: u16,
}

/// Did this fault do damage (a node down, frozen or cut off)?
pub fn is_damage(f: &FaultEvent) -> bool {
    matches!(f.action.as_str(), "kill" | "stop" | "pause" | "partition") && f.error.is_none()
}

/// The first damaging fault to the primary, or the first damaging fault.
pub fn main_fault(h: &Recorded) -> Option<&FaultEvent> {
    let damage = || h.faults.iter().filter(|f| is_damage(f));
    damage().find(|f| f.role == "primary").or(damage().next())
}

/// Every `+switch-master`, first announcement of each (old, new) pair, in time order.
pub fn switches(h: &Recorded) -> Vec<Switch> {
    let mut out: Vec<Switch> = Vec::new();
    let mut events: Vec<_> = h
        .sentinel_events
        .iter()
        .filter(|e| e.event == "+switch-master")
        .collect();
    events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    for e in events {
        let parts: Vec<&str> = e.detail.split(' ').collect();
        let (Some(old), Some(new)) = (
            parts.get(2).and_then(|p| p.parse().ok()),
            parts.get(4).and_then(|p| p.parse().ok()),
        ) else {
            continue;
        };
        if !out.iter().any(|s| s.old_port == old && s.new_port == new) {
            out.push(Switch {
                at_ms: e.at_ms,
                old_port: old,
                new_port: new,
            });
        }
    }
    out
}

pub fn checks(h: &Recorded, m: &mut Measures) -> Vec<Check> {
    let exp = &h.experiment.expect;
    let fault = main_fault(h);
    m.fault_ms = fault.map(|f| f.at_ms);
    m.fault_landed_ms = fault.map(|f| f.done_ms);
    let first_event = |name: &str| {
        h.sentinel_events
            .iter()
            .filter(|e| e.event == name && e.detail.starts_with("master "))
            .map(|e| e.at_ms)
            .reduce(f64::min)
    };
    m.sdown_ms = first_event("+sdown");
    m.odown_ms = first_event("+odown");
    m.failovers = switches(h);
    m.switch_master_ms = m.failovers.first().map(|s| s.at_ms);
    m.failover_time_ms = m.switch_master_ms.zip(m.fault_ms).map(|(s, f)| s - f);

    let ok_writes = || {
        h.ops
            .iter()
            .filter(|o| o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none())
    };
    let mut completions: Vec<f64> = ok_writes().map(|o| o.complete_ms).collect();
    completions.sort_by(f64::total_cmp);
    if let Some(f) = fault {
        m.first_ok_write_after_fault_ms = ok_writes()
            .filter(|o| o.invoke_ms >= f.done_ms)
            .map(|o| o.complete_ms)
            .reduce(f64::min);
        m.writes_resumed = m.first_ok_write_after_fault_ms.is_some();
        m.write_gap_ms = Some(m.first_ok_write_after_fault_ms.unwrap_or(h.end_ms) - f.at_ms);
    }
    // The longest stretch without an ok write, the tail up to the end of the run included.
    m.longest_write_gap_ms = completions
        .iter()
        .copied()
        .chain(std::iter::once(h.end_ms))
        .collect::<Vec<f64>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);

    // Sentinel announces a failover; a cluster's watcher records its new slot owner the same way.
    let failover_possible = h.experiment.topology.kind != TopologyKind::Standalone;
    let failover = Check::new(
        "failover",
        exp.failover.map(|f| {
            if f {
                "a +switch-master".into()
            } else {
                "no +switch-master".into()
            }
        }),
        usize::from(failover_possible),
        json!({ "switch_master": !m.failovers.is_empty(), "failover_time_ms": m.failover_time_ms,
                "failovers": m.failovers }),
        exp.failover == Some(!m.failovers.is_empty()),
    );
    let write_gap = write_gap_check(h, m);
    vec![failover, write_gap]
}

/// The write-gap check from the measures already set (`write_gap_ms`, `writes_resumed`): shared
/// with [`super::cluster`], which sets them from the faulted slot range's writes only.
pub fn write_gap_check(h: &Recorded, m: &Measures) -> Check {
    let gap_max = h
        .experiment
        .expect
        .max_write_gap
        .map(|d| d.as_secs_f64() * 1000.0);
    Check::new(
        "write_gap",
        gap_max.map(|g| format!("≤ {g:.0} ms, writes resuming before the run ends")),
        usize::from(m.fault_ms.is_some()),
        json!({ "gap_ms": m.write_gap_ms, "writes_resumed": m.writes_resumed,
                "fault_ms": m.fault_ms, "fault_landed_ms": m.fault_landed_ms,
                "first_ok_write_after_fault_ms": m.first_ok_write_after_fault_ms,
                "run_end_ms": h.end_ms }),
        m.writes_resumed && gap_max.zip(m.write_gap_ms).is_some_and(|(g, w)| w <= g),
    )
}
