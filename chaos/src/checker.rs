//! checker: verdicts over the whole recorded history.
//!
//! Pure functions of what was recorded (ops, acknowledged sessions, faults, Sentinel events, TTL
//! probes, the final reads): no I/O, so they are unit-tested on hand-made histories. Each
//! invariant carries its measured value whether or not the experiment judges it; an operator
//! reads the numbers even when nothing was expected of them.
//!
//! Definitions, chosen to match what the application would experience:
//! - **fault time**: the first fault that hit the primary (or, if none did, the first fault);
//! - **acked write lost**: a session create answered `ok` whose key is absent once the system has
//!   settled (its TTL outlives the run, so expiry cannot explain it); indeterminate creates are
//!   never counted either way;
//! - **write gap**: the longest stretch without an `ok` write, counted from the fault time;
//! - **failover time**: fault time → first `+switch-master` (Sentinel's own event);
//! - **split brain**: writes acknowledged *after* the promotion that were served by the old
//!   primary, or that were lost;
//! - **TTL**: a short session missing at half its life is an early expiry unless a fault that can
//!   lose writes happened between its creation and that look (then it is a lost write); present
//!   after T + tolerance is a resurrection.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::experiment::Experiment;
use crate::history::{FaultEvent, Op, Outcome, SentinelEvent, SessionRecord};
use crate::observe::FinalState;
use crate::ttl::{Probe, ProbeResult};

/// One invariant with its measurement and, if the experiment declared a bound, its verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    /// What the experiment file requires, in words ("≤ 0", "true"), or "measured only".
    pub expected: String,
    pub measured: Value,
    /// `None` = measured only.
    pub holds: Option<bool>,
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

/// Timing facts the timeline and the summary need.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measures {
    pub fault_ms: Option<f64>,
    pub old_primary_port: Option<u16>,
    pub sdown_ms: Option<f64>,
    pub odown_ms: Option<f64>,
    pub switch_master_ms: Option<f64>,
    pub failover_time_ms: Option<f64>,
    pub first_ok_write_after_fault_ms: Option<f64>,
    /// Longest time without an ok write, counted from the fault.
    pub write_gap_ms: Option<f64>,
    pub longest_write_gap_ms: f64,
    pub acked_writes: usize,
    pub acked_writes_lost: usize,
    pub lost_window_ms: Option<(f64, f64)>,
    pub split_brain_writes: usize,
}

/// Everything the checker concluded.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub measures: Measures,
    pub invariants: Vec<Invariant>,
    pub ops: BTreeMap<&'static str, OpStats>,
}

/// Inputs to [`judge`].
pub struct Evidence<'a> {
    pub experiment: &'a Experiment,
    pub ops: &'a [Op],
    pub sessions: &'a [SessionRecord],
    pub faults: &'a [FaultEvent],
    pub sentinel_events: &'a [SentinelEvent],
    pub probes: &'a [ProbeResult],
    pub final_state: &'a FinalState,
    /// The port of the primary before any fault.
    pub initial_primary_port: u16,
}

fn is_damage(f: &FaultEvent) -> bool {
    matches!(f.action.as_str(), "kill" | "stop" | "pause") && f.error.is_none()
}

fn bound(name: &'static str, measured: usize, max: Option<usize>) -> Invariant {
    Invariant {
        name,
        expected: max.map_or("measured only".into(), |m| format!("≤ {m}")),
        measured: json!(measured),
        holds: max.map(|m| measured <= m),
    }
}

fn flag(name: &'static str, judged: bool, violations: usize, measured: Value) -> Invariant {
    Invariant {
        name,
        expected: if judged {
            "0 violations".into()
        } else {
            "measured only".into()
        },
        measured,
        holds: judged.then_some(violations == 0),
    }
}

