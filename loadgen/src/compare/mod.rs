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
//! [`crate::target::calibrate`]) is the speed of client + server + machine. Throughput is divided
//! and latency multiplied by the side's calibration (the mean over its runs: they share a machine,
//! and one 1-second figure is noisy), and both are expressed on the baseline's machine. In a
//! closed model at fixed users, mean latency is users / throughput (Little's law), so scaling
//! both by the same figure keeps them consistent. Without it, figures are compared raw — right on
//! one machine, where the calibration only adds its own noise.

pub mod input;
mod render;
mod rows;
pub mod stats;

use std::path::PathBuf;

use clap::Args;

use crate::Fatal;
use input::Run;
pub use rows::{Metric, Row, Verdict};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// BASELINE then CURRENT (each a results directory, its summary.json, or a directory of
    /// results directories = repetitions). With --baseline, every path here is a current run.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Baseline run(s); repeat for repetitions
    #[arg(long, value_name = "PATH")]
    pub baseline: Vec<PathBuf>,
    /// Current run(s); repeat for repetitions
    #[arg(long, value_name = "PATH")]
    pub current: Vec<PathBuf>,
    /// A metric regresses when its whole 95% CI is beyond this change in the bad direction:
    /// "10%" or "0.10"
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub max_regression: String,
    /// Output: md (a pull-request comment) or json
    #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json"])]
    pub format: String,
    /// Divide throughput (and multiply latency) by each side's calibration figure (raw PING/s
    /// measured at the start of each run, averaged over the side), so a baseline from another
    /// machine is usable
    #[arg(long)]
    pub normalize: bool,
}

/// How figures were made comparable.
pub struct Mode {
    pub normalized: bool,
    /// Mean calibration (ops/s) per side, when every run of the side has one.
    pub calibration: [Option<f64>; 2],
}

/// Everything the renderers need.
pub struct Comparison {
    pub base: Vec<Run>,
    pub cur: Vec<Run>,
    pub threshold: f64,
    pub mode: Mode,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count()
    }
}

/// Parses "10%", "2.5 %" or "0.10" into a fraction in (0, 1).
pub fn parse_threshold(raw: &str) -> Result<f64, Fatal> {
    let s = raw.trim();
    let (num, percent) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (s, false),
    };
    let bad = |why: &str| {
        Fatal::usage(format!(
            "--max-regression `{raw}`: {why}; expected a percentage like \"10%\" or a fraction like \"0.10\""
        ))
    };
    let v: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let f = if percent { v / 100.0 } else { v };
    if !percent && v >= 1.0 {
        return Err(bad(
            "a bare number is a fraction and must be below 1 (write 10% for ten percent)",
        ));
    }
    if !(f > 0.0 && f < 1.0) {
        return Err(bad("must be more than 0% and less than 100%"));
    }
    Ok(f)
}

/// Which paths are the baseline and which the current runs.
fn sides(args: &CompareArgs) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Fatal> {
    let mut base = args.baseline.clone();
    let mut cur = args.current.clone();
    match (base.is_empty(), cur.is_empty(), args.paths.as_slice()) {
        (true, true, [b, c]) => {
            base.push(b.clone());
            cur.push(c.clone());
        }
        (true, true, _) => {
            return Err(Fatal::usage(format!(
                "loadgen compare needs a baseline and a current run: `loadgen compare BASELINE CURRENT` (got {} path(s)), or --baseline/--current",
                args.paths.len()
            )));
        }
        (false, _, rest) => cur.extend(rest.iter().cloned()),
        (true, false, rest) => base.extend(rest.iter().cloned()),
    }
    if base.is_empty() || cur.is_empty() {
        return Err(Fatal::usage(format!(
            "loadgen compare needs at least one {} run",
            if base.is_empty() {
                "baseline"
            } else {
                "current"
            }
        )));
    }
    Ok((base, cur))
}

/// Throughput multiplier per run: 1, or for the current runs with `--normalize`, mean baseline
/// calibration / mean current calibration (latency is divided by the same figure).
fn scales(base: &[Run], cur: &[Run], normalize: bool) -> Result<(Vec<f64>, Vec<f64>, Mode), Fatal> {
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
        return Err(Fatal::usage(format!(
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
pub fn compare(args: &CompareArgs) -> Result<Comparison, Fatal> {
    let threshold = parse_threshold(&args.max_regression)?;
    let (bp, cp) = sides(args)?;
    let base = input::load_side("baseline", &bp)?;
    let cur = input::load_side("current", &cp)?;
    let mut notes = input::check_comparable(&base, &cur)?;
    let (fb, fc, mode) = scales(&base, &cur, args.normalize)?;
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
    let op_confidence = 1.0 - (1.0 - stats::CONFIDENCE) / per_op as f64;
    let rows: Vec<Row> = kept
        .iter()
        .flat_map(|op| {
            let confidence = if op == "all" {
                stats::CONFIDENCE
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
        return Err(Fatal::usage(format!(
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

/// `loadgen compare`, returning the exit code: 0 no regression, 1 a regression, 2 usage.
pub fn main(args: CompareArgs) -> i32 {
    match compare(&args) {
        Ok(c) => {
            let out = if args.format == "json" {
                render::json(&c)
            } else {
                render::markdown(&c)
            };
            println!("{out}");
            i32::from(c.regressions() > 0)
        }
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', "\nerror: "));
            f.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_percent_or_fraction() {
        assert_eq!(parse_threshold("10%").unwrap(), 0.1);
        assert_eq!(parse_threshold(" 2.5 % ").unwrap(), 0.025);
        assert_eq!(parse_threshold("0.2").unwrap(), 0.2);
        for bad in ["10", "0", "0%", "100%", "-5%", "ten", ""] {
            let e = parse_threshold(bad).unwrap_err();
            assert_eq!(e.code, 2);
            assert!(e.message.contains("--max-regression"), "{}", e.message);
        }
    }
}
