//! `summary.json`: the schema of one run's results, as data.
//!
//! Every figure a person or a CI job reads about a run is a field here; `report.md`, the console
//! table and `latency.svg` are rendered from this same value, so they cannot disagree. The types
//! are plain data (they know nothing of goose or Redis): the engine fills them, the renderers read
//! them, and `compare` reads them back (see [`super::read`]). An incompatible change bumps
//! [`SCHEMA_VERSION`].

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::capacity::CapacityReport;
use super::workers::{MergeReport, WorkerInfo};
use crate::scenario::Scenario;

/// Bumped on incompatible changes to `summary.json`. 2: verdicts carry `id`, `checked` and
/// `status` (`pass`, `fail`, `not_checked`); invariants carry their `*_checked` counts; errors are
/// grouped by class; the run's bottleneck, primaries and unavailability windows are reported.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
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
    /// Which component limited the run, and why (`none` when nothing saturated).
    pub bottleneck: Bottleneck,
    /// Unavailability windows and the primaries that served.
    pub availability: Availability,
    pub redis: RedisReport,
    pub series: SeriesReport,
    /// Errors per operation, by class (`no_primary`, `timeout`, `oom`, `noperm`...).
    pub errors: BTreeMap<String, BTreeMap<String, ErrorClass>>,
    pub environment: Environment,
    /// Bytes per session/token/counter measured on the target and what fits in its maxmemory
    /// (`loadgen capacity`'s report). Absent when it could not be measured.
    /// Not read back: `loadgen merge` does not project a merged run's memory (each worker
    /// measured its own slice of the keyspace).
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub memory_projection: Option<CapacityReport>,
    /// A scale-out worker's shard (`loadgen run --worker I/N`); absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerInfo>,
    /// A merged run (`loadgen merge`): how many workers it adds up; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// A merged run: each worker's identity, figures and verdicts, clock skew, what was merged how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeReport>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
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

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TargetInfo {
    /// Redacted: a password shows as `***`.
    pub url: String,
    /// `standalone`, `sentinel` or `cluster`.
    pub kind: String,
    /// True when loadgen started (and removed) the server itself.
    pub throwaway: bool,
}

#[derive(Serialize, Deserialize)]
pub struct RunInfo {
    pub started_utc: String,
    pub results_dir: String,
    /// `closed` (next op when the last one ends) or `open` (paced to `target_rate`).
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Length of the measured window actually observed, seconds.
    pub measured_seconds: f64,
    /// When it opened, seconds since the attack started (after ramp and warm-up): the origin of
    /// the per-second series, while availability windows count from the attack's start.
    pub measured_from_s: f64,
    pub interrupted: bool,
    /// `--inject-delay`: added inside every op's service time (0 when not set).
    pub inject_delay_us: u64,
    pub seeded_sessions: usize,
    /// Redis's clock minus this machine's, ms (`TIME`; what the sliding-window check uses).
    pub redis_clock_offset_ms: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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

#[derive(Serialize, Deserialize)]
pub struct SloResult {
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
}

/// How a check came out. `NotChecked` means it judged nothing (`checked` = 0): it is never shown
/// as a pass, and fails the run when the scenario requires the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotChecked,
}

impl Status {
    pub fn words(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::NotChecked => "not checked",
        }
    }
}

/// One SLO or invariant, judged: the bound and the observed value side by side, and how much it
/// judged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    /// Stable identifier (`lost_sessions`, `error_rate`, `latency.page_view.p99.response`...);
    /// `[slo] require = [...]` names these.
    pub id: String,
    pub name: String,
    pub bound: String,
    pub observed: String,
    /// Operations, decisions, sessions or tokens the check judged.
    pub checked: u64,
    pub status: Status,
    /// The scenario requires it (`[slo] require`): `not_checked` fails the run.
    pub required: bool,
}

impl Verdict {
    /// Whether it lets the run pass: a pass, or a check nothing required that judged nothing.
    pub fn holds(&self) -> bool {
        match self.status {
            Status::Pass => true,
            Status::Fail => false,
            Status::NotChecked => !self.required,
        }
    }
}

