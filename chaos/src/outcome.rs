//! What a run takes and gives back: its options, its outcome and why it produced no verdict.
//!
//! Its own module so that the runner ([`crate::run`]) and the phases of one experiment
//! ([`crate::phases`]) both use these types without importing each other.

use std::path::PathBuf;

use crate::db::{BackendKind, DbError};
use crate::guard::signal_name;
use crate::report::Report;

/// How to run, decided at the edge (CLI or test).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub backend: BackendKind,
    pub image: String,
    /// Where `chaos-<name>-<time>/` directories go.
    pub results_root: PathBuf,
}

/// Why an experiment produced no verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Docker, the image or a Redis binary is missing (exit 3).
    #[error("environment: {0}")]
    Environment(String),
    /// The topology could not be built or driven (the node's own error kept as the source).
    #[error(transparent)]
    Db(DbError),
    #[error("{0}")]
    Failed(String),
    /// SIGINT or SIGTERM (exit 128 + signal).
    #[error("interrupted by {}; {detail}", signal_name(*signal))]
    Interrupted { signal: i32, detail: String },
}

impl From<DbError> for RunError {
    fn from(e: DbError) -> Self {
        if e.is_environment() {
            RunError::Environment(e.to_string())
        } else {
            RunError::Db(e)
        }
    }
}

/// The report and where it was written.
pub struct Outcome {
    pub report: Report,
    pub dir: PathBuf,
}
