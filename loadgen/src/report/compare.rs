//! `loadgen compare`'s result as data ([`Comparison`]: one [`Row`] per operation and metric, each
//! with its interval and [`Verdict`]) and its two outputs, rendered from it so they cannot
//! disagree: Markdown meant to be posted as a pull-request comment as it is (a verdict line, what
//! was compared with what, one table, a legend), and JSON for scripts.

use std::fmt::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::fmt::{figure as grouped, us as fmt_us};
use super::markdown::{Align, Table};
use super::read::Run;

/// Bumped on incompatible changes to `compare --format json`.
pub const SCHEMA_VERSION: u32 = 1;

/// Confidence of the intervals `compare` reports (per-operation rows share it, see
/// [`crate::compare`]).
pub const CONFIDENCE: f64 = 0.95;
/// A ratio current / baseline and its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub point: f64,
    pub low: f64,
    pub high: f64,
}

/// What is compared for each operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Metric {
    #[serde(rename = "throughput")]
    Throughput,
    #[serde(rename = "p99")]
    P99,
    #[serde(rename = "p99.9")]
    P999,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole CI is beyond the threshold in the bad direction.
    Regressed,
    /// The whole CI is beyond the threshold in the good direction.
    Improved,
    /// Neither: the change is inside the threshold, or not distinguishable from noise.
    WithinNoise,
    /// Too few samples for an interval: fewer than two per-second values, or (p99.9) fewer
    /// than two runs on a side.
    NotEnoughData,
}

impl Verdict {
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::WithinNoise => "within noise",
            Verdict::NotEnoughData => "not enough data",
        }
    }
}

/// One line of the result: a metric of an operation.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: String,
    pub metric: Metric,
    pub baseline: f64,
    pub current: f64,
    /// Ratio current / baseline with its CI.
    pub interval: Option<Interval>,
    /// Confidence of `interval`: 95 % for `all`, simultaneous 95 % over the operations for the
    /// others (Bonferroni).
    pub confidence: f64,
    pub verdict: Verdict,
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

fn value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Throughput => format!("{}/s", grouped(v)),
        _ => fmt_us(v.round() as u64),
    }
}

fn pct(ratio: f64) -> String {
    format!("{:+.1}%", (ratio - 1.0) * 100.0)
}

fn scenario(c: &Comparison) -> &str {
    &c.base[0].summary.scenario.name
}

/// "a, b, c" or "a, b … (+5 more)".
fn paths(runs: &[Run]) -> String {
    let shown: Vec<String> = runs
        .iter()
        .take(2)
        .map(|r| format!("`{}`", r.shown))
        .collect();
    let more = runs.len().saturating_sub(2);
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} … (+{more} more)", shown.join(", "))
    }
}

fn distinct(runs: &[Run], f: impl Fn(&Run) -> String) -> String {
    let mut v: Vec<String> = runs.iter().map(f).collect();
    v.sort();
    v.dedup();
    v.join(" / ")
}

fn started(runs: &[Run]) -> String {
    let mut v: Vec<&str> = runs
        .iter()
        .map(|r| {
            r.summary
                .run
                .started_utc
                .get(..19)
                .unwrap_or(&r.summary.run.started_utc)
        })
        .collect();
    v.sort();
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if a != b => format!("{a}Z … {b}Z"),
        (Some(a), _) => format!("{a}Z"),
        _ => String::new(),
    }
}

fn calibration(runs: &[Run], mean: Option<f64>) -> String {
    let first = runs[0].summary.environment.calibration.as_ref();
    match (mean, first) {
        (Some(m), Some(c)) => format!(
            "{} {}/s (concurrency {}{})",
            grouped(m),
            c.command,
            c.concurrency,
            if runs.len() > 1 { ", mean" } else { "" }
        ),
        _ => "none".into(),
    }
}

fn mode_line(c: &Comparison) -> String {
    let [b, k] = c.mode.calibration;
    if c.mode.normalized {
        let (b, k) = (b.unwrap_or(0.0), k.unwrap_or(0.0));
        format!(
            "**Mode: normalized by calibration.** Throughput is divided and latency multiplied by each side's calibration (mean of its runs), then expressed on the baseline's machine (calibration baseline {} vs current {} PING/s: current throughput ×{:.3}, latency ×{:.3}).",
            grouped(b),
            grouped(k),
            b / k,
            k / b
        )
    } else {
        let both = match (b, k) {
            (Some(b), Some(k)) => format!(
                " (calibration baseline {} vs current {} PING/s; use `--normalize` if the runs come from different machines)",
                grouped(b),
                grouped(k)
            ),
            _ => String::new(),
        };
        format!("**Mode: raw figures**, as measured{both}.")
    }
}

fn verdict_cell(v: Verdict) -> String {
    match v {
        Verdict::Regressed => "❌ **regressed**".into(),
        Verdict::Improved => "✅ improved".into(),
        other => other.words().into(),
    }
}

/// current / baseline, when the baseline is not zero.
fn ratio(r: &Row) -> Option<f64> {
    (r.baseline > 0.0).then(|| r.current / r.baseline)
}

fn row_cells(r: &Row) -> [String; 7] {
    let change = ratio(r).map(pct).unwrap_or_default();
    let ci = match r.interval {
        Some(i) => format!("[{}, {}]", pct(i.low), pct(i.high)),
        None => "—".into(),
    };
    [
        r.op.clone(),
        r.metric.name().to_string(),
        value(r.metric, r.baseline),
        value(r.metric, r.current),
        change,
        ci,
        verdict_cell(r.verdict),
    ]
}