/// Promises the stores make, counted from the client side (see `engine::invariants`), each with
/// how much it judged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InvariantCounts {
    pub lost_sessions: u64,
    /// Sessions the model expected alive that were read, destroyed or logged out everywhere.
    pub sessions_checked: u64,
    pub ratelimit_over_admissions: u64,
    /// Limiter decisions judged (counted by Redis, or decided without it).
    pub ratelimit_decisions_checked: u64,
    /// Requests a fail-open limiter admitted while Redis could not count them.
    pub admitted_while_degraded: u64,
    /// Limiter decisions made without Redis (fail-open or fail-closed).
    pub degraded_decisions: u64,
    pub revoked_tokens_validating: u64,
    /// Revoked tokens presented again.
    pub revoked_tokens_checked: u64,
    /// Not a violation: informational.
    pub token_cache_misses: u64,
    /// Live, unexpired tokens looked up.
    pub tokens_checked: u64,
}

impl InvariantCounts {
    pub fn violations(&self) -> u64 {
        self.lost_sessions
            + self.ratelimit_over_admissions
            + self.revoked_tokens_validating
            + self.admitted_while_degraded
    }
}

/// Which component limited the run, with the evidence and the rule that decided
/// (`engine::bottleneck` states the rules and thresholds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bottleneck {
    pub verdict: Limit,
    /// The rule that decided, in words, with its figures.
    pub rule: String,
    pub generator: GeneratorUse,
    /// Redis's own CPU (`INFO cpu`), when it could be read from one node over the whole attack.
    pub server: Option<ServerUse>,
    /// `PING` on a connection of its own during the load.
    pub probe: Option<ProbeUse>,
    /// Open model: the target rate.
    pub offered_ops_per_sec: Option<f64>,
    pub achieved_ops_per_sec: f64,
    /// Open model: how late operations started behind their schedule (p99), µs.
    pub schedule_lag_p99_us: Option<u64>,
    /// Redis runs on this machine (loopback): loadgen and Redis share its cores.
    pub same_host: bool,
    /// With `same_host`: loadgen + Redis CPU as a share of the machine's cores.
    pub machine_utilisation: Option<f64>,
    /// All processes' CPU as a share of this machine's cores (Linux `/proc/stat`): what others
    /// took shows as the gap between this and loadgen's (+ Redis's) own share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_utilisation: Option<f64>,
}

/// The component that was the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// loadgen (or the machine it shares with Redis): add workers or cores before reading the
    /// throughput as Redis's.
    Generator,
    /// Redis or its host.
    Server,
    /// Neither was saturated: the load offered (users, rate) was the limit.
    None,
    /// Not enough evidence (e.g. `INFO` refused and no probe).
    Unknown,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Generator => "generator",
            Limit::Server => "server",
            Limit::None => "none",
            Limit::Unknown => "unknown",
        }
    }
}

/// loadgen's own CPU over the attack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GeneratorUse {
    pub cpu_seconds: f64,
    /// Cores it could use (affinity and cgroup quota), fractional.
    pub cores: f64,
    /// `cpu_seconds / (wall × cores)`.
    pub utilisation: f64,
    pub cpu_us_per_op: f64,
    /// The busiest thread and its share of one core.
    pub busiest_thread: Option<ThreadUse>,
    /// Share of CFS periods in which a cgroup CPU quota throttled it.
    pub throttled: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThreadUse {
    pub name: String,
    pub utilisation: f64,
}

/// Redis's CPU over the attack, from `INFO cpu`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerUse {
    /// The main thread's share of one core (`used_cpu_*_main_thread`).
    pub main_thread_utilisation: f64,
    /// All of Redis's threads (I/O threads, background jobs), in cores.
    pub cores_used: f64,
    pub cpu_us_per_op: f64,
}

/// `PING` round trips on the probe's own connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeUse {
    /// Median before the load.
    pub idle_p50_us: Option<u64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub samples: u64,
}

/// When Redis was unavailable during a run, and which primary served when.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Availability {
    /// Seconds of unavailability, all windows together.
    pub unavailable_s: f64,
    pub windows: Vec<Window>,
    pub primary_at_start: Option<String>,
    pub primary_at_end: Option<String>,
    /// Each node that answered `INFO`, and from when to when (seconds since the attack started).
    pub primaries: Vec<PrimarySpan>,
    pub switches: Vec<Switch>,
}

