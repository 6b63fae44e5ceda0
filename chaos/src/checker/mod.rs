//! checker: verdicts over the whole recorded history.
//!
//! Pure functions of a [`Recorded`] history (ops, acknowledged writes, faults, Sentinel events,
//! TTL probes, the final reads): no I/O, so the same code judges a live run and `chaos check` of a
//! `history.json` years later, and the corpus in `chaos/tests/histories/` shows every check
//! failing on a history built to break it.
//!
//! Every check says how much it judged (`checked`, N) and ends `pass`, `fail` or `not_checked`:
//! `not_checked` when the experiment expects nothing of it (measured only) or when N = 0 — a check
//! that judged nothing never passes. A run passes when every check the experiment *expects* passes;
//! an expected check that judged nothing fails the run (the evidence it needed was not there).
//!
//! The definitions live with their checks:
//! - [`timing`]: fault time, failover time, failovers, write gap (to the end of the run if writes
//!   never resume);
//! - [`loss`]: acknowledged writes lost by kind, split brain (a write acknowledged by a primary a
//!   newer `+switch-master` had already replaced), loss windows for persistence and partitions;
//! - [`ttl`]: short sessions never expire early, never outlive T + tolerance, never get a longer
//!   life (timed from the acknowledgement);
//! - [`cluster`]: on a Redis Cluster, the write gap of the faulted slot range only, and how long
//!   slots were unavailable;
//! - [`keys`]: revocations kept, no key without TTL, rate-limit windows, the old primary's rejoin.

pub mod cluster;
pub mod keys;
pub mod loss;
pub mod timing;
pub mod ttl;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::experiment::TopologyKind;
use crate::history::{Op, Outcome};
use crate::recorded::Recorded;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Nothing was judged: measured only, or no evidence (N = 0).
    NotChecked,
}

/// One invariant: what the experiment expects, how much was judged, what was measured.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// What the experiment file requires, in words ("≤ 0", "true"), or "measured only".
    pub expected: String,
    /// Whether the experiment expects it (a `not_checked` expected check fails the run).
    pub required: bool,
    /// How many things (writes, probes, keys...) the check judged.
    pub checked: usize,
    pub measured: Value,
    pub status: Status,
}

impl Check {
    /// A check whose expectation is `expected` (`None`: measured only) and which holds when
    /// `holds` says so; `not_checked` when nothing was judged.
    pub fn new(
        name: &'static str,
        expected: Option<String>,
        checked: usize,
        measured: Value,
        holds: bool,
    ) -> Check {
        let status = match (&expected, checked) {
            (None, _) | (_, 0) => Status::NotChecked,
            (Some(_), _) if holds => Status::Pass,
            _ => Status::Fail,
        };
        Check {
            name,
            required: expected.is_some(),
            expected: expected.unwrap_or_else(|| "measured only".into()),
            checked,
            measured,
            status,
        }
    }

    /// Does this check make the run fail?
    pub fn fails_run(&self) -> bool {
        self.status == Status::Fail || (self.required && self.status == Status::NotChecked)
    }
}

/// Per operation kind: counts and the window in which errors happened.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpStats {
    pub ok: usize,
    pub fail: usize,
    pub indeterminate: usize,
    pub first_error_ms: Option<f64>,
    pub last_error_ms: Option<f64>,
}

/// The figures the summary line, `--repeat` and the timeline need.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measures {
    /// When the first fault that hit the primary was fired, and when it had landed.
    pub fault_ms: Option<f64>,
    pub fault_landed_ms: Option<f64>,
    pub old_primary_port: Option<u16>,
    pub sdown_ms: Option<f64>,
    pub odown_ms: Option<f64>,
    pub switch_master_ms: Option<f64>,
    pub failover_time_ms: Option<f64>,
    /// Every switch Sentinel announced, in order: (first announcement ms, old port, new port).
    pub failovers: Vec<timing::Switch>,
    pub first_ok_write_after_fault_ms: Option<f64>,
    /// Fault → first ok write invoked after the fault landed, or → end of run if none.
    pub write_gap_ms: Option<f64>,
    /// Whether writes resumed after the fault before the run ended.
    pub writes_resumed: bool,
    pub longest_write_gap_ms: f64,
    pub acked_writes: usize,
    pub acked_writes_lost: usize,
    pub lost_by_kind: BTreeMap<&'static str, usize>,
    pub lost_window_ms: Option<(f64, f64)>,
    pub split_brain_writes: usize,
    /// From the switch that replaced a primary to the last write that primary acknowledged.
    pub split_brain_window_ms: Option<f64>,
}

/// Everything the checker concluded.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub measures: Measures,
    pub checks: Vec<Check>,
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Verdict {
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Judges a recorded history against its experiment's expectations.
pub fn judge(h: &Recorded) -> Verdict {
    let mut m = Measures {
        old_primary_port: Some(h.initial_primary_port),
        ..Measures::default()
    };
    let mut checks = timing::checks(h, &mut m);
    checks.extend(loss::checks(h, &mut m));
    checks.extend(ttl::checks(h, &m));
    checks.extend(keys::checks(h));
    let mut verdict = Verdict {
        pass: !checks.iter().any(Check::fails_run),
        measures: m,
        checks,
        ops: op_stats(&h.ops),
    };
    if h.experiment.topology.kind == TopologyKind::Cluster {
        cluster::refine(&mut verdict, h);
    }
    verdict
}

fn op_stats(ops: &[Op]) -> BTreeMap<&'static str, OpStats> {
    let mut out: BTreeMap<&'static str, OpStats> = BTreeMap::new();
    for o in ops {
        let s = out.entry(o.kind.name()).or_default();
        match o.outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Fail => s.fail += 1,
            Outcome::Indeterminate => s.indeterminate += 1,
        }
        if o.outcome != Outcome::Ok {
            s.first_error_ms = Some(
                s.first_error_ms
                    .map_or(o.complete_ms, |t| t.min(o.complete_ms)),
            );
            s.last_error_ms = Some(
                s.last_error_ms
                    .map_or(o.complete_ms, |t| t.max(o.complete_ms)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
