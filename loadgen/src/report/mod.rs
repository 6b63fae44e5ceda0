//! The results directory, `results/<scenario>-<UTC time>/`:
//!
//! | file | for whom |
//! |---|---|
//! | `summary.json` | CI and scripts: everything below as data, with a `schema_version` |
//! | `report.md` | a person: the same as tables ([`markdown`]) |
//! | `latency-<op>.hgrm` | HdrHistogram's plotter: response-time distribution per op ([`hgrm`]); `latency-<op>-service.hgrm` has service time |
//! | `latency.svg` | a glance: p50/p99 per second per op ([`svg`]) |
//! | `report.html` | goose's own report (written by goose) |
//!
//! Data first: the Markdown and SVG are rendered from the same [`Summary`] that is written as
//! JSON, so they cannot disagree. Nothing secret reaches any file: the target URL is the redacted
//! form, tokens and session ids are never part of the results, and error texts come from the
//! `cache` crate, whose errors never carry them.

mod hgrm;
mod markdown;
mod svg;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::invariants::InvariantCounts;
use crate::observe::{CommandStat, InfoPoint, KeyCost};
use crate::record::{Measured, Percentiles};
use crate::scenario::{Op, Scenario};
use crate::target::Calibration;
use crate::verdict::Verdict;

pub use hgrm::percentile_distribution;
pub use svg::latency_svg;
pub(crate) use svg::{Canvas, esc, nice_step, ticks};

/// Bumped on incompatible changes to `summary.json`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Summary {
    pub schema_version: u32,
    pub scenario: ScenarioInfo,
    /// The resolved scenario: file, `--set` overrides and defaults applied.
    pub config: Scenario,
    pub target: TargetInfo,
    pub run: RunInfo,
    /// Per operation, plus `all`.
    pub ops: BTreeMap<String, OpStats>,
    pub invariants: InvariantCounts,
    pub slo: SloResult,
    pub redis: RedisReport,
    pub series: SeriesReport,
    /// Error messages per operation, with counts.
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
    pub environment: Environment,
    /// Bytes per session/token/counter measured on the target and what fits in its maxmemory
    /// (`loadgen capacity`'s report). Absent when it could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_projection: Option<crate::capacity::CapacityReport>,
}

#[derive(Serialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ScenarioInfo {
    /// The scenario of a resolved command line.
    pub fn of(o: &crate::run::RunOptions) -> ScenarioInfo {
        ScenarioInfo {
            name: o.scenario.display_name().to_string(),
            file: o.scenario_file.display().to_string(),
            description: o.scenario.description.clone(),
        }
    }
}

#[derive(Serialize, Clone)]
pub struct TargetInfo {
    /// Redacted: a password shows as `***`.
    pub url: String,
    /// `standalone`, `sentinel` or `cluster`.
    pub kind: String,
    /// True when loadgen started (and removed) the server itself.
    pub throwaway: bool,
}

impl TargetInfo {
    pub fn of(t: &crate::target::Target) -> TargetInfo {
        TargetInfo {
            url: t.url.to_string(),
            kind: t.redis.kind().to_string(),
            throwaway: t.throwaway.is_some(),
        }
    }
}

#[derive(Serialize)]
pub struct RunInfo {
    pub started_utc: String,
    pub results_dir: String,
    /// `closed` (next op when the last one ends) or `open` (paced to `target_rate`).
    pub model: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Length of the measured window actually observed, seconds.
    pub measured_seconds: f64,
    pub interrupted: bool,
    /// `--inject-delay`: added inside every op's service time (0 when not set).
    pub inject_delay_us: u64,
    pub seeded_sessions: usize,
}

#[derive(Serialize, Clone)]
pub struct OpStats {
    pub count: u64,
    pub errors: u64,
    /// Refused by the rate limiter (an answer, not an error).
    pub denied: u64,
    /// Key not found: an expired/evicted session, an uncached token.
    pub misses: u64,
    pub throughput: f64,
    pub service: Percentiles,
    pub response: Percentiles,
}

#[derive(Serialize)]
pub struct SloResult {
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
}

#[derive(Serialize, Default)]
pub struct RedisReport {
    pub version: String,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    /// `after - before` for the counters.
    pub deltas: BTreeMap<String, f64>,
    /// Per command: calls, µs and failed calls during the run.
    pub commandstats: BTreeMap<String, CommandStat>,
    /// `MEMORY USAGE` samples per key kind (`session`, `user-sessions`, `token`, `ratelimit`).
    pub bytes_per_key: BTreeMap<String, KeyCost>,
    /// INFO every second during the load.
    pub series: Vec<InfoPoint>,
}