/// Judges the history against the experiment's expectations.
pub fn judge(ev: &Evidence) -> Verdict {
    let exp = &ev.experiment.expect;
    let mut m = Measures {
        old_primary_port: Some(ev.initial_primary_port),
        ..Measures::default()
    };
    let damage: Vec<&FaultEvent> = ev.faults.iter().filter(|f| is_damage(f)).collect();
    m.fault_ms = damage
        .iter()
        .find(|f| f.role == "primary")
        .or(damage.first())
        .map(|f| f.at_ms);
    let first_event = |name: &str| {
        ev.sentinel_events
            .iter()
            .find(|e| e.event == name && e.detail.starts_with("master "))
            .map(|e| e.at_ms)
    };
    m.sdown_ms = first_event("+sdown");
    m.odown_ms = first_event("+odown");
    m.switch_master_ms = ev
        .sentinel_events
        .iter()
        .find(|e| e.event == "+switch-master")
        .map(|e| e.at_ms);
    m.failover_time_ms = m.switch_master_ms.zip(m.fault_ms).map(|(s, f)| s - f);

    // Availability.
    let ok_writes: Vec<&Op> = ev
        .ops
        .iter()
        .filter(|o| o.kind.is_write() && o.outcome == Outcome::Ok && o.note.is_none())
        .collect();
    let mut completions: Vec<f64> = ok_writes.iter().map(|o| o.complete_ms).collect();
    completions.sort_by(f64::total_cmp);
    if let Some(f) = m.fault_ms {
        m.first_ok_write_after_fault_ms = ok_writes
            .iter()
            .filter(|o| o.invoke_ms >= f)
            .map(|o| o.complete_ms)
            .reduce(f64::min);
        // The outage as clients saw it: the longest stretch without an ok write, from the fault
        // on. (A stopping primary may still ack a write or two right after the fault; the first ok
        // write alone would then hide the gap that follows.)
        let after: Vec<f64> = std::iter::once(f)
            .chain(completions.iter().copied().filter(|&t| t >= f))
            .collect();
        m.write_gap_ms = if after.len() > 1 {
            after.windows(2).map(|w| w[1] - w[0]).reduce(f64::max)
        } else {
            None
        };
    }
    m.longest_write_gap_ms = completions
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);

    // Acknowledged writes lost.
    m.acked_writes = ev.sessions.iter().filter(|s| !s.short).count();
    let lost: Vec<&SessionRecord> = ev
        .final_state
        .missing_sessions
        .iter()
        .filter_map(|&i| ev.sessions.get(i))
        .collect();
    m.acked_writes_lost = lost.len();
    m.lost_window_ms = lost.iter().fold(None, |acc, s| match acc {
        None => Some((s.acked_ms, s.acked_ms)),
        Some((a, b)) => Some((f64::min(a, s.acked_ms), f64::max(b, s.acked_ms))),
    });

    // Split brain.
    if let Some(promoted) = m.switch_master_ms {
        let on_old = ok_writes
            .iter()
            .filter(|o| o.complete_ms > promoted && o.node_port == Some(ev.initial_primary_port))
            .count();
        let lost_after = lost.iter().filter(|s| s.acked_ms > promoted).count();
        m.split_brain_writes = on_old + lost_after;
    }

    let mut inv = vec![
        bound(
            "acked_writes_lost",
            m.acked_writes_lost,
            exp.max_acked_writes_lost,
        ),
        bound(
            "split_brain_writes",
            m.split_brain_writes,
            exp.max_split_brain_writes,
        ),
    ];
    inv.push(Invariant {
        name: "failover",
        expected: exp
            .failover
            .map_or("measured only".into(), |f| if f { "a +switch-master".into() } else { "no +switch-master".into() }),
        measured: json!({ "switch_master": m.switch_master_ms.is_some(), "failover_time_ms": m.failover_time_ms }),
        holds: exp.failover.map(|f| f == m.switch_master_ms.is_some()),
    });
    let gap_max = exp.max_write_gap.map(|d| d.as_secs_f64() * 1000.0);
    inv.push(Invariant {
        name: "write_gap",
        expected: gap_max.map_or("measured only".into(), |g| format!("≤ {g:.0} ms")),
        measured: json!(m.write_gap_ms),
        holds: gap_max.map(|g| m.write_gap_ms.is_some_and(|w| w <= g)),
    });
    inv.extend(ttl_invariants(ev, &damage));
    inv.push(persistence_invariant(ev, &lost, &damage));
    let rejoins: Vec<&FaultEvent> = ev
        .faults
        .iter()
        .filter(|f| f.action.starts_with("rejoin") || f.action == "still-primary")
        .collect();
    let rejoined = !rejoins.is_empty()
        && rejoins
            .iter()
            .all(|f| f.error.is_none() && f.action == "rejoined-as-replica");
    inv.push(Invariant {
        name: "old_primary_rejoins_as_replica",
        expected: if exp.old_primary_rejoins {
            "true".into()
        } else {
            "measured only".into()
        },
        measured: json!(
            rejoins
                .iter()
                .map(|f| json!({"node": f.node, "at_ms": f.at_ms, "ok": f.error.is_none()}))
                .collect::<Vec<_>>()
        ),
        holds: exp.old_primary_rejoins.then_some(rejoined),
    });
    let fs = ev.final_state;
    inv.push(flag(
        "revocations_kept",
        exp.revocations_kept,
        fs.revocations_lost,
        json!({"checked": fs.revocations_checked, "valid_again": fs.revocations_lost, "tombstone_gone": fs.revocations_forgotten}),
    ));
    // Always judged: every key the stores write must have a TTL, whatever the experiment.
    inv.push(flag(
        "no_key_without_ttl",
        true,
        fs.keys_without_ttl + usize::from(fs.error.is_some()),
        json!({"scanned": fs.keys_scanned, "without_ttl": fs.keys_without_ttl, "error": fs.error}),
    ));
    let window_violations = ev
        .ops
        .iter()
        .filter(|o| {
            o.note
                .as_deref()
                .is_some_and(|n| n.starts_with("window-violation"))
        })
        .count()
        + fs.counters_beyond_window;
    inv.push(flag(
        "ratelimit_window_kept",
        true,
        window_violations,
        json!({"violations": window_violations}),
    ));

    let pass = inv.iter().all(|i| i.holds != Some(false));
    Verdict {
        pass,
        measures: m,
        invariants: inv,
        ops: op_stats(ev.ops),
    }
}