/// A stretch of time in which operations failed because Redis was not there.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Window {
    /// Seconds since the attack started (warm-up included), to 0.1 s.
    pub start_s: f64,
    pub end_s: f64,
    pub duration_s: f64,
    pub failed_ops: u64,
    /// Failed operations by error class (`no_primary`, `connection_dropped`, `timeout`...).
    pub failed_by_class: BTreeMap<String, u64>,
    /// Operations that still succeeded inside the window.
    pub succeeded_ops: u64,
}

/// A node that served, from when to when (`INFO` samples, seconds since the attack started).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrimarySpan {
    pub node: String,
    pub run_id: String,
    pub from_s: f64,
    pub to_s: f64,
}

/// The node serving changed (a failover), or restarted (`restarted`: same address, new run_id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Switch {
    pub at_s: f64,
    pub from: String,
    pub to: String,
    pub restarted: bool,
}

/// Errors of one class on one operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorClass {
    pub count: u64,
    /// The first message seen (at most 300 characters; messages never carry secrets).
    pub example: String,
}

#[derive(Serialize, Deserialize, Default)]
pub struct RedisReport {
    pub version: String,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    /// Growth of the counters over the run, added up node by node: never subtracted across two
    /// servers (after a failover the new primary's counters start elsewhere).
    pub deltas: BTreeMap<String, f64>,
    /// The same, per node that served.
    pub deltas_by_node: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per command: calls, µs and failed calls during the run (empty when the primary changed:
    /// before and after would come from two servers).
    pub commandstats: BTreeMap<String, CommandStat>,
    /// `MEMORY USAGE` samples per key kind (`session`, `user-sessions`, `token`, `ratelimit`).
    pub bytes_per_key: BTreeMap<String, KeyCost>,
    /// The primaries at the end of the run (one for standalone/Sentinel; a cluster's, with slots).
    pub nodes: Vec<NodeReport>,
    /// INFO every second during the load.
    pub series: Vec<InfoPoint>,
}

/// One primary as the run left it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    pub address: String,
    /// Slot ranges (`0-5460 7000`), for a cluster's primaries.
    pub slots: String,
    pub used_memory: Option<f64>,
    /// 0 = unlimited.
    pub maxmemory: Option<f64>,
    pub keys: f64,
}

/// One `cmdstat_<name>` line (or its change over a run).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub failed_calls: u64,
}

/// One `INFO` sample of the series.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InfoPoint {
    /// Seconds since the attack started.
    pub t: f64,
    /// The node that answered (`host:port`).
    pub node: String,
    /// Its `run_id`: changes when the process restarts.
    pub run_id: String,
    /// `master` or `slave`, as `INFO` says.
    pub role: String,
    pub values: BTreeMap<String, f64>,
}

/// Mean `MEMORY USAGE` of the keys of one kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyCost {
    pub mean_bytes: f64,
    pub samples: usize,
}

/// Per-second samples over the measured window, per op (index = second).
#[derive(Serialize, Deserialize, Default)]
pub struct SeriesReport {
    pub interval_seconds: u32,
    pub throughput: BTreeMap<String, Vec<u64>>,
    pub errors: BTreeMap<String, Vec<u64>>,
    pub p50_us: BTreeMap<String, Vec<u64>>,
    pub p99_us: BTreeMap<String, Vec<u64>>,
    pub service_p99_us: BTreeMap<String, Vec<u64>>,
}

/// One second of one operation, as kept in the series.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct SecondSample {
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub service_p99_us: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Environment {
    pub loadgen_version: String,
    /// `release` or `debug`: compare numbers only between equal builds.
    pub build: String,
    pub redis_version: String,
    pub cpu_count: usize,
    pub os: String,
    pub arch: String,
    /// Raw PING rate at fixed concurrency against the same target, measured before the load.
    pub calibration: Option<Calibration>,
    /// loadgen's own peak resident memory (VmHWM), bytes; Linux only.
    pub loadgen_peak_rss_bytes: Option<u64>,
}

/// Raw `PING` throughput at a fixed concurrency.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Calibration {
    pub command: String,
    pub concurrency: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
}
