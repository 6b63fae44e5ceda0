//! # loadgen — prove a Redis deployment before it carries an OAuth server's sessions
//!
//! `loadgen run scenario.toml` drives the [`cache`] crate's stores (sessions, token cache, rate
//! limits) with goose against a real Redis — the one `REDIS_URL` names, or a throwaway
//! `redis-server` it starts — and writes what an operator and a CI job need to decide whether the
//! deployment holds: per-operation latency histograms, invariant violations, Redis's own view,
//! and pass/fail verdicts against the scenario's SLOs.
//!
//! | part | what it is for |
//! |---|---|
//! | [`scenario`] | the TOML schema, validation, errors with `file:line:col` |
//! | [`keyspace`] | accounts, sessions and tokens as the simulated server remembers them |
//! | [`workload`] | the goose transaction: one weighted op against the stores |
//! | [`attack`] | one measured goose attack with the live status line |
//! | [`pacing`] | open-model schedule; service vs response time (coordinated omission) |
//! | [`record`] | HdrHistograms per op, per-second series |
//! | [`invariants`] | lost sessions, rate-limit over-admission, revoked tokens that validate |
//! | [`target`] | the Redis under test, calibration |
//! | [`observe`] | `INFO` before/after and every second, commandstats, `MEMORY USAGE` |
//! | [`report`] | `summary.json`, `report.md`, `latency-<op>.hgrm`, `latency.svg` |
//! | [`verdict`] | SLO and invariant verdicts → exit code |
//! | [`run`] | the whole run, start to exit code |
//! | [`doctor`] | `loadgen doctor`: reachability and configuration audit with fixes |
//! | [`compare`] | `loadgen compare`: the CI regression gate, noise-aware verdicts per op and metric |
//! | [`sweep`] | `loadgen sweep`: step the load to the knee, one goose attack per step |
//! | [`capacity`] | `loadgen capacity`: bytes per key kind, what fits in a maxmemory |
//! | [`evict`] | `loadgen evict`: eviction policies vs sessions and rate limits, SAFE/UNSAFE |

pub mod attack;
pub mod capacity;
pub mod cli;
pub mod compare;
pub mod doctor;
pub mod evict;
pub mod invariants;
pub mod keyspace;
pub mod observe;
pub mod pacing;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod status;
pub mod sweep;
pub mod target;
pub mod verdict;
pub mod workload;

/// A reason to stop early, with the process exit code it maps to.
#[derive(Debug)]
pub struct Fatal {
    pub code: i32,
    pub message: String,
}

impl Fatal {
    /// Exit 2: the command line or the scenario is wrong.
    pub fn usage(message: impl Into<String>) -> Fatal {
        Fatal {
            code: 2,
            message: message.into(),
        }
    }

    /// Exit 3: no usable Redis (unreachable, authentication, TLS, not installed).
    pub fn target(message: impl Into<String>) -> Fatal {
        Fatal {
            code: 3,
            message: message.into(),
        }
    }

    /// Exit 1: the run itself broke after it started.
    pub fn run(message: impl Into<String>) -> Fatal {
        Fatal {
            code: 1,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