fn ttl_invariants(ev: &Evidence, damage: &[&FaultEvent]) -> Vec<Invariant> {
    let w = &ev.experiment.workload;
    let ttl_ms = w.short_session_ttl.as_secs_f64() * 1000.0;
    let tol_ms = w.ttl_tolerance.as_secs_f64() * 1000.0;
    let (mut early, mut lost_to_fault, mut extended, mut resurrected) = (0, 0, 0, 0);
    // A mid-life probe delayed by an outage past the session's expiry proves nothing either way.
    let mut probed_too_late = 0;
    for p in ev.probes {
        let Some(s) = ev.sessions.get(p.session) else {
            continue;
        };
        match (p.probe, p.present) {
            (Probe::Midlife, false) if p.at_ms >= s.created_ms + ttl_ms => probed_too_late += 1,
            (Probe::Midlife, false) => {
                let fault_between = damage
                    .iter()
                    .any(|f| f.at_ms >= s.created_ms - tol_ms && f.at_ms <= p.at_ms);
                if fault_between {
                    lost_to_fault += 1;
                } else {
                    early += 1;
                }
            }
            (Probe::Midlife, true) => {
                let left = s.created_ms + ttl_ms - p.at_ms;
                if p.pttl_ms
                    .is_some_and(|t| t == -1 || t as f64 > left + tol_ms)
                {
                    extended += 1;
                }
            }
            (Probe::AfterExpiry, true) => resurrected += 1,
            (Probe::AfterExpiry, false) => {}
        }
    }
    let judged = ev.experiment.expect.ttl;
    vec![
        flag(
            "ttl_no_early_expiry",
            judged,
            early + extended,
            json!({"probed": ev.probes.iter().filter(|p| p.probe == Probe::Midlife).count(),
                   "missing_early": early, "ttl_extended": extended, "lost_to_fault": lost_to_fault,
                   "probed_after_expiry": probed_too_late}),
        ),
        flag(
            "ttl_no_resurrection",
            judged,
            resurrected,
            json!({"probed": ev.probes.iter().filter(|p| p.probe == Probe::AfterExpiry).count(),
                   "present_after_ttl": resurrected}),
        ),
    ]
}

