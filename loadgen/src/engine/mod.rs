//! The engine: what the commands are built from. It drives the [`cache`] stores with goose against
//! a real Redis, measures, judges, and fills the result types of [`crate::report`]; it never reads
//! flags or the environment, never prints (it emits [`progress::Event`]s), and never imports a
//! command or the CLI.
//!
//! | module | what it is for |
//! |---|---|
//! | [`target`] | the Redis under test (a URL or a throwaway server), connect, calibration |
//! | [`redis_admin`] | `INFO`, `CONFIG GET`, `SCAN`, `MEMORY USAGE`, command statistics |
//! | [`sampler`] | `INFO` every second during the load |
//! | [`workload`] | the stores and the goose transaction: one weighted op, recorded |
//! | [`keyspace`] | accounts, sessions and tokens as the simulated server remembers them |
//! | [`seed`] | signing every account in before the load; the audit after it |
//! | [`shard`] | a scale-out worker's share of the load and slice of the keyspace |
//! | [`attack`] | one measured goose attack, cancellable |
//! | [`stepper`] | attack after attack on one keyspace (sweep steps, eviction runs) |
//! | [`status`] | the once-a-second tick behind the live status line |
//! | [`pacing`] | open-model schedule; service vs response time (coordinated omission) |
//! | [`record`] | HdrHistograms per op, per-second series |
//! | [`intervals`] | the recorder's `latency.hlog` intervals (exact scale-out merges) |
//! | [`invariants`] | lost sessions, rate-limit over-admission, revoked tokens that validate |
//! | [`judge`] | SLO and invariant verdicts |
//! | [`bottleneck`] | who was the limit: loadgen, Redis or neither, with the evidence |
//! | [`cpu`] | loadgen's own CPU: process, threads, cgroup quota |
//! | [`availability`] | unavailability windows and the primaries that served |
//! | [`capacity`] | bytes per key kind, measured; what fits in a `maxmemory` |
//! | [`clock`] | Redis's clock as seen from here (`TIME` offset) |
//! | [`results`] | the results directory, the environment record |
//! | [`progress`] | the events commands and the engine emit |
//!
//! Cancellation is a [`tokio_util::sync::CancellationToken`] handed down by the command (the binary
//! cancels it on Ctrl-C); nothing here reads a global flag.

pub(crate) mod acl;
pub(crate) mod attack;
pub(crate) mod availability;
pub(crate) mod bottleneck;
pub(crate) mod capacity;
pub(crate) mod clock;
pub(crate) mod cpu;
pub(crate) mod intervals;
pub(crate) mod invariants;
pub(crate) mod judge;
pub(crate) mod keyspace;
pub(crate) mod pacing;
pub(crate) mod progress;
pub(crate) mod record;
pub(crate) mod redis_admin;
pub(crate) mod results;
pub(crate) mod sampler;
pub(crate) mod seed;
pub(crate) mod shard;
pub(crate) mod status;
pub(crate) mod stepper;
pub(crate) mod target;
pub(crate) mod workload;
