//! `loadgen compare`: the CI regression gate — "did this change make us slower?".
//!
//! ```text
//! loadgen compare BASELINE CURRENT [--max-regression 10%] [--format md|json] [--normalize]
//! loadgen compare --baseline DIR [--baseline DIR ...] CURRENT [CURRENT ...]
//! ```
//!
//! For every operation (and `all`) it compares throughput, p99 and p99.9 response time, and gives
//! each a verdict: **regressed**, **improved** or **within noise**. A metric regresses only when
//! the whole 95 % confidence interval of the change lies beyond `--max-regression` in the bad
//! direction: the change is both larger than the threshold and larger than what these runs' own
//! noise explains. Exit 1 if one metric regressed, 0 otherwise, 2 for unusable inputs (missing,
//! not loadgen results, another `schema_version`, runs of different workloads, or too short to
//! judge).
//!
//! Where the intervals come from ([`stats`]: an inverted permutation test over samples):
//! - throughput: the per-second counts in `summary.json` (`all`: the operations' counts summed);
//! - p99: the per-second p99s, and the figure compared is their mean. Not the whole-run p99 of
//!   `report.md`: in a short run one stalled second (a neighbour's compile, a page-cache flush)
//!   puts more than 1 % of the operations behind it and moves the whole-run p99 20× — seen in
//!   the gate's self-test on a busy machine — while per second it is one bad sample of four or
//!   five, weighed as such. `all` has no per-second latency series; its per-second value is
//!   the operations' p99s weighted by their counts;
//! - p99.9: a second holds too few samples for a per-second p99.9, and the whole-run p99.9 of a
//!   short run is decided by a handful of stalls (it moves 3× between identical runs on a busy
//!   machine), so each run is one sample: judged with repetitions (4 runs a side, or 3 + 5, ...),
//!   shown as "not enough data" otherwise.
//!
//! Several runs on a side (repetitions) pool their samples; each run counts once in the level.
//!
//! `all` is the headline and is judged at 95 %. The single operations are a family of seven or
//! so, each compared on two or three metrics: judged at 95 % each, some operation would cross the
//! line on almost every comparison of a busy machine (the self-test saw it: 3 in 20 identical
//! runs, always one operation's p99). Their intervals are therefore simultaneous 95 % intervals
//! over the operations (Bonferroni: each at 1 − 5 %/k). The price is data: with one 4-second
//! run a side only `all` can be judged; 6 s a side, or repetitions, let single operations be.
//!
//! `--normalize` is for a baseline from another machine. Each run's calibration (raw PINGs per
//! second at fixed concurrency, measured at its start against the same target, see
//! [`crate::engine::target::calibrate`]) is the speed of client + server + machine. Throughput is divided
//! and latency multiplied by the side's calibration (the mean over its runs: they share a machine,
//! and one 1-second figure is noisy), and both are expressed on the baseline's machine. In a
//! closed model at fixed users, mean latency is users / throughput (Little's law), so scaling
//! both by the same figure keeps them consistent. Without it, figures are compared raw — right on
//! one machine, where the calibration only adds its own noise.

mod rows;
mod stats;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::report::compare::{CONFIDENCE, Comparison, Metric, Mode, Row, Verdict};
use crate::report::read::{self, Run};

/// Everything `compare` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct CompareOptions {
    pub(crate) baseline: Vec<PathBuf>,
    pub(crate) current: Vec<PathBuf>,
    /// `--max-regression` as a fraction in (0, 1).
    pub(crate) threshold: f64,
    pub(crate) normalize: bool,
}

