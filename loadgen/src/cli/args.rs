//! The command line as clap sees it: every subcommand's flags, with their help. Values that clap
//! can type on its own (numbers, paths, enumerations) are typed here; the small languages (`--slo`,
//! `--step`, durations, fractions, sizes) are parsed in [`super::values`] and everything is
//! assembled into a command's options in [`super::resolve`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load-test a Redis deployment with an OAuth server's sessions, token cache and rate limits"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a scenario and write results/<scenario>-<UTC time>/
    Run(RunArgs),
    /// Diagnose a Redis deployment: reachability, node states, and an audit of its settings
    /// against the guide (exit 1 on a high-severity finding, 3 if unreachable)
    Doctor(DoctorArgs),
    /// Compare a run with a baseline: throughput, p99 and p99.9 per op with confidence
    /// intervals (exit 1 if a metric regressed beyond --max-regression, 2 for unusable inputs)
    Compare(CompareArgs),
    /// Step the offered load until the SLO breaks or throughput stops growing; report the knee
    /// (exit 1 if no step met the SLO)
    Sweep(SweepArgs),
    /// Measure bytes per session/token/counter and project what fits in a maxmemory (exit 1 if
    /// the scenario's keyspace does not fit)
    Capacity(CapacityArgs),
    /// Run a workload bigger than maxmemory under each eviction policy: SAFE or UNSAFE for
    /// sessions and rate limits (exit 1 if one is UNSAFE)
    Evict(EvictArgs),
    /// Merge the results directories of N scale-out workers (`run --worker I/N`) into one,
    /// exactly: latency histograms added, counts and invariants summed (exit 1 if the merged run
    /// fails, 2 if the directories are not one run)
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
pub(crate) struct MergeArgs {
    /// The workers' results directories, one per worker index
    #[arg(value_name = "DIR", required = true)]
    pub(crate) dirs: Vec<PathBuf>,
    /// The merged results directory to create
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// Text for people or JSON for scripts.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

/// `compare`'s output: Markdown for a pull-request comment, or JSON.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompareFormat {
    Md,
    Json,
}

/// What a sweep steps.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// The open-model target rate (ops/s).
    Rate,
    /// The number of closed-model users.
    Users,
}

