//! `--repeat N`: the same experiment N times, and what an operator needs from the N runs.
//!
//! One run of a failover is one sample: Sentinel's election has random delays, the kill lands at
//! a random point of the replication stream, so failover time, write gap and acked writes lost vary
//! from run to run. An operator deciding whether `down-after-milliseconds 5000` is safe for
//! sessions wants the spread, and wants to know whether *every* run passed — one lost write in
//! five runs is a finding, not noise.
//!
//! So each repetition keeps its own full results directory (report.json, history.json,
//! report.md: any single run can be re-checked or diffed), and after the last one the runner
//! writes `chaos-<experiment>-x<N>-<time>/summary.json` and `summary.md`: every repetition's
//! figures and directory, how many passed, and min / median / max of failover time, write gap,
//! acked writes lost and wall time. The median of an even count is the mean of the two middle
//! values. A repetition that produced no verdict (an error) counts as a failure and appears with
//! its error; it contributes no figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::db::BackendKind;
use crate::report::backend_name;
use crate::run::{Outcome, RunError};

/// Bumped on any incompatible change of `summary.json`.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// One repetition's figures, or why it has none.
#[derive(Clone, Debug, Serialize)]
pub struct Repetition {
    /// 1-based.
    pub round: u32,
    /// Its results directory (absent when it produced no report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// `None`: no verdict (see `error`).
    pub pass: Option<bool>,
    pub failover_time_ms: Option<f64>,
    pub write_gap_ms: Option<f64>,
    pub acked_writes_lost: Option<usize>,
    pub acked_writes: Option<usize>,
    pub split_brain_writes: Option<usize>,
    pub wall_time_s: Option<f64>,
    /// Names of the checks that failed the run.
    pub violated: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Repetition {
    pub fn new(round: u32, result: &Result<Outcome, RunError>) -> Repetition {
        match result {
            Ok(o) => {
                let v = &o.report.verdict;
                let m = &v.measures;
                Repetition {
                    round,
                    dir: Some(o.dir.clone()),
                    pass: Some(v.pass),
                    failover_time_ms: m.failover_time_ms,
                    write_gap_ms: m.write_gap_ms,
                    acked_writes_lost: Some(m.acked_writes_lost),
                    acked_writes: Some(m.acked_writes),
                    split_brain_writes: Some(m.split_brain_writes),
                    wall_time_s: Some(o.report.wall_time_s),
                    violated: v
                        .checks
                        .iter()
                        .filter(|c| c.fails_run())
                        .map(|c| c.name.to_string())
                        .collect(),
                    error: None,
                }
            }
            Err(e) => Repetition {
                round,
                dir: None,
                pass: None,
                failover_time_ms: None,
                write_gap_ms: None,
                acked_writes_lost: None,
                acked_writes: None,
                split_brain_writes: None,
                wall_time_s: None,
                violated: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }
}

/// Min, median and max over the repetitions that measured the figure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// How many repetitions measured it (a run without failover has no failover time).
    pub measured_in: usize,
}

/// `None` when no value was measured.
pub fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[n - 1],
        measured_in: n,
    })
}

/// `summary.json` of `--repeat N`.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    pub schema_version: u32,
    pub experiment: String,
    pub backend: BackendKind,
    pub repetitions: Vec<Repetition>,
    pub passed: usize,
    pub failed: usize,
    /// Repetitions without a verdict.
    pub errors: usize,
    pub failover_time_ms: Option<Spread>,
    pub write_gap_ms: Option<Spread>,
    pub acked_writes_lost: Option<Spread>,
    pub wall_time_s: Option<Spread>,
}

impl Aggregate {
    pub fn new(experiment: &str, backend: BackendKind, repetitions: Vec<Repetition>) -> Aggregate {
        let count = |p: Option<bool>| repetitions.iter().filter(|r| r.pass == p).count();
        Aggregate {
            schema_version: SUMMARY_SCHEMA_VERSION,
            experiment: experiment.to_string(),
            backend,
            passed: count(Some(true)),
            failed: count(Some(false)),
            errors: count(None),
            failover_time_ms: spread(repetitions.iter().filter_map(|r| r.failover_time_ms)),
            write_gap_ms: spread(repetitions.iter().filter_map(|r| r.write_gap_ms)),
            acked_writes_lost: spread(
                repetitions
                    .iter()
                    .filter_map(|r| r.acked_writes_lost.map(|n| n as f64)),
            ),
            wall_time_s: spread(repetitions.iter().filter_map(|r| r.wall_time_s)),
            repetitions,
        }
    }