/// Throughput multiplier per run: 1, or for the current runs with `--normalize`, mean baseline
/// calibration / mean current calibration (latency is divided by the same figure).
fn scales(base: &[Run], cur: &[Run], normalize: bool) -> Result<(Vec<f64>, Vec<f64>, Mode)> {
    let cal = |runs: &[Run]| -> Option<Vec<f64>> {
        runs.iter()
            .map(|r| {
                r.summary
                    .environment
                    .calibration
                    .as_ref()
                    .map(|c| c.ops_per_sec)
                    .filter(|v| *v > 0.0)
            })
            .collect()
    };
    let (cb, cc) = (cal(base), cal(cur));
    let mode = Mode {
        normalized: normalize,
        calibration: [
            cb.as_deref().map(stats::mean),
            cc.as_deref().map(stats::mean),
        ],
    };
    if !normalize {
        return Ok((vec![1.0; base.len()], vec![1.0; cur.len()], mode));
    }
    let missing = |runs: &[Run]| {
        runs.iter()
            .find(|r| {
                r.summary
                    .environment
                    .calibration
                    .as_ref()
                    .is_none_or(|c| c.ops_per_sec <= 0.0)
            })
            .map(|r| r.shown.clone())
    };
    let (Some(cb), Some(cc)) = (cb, cc) else {
        let which = missing(base).or_else(|| missing(cur)).unwrap_or_default();
        return Err(Error::usage(format!(
            "--normalize: {which} has no calibration figure (environment.calibration in summary.json); compare it without --normalize, on the same machine"
        )));
    };
    // One figure per side, the mean of its runs': a side's runs share a machine, and a 1-second
    // calibration on a busy machine moves ±30 % by itself, so scaling each run by its own figure
    // would add that noise to every run instead of averaging it out.
    let factor = stats::mean(&cb) / stats::mean(&cc);
    Ok((vec![1.0; base.len()], vec![factor; cur.len()], mode))
}

/// Reads, checks and compares; the exit code comes from [`Comparison::regressions`].
pub(crate) fn compare(opts: &CompareOptions) -> Result<Comparison> {
    let threshold = opts.threshold;
    let base = read::load_side("baseline", &opts.baseline)?;
    let cur = read::load_side("current", &opts.current)?;
    let mut notes = read::check_comparable(&base, &cur)?;
    let (fb, fc, mode) = scales(&base, &cur, opts.normalize)?;
    let in_every = |op: &str| {
        base.iter()
            .chain(&cur)
            .all(|r| r.summary.ops.get(op).is_some_and(|s| s.count > 0))
    };
    let mut ops: Vec<String> = base[0].summary.ops.keys().cloned().collect();
    ops.sort_by_key(|o| (o != "all", o.clone()));
    let (kept, skipped): (Vec<String>, Vec<String>) = ops.into_iter().partition(|o| in_every(o));
    if !skipped.is_empty() {
        notes.push(format!(
            "not in every run, so not compared: {}",
            skipped.join(", ")
        ));
    }
    // `all` is the headline, judged at 95 %. The operations are a family: eight of them would be
    // eight chances of a false alarm, so their intervals are simultaneous (Bonferroni).
    let per_op = kept.iter().filter(|o| o.as_str() != "all").count().max(1);
    let op_confidence = 1.0 - (1.0 - CONFIDENCE) / per_op as f64;
    let rows: Vec<Row> = kept
        .iter()
        .flat_map(|op| {
            let confidence = if op == "all" {
                CONFIDENCE
            } else {
                op_confidence
            };
            rows::rows_for(op, &base, &cur, (&fb, &fc), threshold, confidence)
        })
        .collect();
    let seconds = |runs: &[Run]| runs.iter().map(Run::seconds).sum::<usize>();
    if rows.iter().any(|r| {
        r.op == "all" && r.metric == Metric::Throughput && r.verdict == Verdict::NotEnoughData
    }) {
        return Err(Error::usage(format!(
            "too few samples to judge: {} s of baseline and {} s of current per-second samples; with one run a side each needs at least 4 s (--duration 4s or more), or give repetitions",
            seconds(&base),
            seconds(&cur)
        )));
    }
    Ok(Comparison {
        base,
        cur,
        threshold,
        mode,
        rows,
        notes,
    })
}