pub fn markdown(c: &Comparison) -> String {
    let t = c.threshold * 100.0;
    let n = c.regressions();
    let mut s = String::new();
    let headline = if n > 0 {
        format!(
            "❌ {n} regression{} beyond {t:.0}%",
            if n == 1 { "" } else { "s" }
        )
    } else {
        format!("✅ no regression beyond {t:.0}%")
    };
    let _ = writeln!(s, "### loadgen compare: `{}` — {headline}\n", scenario(c));
    let _ = writeln!(s, "| | baseline | current |\n|---|---|---|");
    let environment = |runs: &[Run]| {
        distinct(runs, |r| {
            let e = &r.summary.environment;
            format!("{}, {}, {}", e.redis_version, e.build, e.cpu_count)
        })
    };
    let _ = writeln!(s, "| runs | {} | {} |", c.base.len(), c.cur.len());
    let _ = writeln!(s, "| results | {} | {} |", paths(&c.base), paths(&c.cur));
    let _ = writeln!(
        s,
        "| started (UTC) | {} | {} |",
        started(&c.base),
        started(&c.cur)
    );
    let _ = writeln!(
        s,
        "| Redis, build, CPUs | {} | {} |",
        environment(&c.base),
        environment(&c.cur)
    );
    let _ = writeln!(
        s,
        "| calibration | {} | {} |\n",
        calibration(&c.base, c.mode.calibration[0]),
        calibration(&c.cur, c.mode.calibration[1])
    );
    let _ = writeln!(s, "{}\n", mode_line(c));
    let conf = CONFIDENCE * 100.0;
    let right = Align::Right;
    let ci = format!("{conf:.0}% CI");
    let mut table = Table::new(&[
        ("op", Align::Left),
        ("metric", Align::Left),
        ("baseline", right),
        ("current", right),
        ("change", right),
        (ci.as_str(), right),
        ("verdict", Align::Left),
    ]);
    for r in &c.rows {
        table.row(row_cells(r));
    }
    s.push_str(&table.render());
    let _ = writeln!(
        s,
        "\nA metric **regressed** when its whole {conf:.0}% confidence interval lies more than {t:.0}% on the bad side \
         (lower throughput, higher latency), **improved** when it lies more than {t:.0}% on the good side, and is \
         **within noise** otherwise. Intervals: a permutation test over the per-second samples, inverted (exact for \
         any distribution; the samples of repetitions are pooled). p99 is the mean of the per-second p99s (`all`: \
         weighted by the operations' counts), which one stalled second cannot swing the way it swings a \
         whole-run p99. p99.9 is the whole-run figure, one sample per run: it is judged with repetitions \
         (4 runs a side), otherwise \"not enough data\"."
    );
    if let Some(op_row) = c.rows.iter().find(|r| r.op != "all") {
        let ops = c.rows.iter().filter(|r| r.op != "all").count() / 3;
        let _ = writeln!(
            s,
            "\nRows of single operations carry simultaneous {conf:.0}% intervals over the {ops} operations \
             (Bonferroni: each at {:.2}%), so that {ops} operations are not {ops} chances of a false alarm.",
            op_row.confidence * 100.0
        );
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:");
        for note in &c.notes {
            let _ = writeln!(s, "- {note}");
        }
    }
    s
}

fn runs_json(runs: &[Run]) -> Value {
    Value::Array(
        runs.iter()
            .map(|r| {
                let e = &r.summary.environment;
                json!({
                    "path": r.shown,
                    "started_utc": r.summary.run.started_utc,
                    "seconds": r.seconds(),
                    "redis_version": e.redis_version,
                    "build": e.build,
                    "cpu_count": e.cpu_count,
                    "calibration_ops_per_sec": e.calibration.as_ref().map(|c| c.ops_per_sec),
                    "inject_delay_us": r.summary.run.inject_delay_us,
                })
            })
            .collect(),
    )
}

pub fn json(c: &Comparison) -> String {
    let metrics: Vec<Value> = c
        .rows
        .iter()
        .map(|r| {
            json!({
                "op": r.op,
                "metric": r.metric,
                "unit": if r.metric == Metric::Throughput { "ops/s" } else { "us" },
                "baseline": (r.baseline * 10.0).round() / 10.0,
                "current": (r.current * 10.0).round() / 10.0,
                "change": ratio(r).map(|x| x - 1.0),
                "ci_low": r.interval.map(|i| i.low - 1.0),
                "ci_high": r.interval.map(|i| i.high - 1.0),
                "verdict": r.verdict,
                "confidence": r.confidence,
            })
        })
        .collect();
    let n = c.regressions();
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario(c),
        "max_regression": c.threshold,
        "confidence": CONFIDENCE,
        "method": "inverted permutation test over per-second samples (p99.9: over runs)",
        "mode": if c.mode.normalized { "normalized" } else { "raw" },
        "calibration_ops_per_sec": {
            "baseline": c.mode.calibration[0],
            "current": c.mode.calibration[1],
        },
        "baseline": { "runs": runs_json(&c.base) },
        "current": { "runs": runs_json(&c.cur) },
        "metrics": metrics,
        "regressions": n,
        "exit_code": i32::from(n > 0),
        "notes": c.notes,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(pct(0.8), "-20.0%");
        assert_eq!(pct(1.125), "+12.5%");
        assert_eq!(value(Metric::P99, 3509.0), "3.51ms");
    }
}
