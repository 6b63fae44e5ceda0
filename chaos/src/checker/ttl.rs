//! Short sessions and their TTL: never gone early, never given a longer life, never back after
//! T + tolerance — across failovers and restarts.
//!
//! Timed from what the client knows: the session's TTL started somewhere between the create's
//! invoke and its acknowledgement, so it may be gone from invoke + T on, and must be gone by
//! ack + T (+ tolerance for the probe's own lateness). A probe Redis never answered is unknown and
//! judges nothing; a mid-life probe that ran after invoke + T proves nothing either.
//!
//! A session missing at mid-life is excused — counted as a write lost to a fault, not an early
//! expiry — only where the fault could have taken it: acknowledged within
//! [`REPLICATION_SLACK_MS`] before a kill/stop/pause landed (for a kill or stop, within the
//! experiment's persistence promise `max_loss_window` when it has one: an RDB snapshot every
//! second loses up to a second of writes, short sessions included; `persistence_loss_within_promise`
//! judges that loss), acknowledged by a partitioned primary
//! during its partition, or acknowledged by a primary after the failover that replaced it had
//! started (`+selected-slave`: the new primary stopped replicating from it). A session written well
//! before the failover and missing after it is a failure: that is the point of
//! `ttl-across-failover`, which the old checker excused.

use serde_json::json;

use super::loss::REPLICATION_SLACK_MS;
use super::timing::{Switch, is_damage};
use super::{Check, Measures};
use crate::history::SessionRecord;
use crate::recorded::Recorded;
use crate::ttl::Probe;

pub fn checks(h: &Recorded, m: &Measures) -> Vec<Check> {
    let w = &h.experiment.workload;
    let ttl_ms = w.short_session_ttl.as_secs_f64() * 1000.0;
    let tol_ms = w.ttl_tolerance.as_secs_f64() * 1000.0;
    let (mut mid, mut after) = (0, 0);
    let (mut early, mut lost_to_fault, mut extended, mut resurrected) = (0, 0, 0, 0);
    let (mut unanswered, mut too_late) = (0, 0);
    for p in &h.probes {
        let Some(s) = h.sessions.get(p.session) else {
            continue;
        };
        let Some(present) = p.present else {
            unanswered += 1;
            continue;
        };
        match p.probe {
            Probe::Midlife if p.at_ms >= s.created_ms + ttl_ms => too_late += 1,
            Probe::Midlife => {
                mid += 1;
                if !present {
                    if lost_to_a_fault(h, &m.failovers, s) {
                        lost_to_fault += 1;
                    } else {
                        early += 1;
                    }
                } else {
                    let left = s.acked_ms + ttl_ms - p.at_ms;
                    if p.pttl_ms
                        .is_some_and(|t| t == -1 || t as f64 > left + tol_ms)
                    {
                        extended += 1;
                    }
                }
            }
            Probe::AfterExpiry if p.at_ms < s.acked_ms + ttl_ms + tol_ms => {}
            Probe::AfterExpiry => {
                after += 1;
                if present {
                    resurrected += 1;
                }
            }
        }
    }
    let expected = |what: &str| h.experiment.expect.ttl.then(|| what.to_string());
    vec![
        Check::new(
            "ttl_no_early_expiry",
            expected("0 missing before T, 0 given a longer life"),
            mid,
            json!({ "missing_early": early, "ttl_extended": extended, "lost_to_fault": lost_to_fault,
                    "probed_after_expiry": too_late, "unanswered": unanswered }),
            early + extended == 0,
        ),
        Check::new(
            "ttl_no_resurrection",
            expected("0 present after T + tolerance"),
            after,
            json!({ "present_after_ttl": resurrected, "unanswered": unanswered }),
            resurrected == 0,
        ),
    ]
}

/// Could a fault have taken this acknowledged write? (See the module docs.)
fn lost_to_a_fault(h: &Recorded, failovers: &[Switch], s: &SessionRecord) -> bool {
    let t = s.acked_ms;
    // A crash may take what the persistence promise allows (`max_loss_window`: e.g. RDB every
    // second loses up to the last snapshot), not only what replication had not shipped yet.
    let crash_slack_ms = h
        .experiment
        .expect
        .max_loss_window
        .map_or(0.0, |w| w.as_secs_f64() * 1000.0)
        .max(REPLICATION_SLACK_MS);
    let by_damage = h.faults.iter().filter(|f| is_damage(f)).any(|f| {
        if f.action == "partition" {
            let healed = h
                .faults
                .iter()
                .filter(|g| g.action == "heal" && g.at_ms >= f.at_ms)
                .map(|g| g.done_ms)
                .reduce(f64::min)
                .unwrap_or(h.end_ms);
            s.node_port == Some(f.port) && t >= f.at_ms - REPLICATION_SLACK_MS && t <= healed
        } else if matches!(f.action.as_str(), "kill" | "stop") {
            t >= f.at_ms - crash_slack_ms && t <= f.done_ms
        } else {
            t >= f.at_ms - REPLICATION_SLACK_MS && t <= f.done_ms
        }
    });
    let by_failover = failovers.iter().any(|sw| {
        if s.node_port != Some(sw.old_port) || t > sw.at_ms {
            return false;
        }
        let suffix = format!(" {}", sw.old_port);
        let started = h
            .sentinel_events
            .iter()
            .filter(|e| {
                e.event == "+selected-slave" && e.detail.ends_with(&suffix) && e.at_ms <= sw.at_ms
            })
            .map(|e| e.at_ms)
            .reduce(f64::max)
            .unwrap_or(sw.at_ms);
        t >= started - REPLICATION_SLACK_MS
    });
    by_damage || by_failover
}
