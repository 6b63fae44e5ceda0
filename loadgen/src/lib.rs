//! # loadgen — prove a Redis deployment before it carries an OAuth server's sessions
//!
//! `loadgen run scenario.toml` drives the [`cache`] crate's stores (sessions, token cache, rate
//! limits) with goose against a real Redis — the one `REDIS_URL` names, or a throwaway
//! `redis-server` it starts — and writes what an operator and a CI job need to decide whether the
//! deployment holds: per-operation latency histograms, invariant violations, Redis's own view,
//! and pass/fail verdicts against the scenario's SLOs. `sweep`, `capacity`, `evict`, `compare`
//! and `doctor` answer the other questions operators run it for.
//!
//! ## Layers
//!
//! The crate is four layers over a foundation. A module imports only from layers below its own,
//! never from a sibling command, never upwards:
//!
//! ```text
//! cli/        the binary's half: clap flags, env, resolving into typed options,
//!             printing (the only module that prints), exit codes, Ctrl-C
//!   ↓
//! commands/   run, sweep, capacity, evict, compare, doctor: one each, none imports another;
//!             take typed options, emit progress events, return their result as a value
//!   ↓
//! engine/     what commands are built from: target, redis_admin, workload, keyspace, seed,
//!             attack, stepper, pacing, record, invariants, judge, capacity, results, progress
//!   ↓
//! report/     results as data (summary.json, sweep.json, ...) and their renderers
//!             (Markdown, SVG, console tables); knows nothing of goose or Redis
//!   ↓
//! scenario/, error.rs   foundation: the scenario schema and loader; the error type and exit codes
//! ```
//!
//! Rules the layout keeps: values are typed once at the edge (`cli::resolve` turns flags, the
//! environment and the scenario file into a command's options; nothing below re-parses a URL or
//! formats a flag back into text); errors keep their source and are matched by kind, never by
//! message ([`Error`], [`cache::ErrorKind`]); the library never prints (commands emit
//! `engine::progress::Event`s, the binary renders them); cancellation is a token handed down, not
//! a global flag.
//!
//! The public surface is small on purpose: the scenario schema ([`scenario`]), the result schemas
//! and renderers ([`report`]), the error type, and the few engine and command entry points the
//! integration tests and fuzz targets use, re-exported below.

mod cli;
mod commands;
mod engine;
mod error;
pub mod report;
pub mod scenario;

pub use cli::main;
pub use error::{EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, EXIT_TARGET, EXIT_USAGE, Error, Result};

/// Entry points for the integration tests and fuzz targets (not a stable API).
pub mod testing {
    pub use crate::commands::doctor::diagnose;
    pub use crate::engine::capacity::measure::payload;
    pub use crate::engine::workload::{login_session, session_store};
}
