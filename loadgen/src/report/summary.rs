//! `summary.json`: the schema of one run's results, as data.
//!
//! Every figure a person or a CI job reads about a run is a field here; `report.md`, the console
//! table and `latency.svg` are rendered from this same value, so they cannot disagree. The types
//! are plain data (they know nothing of goose or Redis): the engine fills them, the renderers read
//! them, and `compare` reads them back (see [`super::read`]). An incompatible change bumps
//! [`SCHEMA_VERSION`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::capacity::CapacityReport;
use crate::scenario::Scenario;

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
    pub memory_projection: Option<CapacityReport>,
}

#[derive(Serialize, Clone, Debug)]
pub struct ScenarioInfo {
    pub name: String,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ScenarioInfo {
    pub fn of(scenario: &Scenario, file: &std::path::Path) -> ScenarioInfo {
        ScenarioInfo {
            name: scenario.display_name().to_string(),
            file: file.display().to_string(),
            description: scenario.description.clone(),
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct TargetInfo {
    /// Redacted: a password shows as `***`.
    pub url: String,
    /// `standalone`, `sentinel` or `cluster`.
    pub kind: String,
    /// True when loadgen started (and removed) the server itself.
    pub throwaway: bool,
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

#[derive(Serialize, Clone, Debug)]
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

/// Percentiles of one histogram, µs.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

#[derive(Serialize)]
pub struct SloResult {
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
}

/// One SLO or invariant, judged: the bound and the observed value side by side.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub name: String,
    pub bound: String,
    pub observed: String,
    pub passed: bool,
}

/// Promises the stores make, counted from the client side (see `engine::invariants`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct InvariantCounts {
    pub lost_sessions: u64,
    pub ratelimit_over_admissions: u64,
    pub revoked_tokens_validating: u64,
    /// Not a violation: informational.
    pub token_cache_misses: u64,
}

impl InvariantCounts {
    pub fn violations(&self) -> u64 {
        self.lost_sessions + self.ratelimit_over_admissions + self.revoked_tokens_validating
    }
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

/// One `cmdstat_<name>` line (or its change over a run).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub failed_calls: u64,
}

/// One `INFO` sample of the series.
#[derive(Clone, Debug, Serialize)]
pub struct InfoPoint {
    /// Seconds since the sampler started.
    pub t: f64,
    pub values: BTreeMap<&'static str, f64>,
}

/// Mean `MEMORY USAGE` of the keys of one kind.
#[derive(Clone, Debug, Serialize)]
pub struct KeyCost {
    pub mean_bytes: f64,
    pub samples: usize,
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

/// One second of one operation, as kept in the series.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SecondSample {
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub service_p99_us: u64,
}

#[derive(Serialize, Clone, Debug)]
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

/// Raw `PING` throughput at a fixed concurrency.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    pub command: &'static str,
    pub concurrency: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
}
