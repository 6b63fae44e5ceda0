//! Unavailability across workers. Each worker timed its windows from its own attack's start; with
//! a shared start (`--start-at`) those starts are the same instant, so the windows are laid on
//! one time line and overlapping ones joined: an outage all workers saw is one window, with the
//! failed and succeeded operations of every worker inside it. The nodes that served and the
//! switches are the union of what the workers saw (each node's span from its earliest to its
//! latest sighting; a switch once).

use std::collections::BTreeMap;

use super::collect::Worker;
use crate::report::summary::{Availability, PrimarySpan, Switch, Window};

/// The merged availability and a sentence saying how it was merged.
pub(super) fn union(workers: &[Worker]) -> (Availability, String) {
    fn a(w: &Worker) -> &Availability {
        &w.summary.availability
    }
    let mut windows: Vec<Window> = workers.iter().flat_map(|w| a(w).windows.clone()).collect();
    windows.sort_by(|x, y| x.start_s.total_cmp(&y.start_s));
    let mut joined: Vec<Window> = Vec::new();
    for w in windows {
        match joined.last_mut() {
            Some(last) if w.start_s <= last.end_s => {
                last.end_s = last.end_s.max(w.end_s);
                last.duration_s = ((last.end_s - last.start_s) * 10.0).round() / 10.0;
                last.failed_ops += w.failed_ops;
                last.succeeded_ops += w.succeeded_ops;
                for (class, n) in w.failed_by_class {
                    *last.failed_by_class.entry(class).or_default() += n;
                }
            }
            _ => joined.push(w),
        }
    }
    let mut spans: BTreeMap<(String, String), PrimarySpan> = BTreeMap::new();
    for p in workers.iter().flat_map(|w| &a(w).primaries) {
        spans
            .entry((p.node.clone(), p.run_id.clone()))
            .and_modify(|s| {
                s.from_s = s.from_s.min(p.from_s);
                s.to_s = s.to_s.max(p.to_s);
            })
            .or_insert_with(|| p.clone());
    }
    let mut primaries: Vec<PrimarySpan> = spans.into_values().collect();
    primaries.sort_by(|x, y| x.from_s.total_cmp(&y.from_s));
    let mut switches: Vec<Switch> = Vec::new();
    for s in workers.iter().flat_map(|w| &a(w).switches) {
        if !switches.iter().any(|k| k.from == s.from && k.to == s.to) {
            switches.push(s.clone());
        }
    }
    switches.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    let merged = Availability {
        unavailable_s: ((joined.iter().map(|w| w.duration_s).sum::<f64>()) * 10.0).round() / 10.0,
        windows: joined,
        primary_at_start: a(&workers[0]).primary_at_start.clone(),
        primary_at_end: a(&workers[0]).primary_at_end.clone(),
        primaries,
        switches,
    };
    (
        merged,
        "availability: the workers' unavailability windows on one time line (shared start), overlapping ones joined with their operations summed".into(),
    )
}