/// Per-second samples over the measured window, per op (index = second).
#[derive(Serialize, Default)]
pub struct SeriesReport {
    pub interval_seconds: u32,
    pub throughput: BTreeMap<String, Vec<u64>>,
    pub errors: BTreeMap<String, Vec<u64>>,
    pub p50_us: BTreeMap<String, Vec<u64>>,
    pub p99_us: BTreeMap<String, Vec<u64>>,
    pub service_p99_us: BTreeMap<String, Vec<u64>>,
}

#[derive(Serialize)]
pub struct Environment {
    pub loadgen_version: &'static str,
    /// `release` or `debug`: compare numbers only between equal builds.
    pub build: &'static str,
    pub redis_version: String,
    pub cpu_count: usize,
    pub os: &'static str,
    pub arch: &'static str,
    /// Raw PING rate at fixed concurrency against the same target, measured before the load.
    pub calibration: Option<Calibration>,
    /// loadgen's own peak resident memory (VmHWM), bytes; Linux only.
    pub loadgen_peak_rss_bytes: Option<u64>,
}

impl Environment {
    pub fn here(redis_version: String, calibration: Option<Calibration>) -> Environment {
        Environment {
            loadgen_version: env!("CARGO_PKG_VERSION"),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            redis_version,
            cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            calibration,
            loadgen_peak_rss_bytes: peak_rss(),
        }
    }
}

/// `VmHWM` from `/proc/self/status`.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Per-op stats (ops that ran or were weighted) plus `all`.
pub fn op_stats(m: &Measured, weighted: &[Op], seconds: f64) -> BTreeMap<String, OpStats> {
    let per_sec = |n: u64| ((n as f64 / seconds.max(1e-9)) * 10.0).round() / 10.0;
    let mut all_s = crate::record::new_histogram();
    let mut all_r = crate::record::new_histogram();
    let mut out = BTreeMap::new();
    let (mut c, mut e, mut d, mut mi) = (0, 0, 0, 0);
    for o in &m.ops {
        let _ = all_s.add(&o.service);
        let _ = all_r.add(&o.response);
        c += o.count;
        e += o.errors;
        d += o.denied;
        mi += o.misses;
        if o.count == 0 && !weighted.contains(&o.op) {
            continue;
        }
        out.insert(
            o.op.name().to_string(),
            OpStats {
                count: o.count,
                errors: o.errors,
                denied: o.denied,
                misses: o.misses,
                throughput: per_sec(o.count),
                service: Percentiles::of(&o.service),
                response: Percentiles::of(&o.response),
            },
        );
    }
    out.insert(
        "all".into(),
        OpStats {
            count: c,
            errors: e,
            denied: d,
            misses: mi,
            throughput: per_sec(c),
            service: Percentiles::of(&all_s),
            response: Percentiles::of(&all_r),
        },
    );
    out
}

pub fn series_report(m: &Measured) -> SeriesReport {
    let mut s = SeriesReport {
        interval_seconds: 1,
        ..SeriesReport::default()
    };
    for op in Op::ALL {
        if !m.series.iter().any(|sec| sec[op.index()].count > 0) {
            continue;
        }
        let col = |f: fn(&crate::record::SecondSample) -> u64| -> Vec<u64> {
            m.series.iter().map(|sec| f(&sec[op.index()])).collect()
        };
        let name = op.name().to_string();
        s.throughput.insert(name.clone(), col(|x| x.count));
        s.errors.insert(name.clone(), col(|x| x.errors));
        s.p50_us.insert(name.clone(), col(|x| x.p50_us));
        s.p99_us.insert(name.clone(), col(|x| x.p99_us));
        s.service_p99_us.insert(name, col(|x| x.service_p99_us));
    }
    s
}

/// Writes every file except goose's `report.html` into `dir`.
pub fn write_all(dir: &Path, summary: &Summary, m: &Measured) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("report.md"), markdown::render(summary))?;
    for o in &m.ops {
        if o.count == 0 {
            continue;
        }
        let name = o.op.name();
        std::fs::write(
            dir.join(format!("latency-{name}.hgrm")),
            percentile_distribution(&o.response),
        )?;
        std::fs::write(
            dir.join(format!("latency-{name}-service.hgrm")),
            percentile_distribution(&o.service),
        )?;
    }
    std::fs::write(
        dir.join("latency.svg"),
        latency_svg(&summary.scenario.name, &m.series),
    )?;
    Ok(())
}
