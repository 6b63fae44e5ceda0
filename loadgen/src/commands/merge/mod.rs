//! `loadgen merge DIR... --out DIR`: N scale-out workers' results directories become one results
//! directory, exactly — a normal one (`summary.json`, `report.md`, `latency.svg`, `.hgrm`,
//! `latency.hlog`) that `loadgen compare` takes as a baseline or as the current run.
//!
//! 1. [`collect`]: read each worker's `summary.json` and `latency.hlog` (exit 2 naming the
//!    directory and the file when one is missing or unreadable);
//! 2. [`check`]: refuse a set that is not one run (exit 2 naming the directory and the field):
//!    different scenarios, schema versions, seeds or worker counts, an index twice or missing;
//! 3. [`combine`]: add the latency histograms interval by interval on absolute time (never
//!    averaging a percentile: every merged percentile is the percentile of the union of the
//!    workers' recorded values), sum the counts, errors and invariants (with their `checked`),
//!    rebuild the whole scenario, judge it against its SLOs, and give each worker's bottleneck
//!    verdict and clock offset to Redis `TIME`; [`redis`] does the server's side (one server seen
//!    by N overlapping windows: the union window, never a sum), [`verdicts`] each worker's line,
//!    the late or failed ones and the merged bottleneck;
//! 4. write the merged directory.
//!
//! Nothing here talks to Redis: merging is pure file work, and can run anywhere the directories
//! are (a Kubernetes Job after the workers, a CI step, a laptop).

mod availability;
mod check;
mod collect;
mod combine;
mod redis;
mod verdicts;

use std::path::PathBuf;

use crate::engine::progress::Progress;
use crate::error::{Error, Result};
use crate::report::Summary;

/// What `merge` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct MergeOptions {
    /// The workers' results directories (any order).
    pub(crate) dirs: Vec<PathBuf>,
    /// The merged results directory (created; must not hold a `summary.json` already).
    pub(crate) out: PathBuf,
}

/// A merged run: its summary (also written) and its directory.
pub(crate) struct MergeOutcome {
    pub(crate) summary: Summary,
    pub(crate) dir: PathBuf,
}

impl MergeOutcome {
    /// 0 the merged run passed, 1 it failed (an SLO, an invariant, or a worker failed or was
    /// interrupted).
    pub(crate) fn exit_code(&self) -> i32 {
        super::verdict_exit(false, self.summary.slo.passed)
    }
}

/// Reads, checks, combines and writes.
pub(crate) fn run(opts: &MergeOptions, progress: &Progress) -> Result<MergeOutcome> {
    let workers = collect::all(&opts.dirs)?;
    check::one_run(&workers)?;
    for w in &workers {
        progress.note(format!(
            "worker {}/{}: {} ops, {} intervals, from {}",
            w.info.index,
            w.info.count,
            w.summary.ops.get("all").map_or(0, |o| o.count),
            w.intervals.len(),
            w.dir.display()
        ));
    }
    let merged = combine::all(&workers, &opts.out)?;
    merged
        .write(&opts.out)
        .map_err(|e| Error::write(&opts.out, e))?;
    Ok(MergeOutcome {
        summary: merged.summary,
        dir: opts.out.clone(),
    })
}