/// Standalone crash + restart: do the lost writes stay inside what the persistence promises?
fn persistence_invariant(
    ev: &Evidence,
    lost: &[&SessionRecord],
    damage: &[&FaultEvent],
) -> Invariant {
    let window = ev.experiment.expect.max_loss_window;
    let crash = damage
        .iter()
        .find(|f| f.role == "primary" && matches!(f.action.as_str(), "kill" | "stop"))
        .map(|f| f.at_ms);
    let before_crash = crash.map_or(0, |c| {
        ev.sessions
            .iter()
            .filter(|s| !s.short && s.acked_ms < c)
            .count()
    });
    let survived = before_crash.saturating_sub(lost.len());
    let outside = match (crash, window) {
        (Some(c), Some(w)) => {
            let w = w.as_secs_f64() * 1000.0;
            lost.iter().filter(|s| s.acked_ms < c - w).count()
        }
        _ => 0,
    };
    Invariant {
        name: "persistence_loss_within_promise",
        expected: window.map_or("measured only".into(), |w| {
            format!(
                "every lost write acked < {} ms before the crash",
                w.as_millis()
            )
        }),
        measured: json!({"acked_before_crash": before_crash, "survived": survived,
                         "lost_outside_window": outside,
                         "survival_rate": if before_crash > 0 { survived as f64 / before_crash as f64 } else { 1.0 }}),
        holds: window.map(|_| crash.is_some() && outside == 0),
    }
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
mod tests {
    use super::*;
    use crate::experiment::Experiment;
    use crate::history::OpKind;

    fn op(kind: OpKind, invoke: f64, complete: f64, outcome: Outcome, port: u16) -> Op {
        Op {
            client: 0,
            kind,
            invoke_ms: invoke,
            complete_ms: complete,
            outcome,
            node_port: Some(port),
            session: None,
            note: None,
        }
    }

    #[test]
    fn lost_writes_gaps_and_split_brain_are_found_in_a_history() {
        let exp = Experiment::parse(
            "name = \"t\"\nduration = \"5s\"\n[topology]\nkind = \"sentinel\"\n\
             [expect]\nmax_acked_writes_lost = 0\nfailover = true\nmax_split_brain_writes = 0\n",
        )
        .unwrap();
        let id = cache::SessionId::generate(u64::MAX / 2).unwrap();
        let session = |acked: f64| SessionRecord {
            id: id.clone(),
            short: false,
            created_ms: acked - 1.0,
            acked_ms: acked,
            node_port: Some(1),
        };
        let sessions = vec![session(100.0), session(900.0)];
        let ops = vec![
            op(OpKind::SessionCreate, 99.0, 100.0, Outcome::Ok, 1),
            op(OpKind::SessionCreate, 899.0, 900.0, Outcome::Ok, 1),
            op(
                OpKind::SessionCreate,
                1001.0,
                1500.0,
                Outcome::Indeterminate,
                1,
            ),
            // Acked by the old primary (port 1) after the promotion at 3000 ms: split brain.
            op(OpKind::TokenPut, 3001.0, 3002.0, Outcome::Ok, 1),
            op(OpKind::SessionCreate, 3100.0, 3101.0, Outcome::Ok, 2),
        ];
        let faults = vec![FaultEvent {
            at_ms: 1000.0,
            done_ms: 1001.0,
            action: "kill".into(),
            node: "redis-0".into(),
            port: 1,
            role: "primary".into(),
            error: None,
        }];
        let events = vec![SentinelEvent {
            at_ms: 3000.0,
            sentinel: "sentinel-0".into(),
            event: "+switch-master".into(),
            detail: "mymaster 127.0.0.1 1 127.0.0.1 2".into(),
        }];
        let final_state = FinalState {
            missing_sessions: vec![1],
            checked_sessions: 2,
            ..FinalState::default()
        };
        let v = judge(&Evidence {
            experiment: &exp,
            ops: &ops,
            sessions: &sessions,
            faults: &faults,
            sentinel_events: &events,
            probes: &[],
            final_state: &final_state,
            initial_primary_port: 1,
        });
        assert!(!v.pass);
        assert_eq!(v.measures.acked_writes_lost, 1);
        assert_eq!(v.measures.lost_window_ms, Some((900.0, 900.0)));
        assert_eq!(v.measures.failover_time_ms, Some(2000.0));
        assert_eq!(v.measures.write_gap_ms, Some(2002.0));
        assert_eq!(v.measures.split_brain_writes, 1);
        assert_eq!(v.ops["session_create"].indeterminate, 1);
        let failover = v.invariants.iter().find(|i| i.name == "failover").unwrap();
        assert_eq!(failover.holds, Some(true));
    }
}
