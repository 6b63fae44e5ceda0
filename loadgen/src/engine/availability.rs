//! What a failover (or any outage) did to users during a run: when Redis was unavailable, for how
//! long, how many operations failed and why, and which primary served when.
//!
//! **Unavailability windows** come from the operations themselves, not from Redis (which cannot
//! report its own absence): the recorder counts outcomes per 100 ms ([`Bucket`]). A bucket is
//! *down* when operations failed because Redis was not there ([`UNAVAILABLE`]: no primary,
//! unreachable, dropped, timed out, read-only, loading, primary down, cluster down) and fewer
//! succeeded than failed that way. Down buckets less than [`GAP_BUCKETS`] apart form one window.
//! Errors that are answers (OOM, NOPERM, a script error) are not unavailability.
//!
//! **Primaries** come from the `INFO` series: each sample names the node that answered and its
//! `run_id`; a change of either is a switch (a failover, or the same address restarted).

use std::collections::BTreeMap;

use cache::ErrorKind;

use crate::report::summary::{Availability, InfoPoint, PrimarySpan, Switch, Window};

/// Error classes that mean "Redis was not there".
pub(crate) const UNAVAILABLE: [ErrorKind; 8] = [
    ErrorKind::NoPrimary,
    ErrorKind::Unreachable,
    ErrorKind::ConnectionDropped,
    ErrorKind::Timeout,
    ErrorKind::ReadOnly,
    ErrorKind::Loading,
    ErrorKind::MasterDown,
    ErrorKind::Cluster,
];

/// Down buckets closer than this are one window.
pub(crate) const GAP_BUCKETS: usize = 3;

/// Width of a timeline bucket, ms.
pub(crate) const BUCKET_MS: u64 = 100;

/// Outcomes of the operations that completed in one 100 ms bucket.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bucket {
    pub(crate) ok: u32,
    /// Failed because Redis was not there, by class (see [`UNAVAILABLE`]).
    pub(crate) unavailable: [u32; UNAVAILABLE.len()],
    /// Failed for another reason (OOM, NOPERM, a script error...).
    pub(crate) other: u32,
}

impl Bucket {
    /// Counts one operation: a success, or a failure of class `error`.
    pub(crate) fn count(&mut self, failed: bool, error: Option<cache::ErrorKind>) {
        if !failed {
            self.ok += 1;
            return;
        }
        match error.and_then(unavailable_index) {
            Some(i) => self.unavailable[i] += 1,
            None => self.other += 1,
        }
    }

    pub(crate) fn add(&mut self, b: &Bucket) {
        self.ok += b.ok;
        self.other += b.other;
        for (a, x) in self.unavailable.iter_mut().zip(&b.unavailable) {
            *a += x;
        }
    }

    pub(crate) fn unavailable_total(&self) -> u32 {
        self.unavailable.iter().sum()
    }
}

pub(crate) fn unavailable_index(kind: ErrorKind) -> Option<usize> {
    UNAVAILABLE.iter().position(|k| *k == kind)
}

fn down(b: &Bucket) -> bool {
    let failed = b.unavailable_total();
    failed > 0 && b.ok < failed
}

/// The windows of a timeline, times in seconds since it started.
pub(crate) fn windows(timeline: &[Bucket]) -> Vec<Window> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, b) in timeline.iter().enumerate() {
        if !down(b) {
            continue;
        }
        match spans.last_mut() {
            Some((_, end)) if i <= *end + GAP_BUCKETS => *end = i,
            _ => spans.push((i, i)),
        }
    }
    let secs = |bucket: usize| (bucket as u64 * BUCKET_MS) as f64 / 1000.0;
    spans
        .into_iter()
        .map(|(first, last)| {
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            let mut succeeded = 0u64;
            for b in &timeline[first..=last] {
                succeeded += u64::from(b.ok);
                for (kind, n) in UNAVAILABLE.iter().zip(&b.unavailable) {
                    if *n > 0 {
                        *failed.entry(kind.as_str().to_string()).or_default() += u64::from(*n);
                    }
                }
            }
            let (start, end) = (secs(first), secs(last + 1));
            Window {
                start_s: start,
                end_s: end,
                duration_s: ((end - start) * 10.0).round() / 10.0,
                failed_ops: failed.values().sum(),
                failed_by_class: failed,
                succeeded_ops: succeeded,
            }
        })
        .collect()
}

/// Which node served when, from the `INFO` series.
pub(crate) fn primaries(points: &[InfoPoint]) -> (Vec<PrimarySpan>, Vec<Switch>) {
    let mut spans: Vec<PrimarySpan> = Vec::new();
    let mut switches = Vec::new();
    for p in points {
        match spans.last_mut() {
            Some(s) if s.node == p.node && s.run_id == p.run_id => s.to_s = p.t,
            last => {
                if let Some(prev) = last {
                    switches.push(Switch {
                        at_s: p.t,
                        from: prev.node.clone(),
                        to: p.node.clone(),
                        restarted: prev.node == p.node,
                    });
                }
                spans.push(PrimarySpan {
                    node: p.node.clone(),
                    run_id: p.run_id.clone(),
                    from_s: p.t,
                    to_s: p.t,
                });
            }
        }
    }
    (spans, switches)
}

/// Everything the report says about availability.
pub(crate) fn report(timeline: &[Bucket], points: &[InfoPoint]) -> Availability {
    let (primaries, switches) = primaries(points);
    let windows = windows(timeline);
    Availability {
        unavailable_s: windows.iter().map(|w| w.duration_s).fold(0.0, |a, b| a + b),
        windows,
        primary_at_start: primaries.first().map(|p| p.node.clone()),
        primary_at_end: primaries.last().map(|p| p.node.clone()),
        primaries,
        switches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(ok: u32, no_primary: u32) -> Bucket {
        let mut b = Bucket {
            ok,
            ..Bucket::default()
        };
        b.unavailable[0] = no_primary;
        b
    }

    #[test]
    fn a_failover_is_one_window_with_its_failures_by_class() {
        let mut t = vec![bucket(100, 0); 20];
        // 1.0 s to 2.5 s down, with one bucket of a stray success inside.
        for (i, b) in t.iter_mut().enumerate().take(25).skip(10) {
            *b = bucket(0, 40);
            if i == 17 {
                b.ok = 50; // more successes than failures: up for this bucket
            }
        }
        t.resize(25, bucket(0, 40));
        t.push(bucket(100, 0));
        let w = windows(&t);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_s, w[0].end_s), (1.0, 2.5));
        assert_eq!(w[0].failed_by_class["no_primary"], 15 * 40);
        assert_eq!(w[0].succeeded_ops, 50);
        // OOM refusals are answers, not absence.
        let mut oom = bucket(0, 0);
        oom.other = 99;
        assert!(windows(&[oom]).is_empty());
    }

    #[test]
    fn a_change_of_node_or_run_id_is_a_switch() {
        let p = |t: f64, node: &str, run: &str| InfoPoint {
            t,
            node: node.into(),
            run_id: run.into(),
            role: "master".into(),
            values: BTreeMap::new(),
        };
        let (spans, switches) = primaries(&[
            p(1.0, "a:1", "x"),
            p(2.0, "a:1", "x"),
            p(3.0, "b:2", "y"),
            p(4.0, "b:2", "z"),
        ]);
        assert_eq!(spans.len(), 3);
        assert_eq!(switches.len(), 2);
        assert_eq!(
            (switches[0].from.as_str(), switches[0].to.as_str()),
            ("a:1", "b:2")
        );
        assert!(switches[1].restarted);
    }
}