/// The flags every scenario command shares: where to run, scenario overrides, TLS trust.
#[derive(Args, Debug, Clone)]
pub(crate) struct ScenarioFlags {
    /// Redis to use (any REDIS_URL form). Overrides REDIS_URL. With neither, loadgen starts
    /// throwaway redis-servers on free loopback ports and removes them at the end.
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// Override any scenario value by its dotted path (repeatable), e.g. --set keyspace.users=1000
    /// --set slo.latency.0.max=2ms
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// PEM bundle of CA certificates to trust for rediss:// (a private CA)
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Scenario file (TOML), e.g. scenarios/load/smoke.toml
    pub(crate) scenario: PathBuf,
    /// Concurrent users (load.users)
    #[arg(long, value_name = "N")]
    pub(crate) users: Option<u32>,
    /// Measured duration after ramp and warm-up (load.duration), e.g. 60s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub(crate) duration: Option<String>,
    /// Target operations per second across all users: open model (load.rate)
    #[arg(long, value_name = "OPS_PER_S")]
    pub(crate) rate: Option<f64>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub(crate) out: PathBuf,
    /// Print the resolved configuration (secrets redacted) and exit
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Add this delay inside every operation's measured service time (a controlled slowdown, to
    /// prove that a regression gate catches one). Timer resolution is about 1 ms.
    #[arg(long, value_name = "DURATION")]
    pub(crate) inject_delay: Option<String>,
    /// Run shard I of N of a scale-out run (0-based), e.g. 2/8: its share of the users and rate,
    /// its own slice of the keyspace. Also LOADGEN_WORKER=I/N, or JOB_COMPLETION_INDEX (a
    /// Kubernetes Indexed Job) or NOMAD_ALLOC_INDEX with --workers N. Merge with `loadgen merge`.
    #[arg(long, value_name = "I/N")]
    pub(crate) worker: Option<String>,
    /// The worker count when the index comes from JOB_COMPLETION_INDEX or NOMAD_ALLOC_INDEX
    /// (also LOADGEN_WORKERS)
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<u32>,
    /// Begin the load at this time (RFC 3339, e.g. 2026-11-30T12:00:00Z), after seeding, so every
    /// worker measures the same wall-clock window. Also LOADGEN_START_AT.
    #[arg(long, value_name = "RFC3339")]
    pub(crate) start_at: Option<String>,
    #[command(flatten)]
    pub(crate) target: ScenarioFlags,
}

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Redis to diagnose (any REDIS_URL form). Overrides REDIS_URL; one of the two is required.
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// Output format
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// PEM file of CA certificates to trust for rediss:// (a private CA)
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// BASELINE then CURRENT (each a results directory, its summary.json, or a directory of
    /// results directories = repetitions). With --baseline, every path here is a current run.
    #[arg(value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Baseline run(s); repeat for repetitions
    #[arg(long, value_name = "PATH")]
    pub(crate) baseline: Vec<PathBuf>,
    /// Current run(s); repeat for repetitions
    #[arg(long, value_name = "PATH")]
    pub(crate) current: Vec<PathBuf>,
    /// A metric regresses when its whole 95% CI is beyond this change in the bad direction:
    /// "10%" or "0.10"
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub(crate) max_regression: String,
    /// Output: md (a pull-request comment) or json
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = CompareFormat::Md)]
    pub(crate) format: CompareFormat,
    /// Divide throughput (and multiply latency) by each side's calibration figure (raw PING/s
    /// measured at the start of each run, averaged over the side), so a baseline from another
    /// machine is usable
    #[arg(long)]
    pub(crate) normalize: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SweepArgs {
    /// Scenario file (TOML): its mix, keyspace and users; the load is stepped
    pub(crate) scenario: PathBuf,
    /// SLO every step must meet, e.g. 'p99<2ms', 'page_view:p99.9<=10ms', 'service:p99<1ms',
    /// 'errors<0.1%' (repeatable; response time unless `service:`). Default: the scenario's
    /// `[slo]` latency bounds and error rate.
    #[arg(long, value_name = "BOUND")]
    pub(crate) slo: Vec<String>,
    /// What to step
    #[arg(long, value_name = "WHAT", value_enum, default_value_t = By::Rate)]
    pub(crate) by: By,
    /// First step's offered load. Default: the scenario's load.rate (or 1000) / load.users
    #[arg(long, value_name = "N")]
    pub(crate) start: Option<f64>,
    /// Growth per step: +N (add), xF (multiply) or P% (grow by P percent)
    #[arg(
        long,
        value_name = "RULE",
        default_value = "x1.5",
        allow_hyphen_values = true
    )]
    pub(crate) step: String,
    /// Most steps before the refinement
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) max_steps: u32,
    /// Bisection steps between the last passing and the first failing load
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) refine: u32,
    /// Stop when throughput grows by less than this over the previous step (saturation), or
    /// by less than half the offered load's growth, whichever is smaller
    #[arg(long, value_name = "PERCENT", default_value = "3%")]
    pub(crate) min_gain: String,
    /// Measured time per step (after the scenario's warm-up)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub(crate) step_duration: String,
    /// Users for the open model (load.users): enough to send the highest rate
    #[arg(long, value_name = "N")]
    pub(crate) users: Option<u32>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) target: ScenarioFlags,
}

#[derive(Args, Debug)]
pub(crate) struct CapacityArgs {
    /// Scenario file (TOML): its keyspace (payload sizes, sessions per user, IPs, endpoints) is
    /// what is measured and projected
    pub(crate) scenario: PathBuf,
    /// maxmemory to project for, e.g. 256mb. Default: the target's (CONFIG GET), else the
    /// scenario's [redis] maxmemory.
    #[arg(long, value_name = "SIZE")]
    pub(crate) maxmemory: Option<String>,
    /// Share of maxmemory kept free (plus the replication backlog), e.g. 10% or 0.1
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub(crate) headroom: String,
    /// Items written per kind for the measurement
    #[arg(long, value_name = "N", default_value_t = crate::engine::capacity::DEFAULT_SAMPLES)]
    pub(crate) samples: usize,
    /// Output format
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    // Without a URL the measurement runs on a throwaway server with no maxmemory; the limit is
    // projected.
    #[command(flatten)]
    pub(crate) target: ScenarioFlags,
}

#[derive(Args, Debug)]
pub(crate) struct EvictArgs {
    /// Scenario file (TOML): its keyspace should need more memory than --maxmemory
    pub(crate) scenario: PathBuf,
    /// Comma-separated eviction policies, each run on its own throwaway server
    /// [default: noeviction,allkeys-lru,allkeys-lfu,volatile-lru,volatile-ttl]
    #[arg(long, value_name = "LIST")]
    pub(crate) policies: Option<String>,
    /// maxmemory of the throwaway servers, e.g. 16mb. Default: the scenario's [redis] maxmemory
    #[arg(long, value_name = "SIZE")]
    pub(crate) maxmemory: Option<String>,
    /// Measured load per policy (load.duration), e.g. 10s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub(crate) duration: Option<String>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub(crate) out: PathBuf,
    // With --redis-url (or REDIS_URL), the target is tested once, with its own policy and
    // maxmemory, instead of throwaway servers.
    #[command(flatten)]
    pub(crate) target: ScenarioFlags,
}