    /// Every repetition produced a verdict, and every verdict passed.
    pub fn pass(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        let ms = |s: &Option<Spread>| {
            s.map_or("-".into(), |s| {
                format!("{:.0}/{:.0}/{:.0} ms", s.min, s.median, s.max)
            })
        };
        let lost = self
            .acked_writes_lost
            .map_or("-".into(), |s| format!("{}/{}/{}", s.min, s.median, s.max));
        format!(
            "{} x{} [{}] {} {}/{}: failover {}, write gap {}, acked writes lost {} (min/median/max)",
            self.experiment,
            self.repetitions.len(),
            backend_name(self.backend),
            if self.pass() { "PASS" } else { "FAIL" },
            self.passed,
            self.repetitions.len(),
            ms(&self.failover_time_ms),
            ms(&self.write_gap_ms),
            lost
        )
    }

    /// Writes `summary.json` and `summary.md` into `dir` (created).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("summary.json"), json)?;
        std::fs::write(dir.join("summary.md"), self.markdown())
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# chaos: {} x{} — {} ({} of {} passed)\n",
            self.experiment,
            self.repetitions.len(),
            if self.pass() { "PASS" } else { "FAIL" },
            self.passed,
            self.repetitions.len()
        );
        s.push_str("| figure | min | median | max | measured in |\n|---|---|---|---|---|\n");
        for (name, spread) in [
            ("failover time (ms)", self.failover_time_ms),
            ("write gap (ms)", self.write_gap_ms),
            ("acked writes lost", self.acked_writes_lost),
            ("wall time (s)", self.wall_time_s),
        ] {
            let _ = match spread {
                Some(x) => writeln!(
                    s,
                    "| {name} | {:.1} | {:.1} | {:.1} | {} |",
                    x.min, x.median, x.max, x.measured_in
                ),
                None => writeln!(s, "| {name} | - | - | - | 0 |"),
            };
        }
        s.push_str("\n| # | verdict | failover (ms) | write gap (ms) | acked lost | split brain | wall (s) | results |\n|---|---|---|---|---|---|---|---|\n");
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        for r in &self.repetitions {
            let verdict = match (r.pass, &r.error) {
                (Some(true), _) => "PASS".to_string(),
                (Some(false), _) => format!("FAIL ({})", r.violated.join(", ")),
                (None, e) => format!("ERROR: {}", e.as_deref().unwrap_or("")),
            };
            let _ = writeln!(
                s,
                "| {} | {verdict} | {} | {} | {} | {} | {} | {} |",
                r.round,
                num(r.failover_time_ms),
                num(r.write_gap_ms),
                r.acked_writes_lost
                    .zip(r.acked_writes)
                    .map_or("-".into(), |(l, a)| format!("{l}/{a}")),
                r.split_brain_writes.map_or("-".into(), |n| n.to_string()),
                r.wall_time_s.map_or("-".into(), |w| format!("{w:.1}")),
                r.dir
                    .as_ref()
                    .and_then(|d| d.file_name())
                    .map_or("-".into(), |d| format!("`{}`", d.to_string_lossy()))
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(spread([]), None);
        let odd = spread([3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (odd.min, odd.median, odd.max, odd.measured_in),
            (1.0, 2.0, 3.0, 3)
        );
        let even = spread([4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((even.min, even.median, even.max), (1.0, 3.0, 10.0));
    }

    #[test]
    fn an_error_is_a_failed_repetition_without_figures() {
        let err = Err(RunError::Failed("the topology did not form".into()));
        let reps = vec![Repetition::new(1, &err)];
        let a = Aggregate::new("primary-kill", BackendKind::Process, reps);
        assert!(!a.pass());
        assert_eq!((a.passed, a.failed, a.errors), (0, 0, 1));
        assert_eq!(a.failover_time_ms, None);
        assert!(
            a.summary_line().contains("FAIL 0/1"),
            "{}",
            a.summary_line()
        );
        assert!(a.markdown().contains("ERROR: the topology did not form"));
    }
}
