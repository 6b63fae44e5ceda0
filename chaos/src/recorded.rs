//! One run's evidence as a file: `history.json`, everything the [`checker`](crate::checker) needs
//! and nothing secret, so `chaos check <run dir | history.json>` judges a recorded run again with
//! the same code as the live run (after a checker fix, or with other expectations).
//!
//! Session ids and tokens are not in it (see [`crate::history`]): the final reads' results are
//! recorded as indices into the write registry instead.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::experiment::Experiment;
use crate::history::{AckedWrite, FaultEvent, Op, SentinelEvent, SessionRecord};
use crate::observe::FinalState;
use crate::ttl::ProbeResult;

/// Bumped on any incompatible change of `history.json`.
pub const HISTORY_SCHEMA_VERSION: u32 = 2;

/// A recorded run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub schema_version: u32,
    /// The experiment as it ran (its expectations judge the history).
    pub experiment: Experiment,
    /// The primary before any fault.
    pub initial_primary_port: u16,
    /// When the workload stopped (ms since it started): an outage lasting to the end of the run
    /// is measured up to here.
    pub end_ms: f64,
    pub ops: Vec<Op>,
    pub sessions: Vec<SessionRecord>,
    pub writes: Vec<AckedWrite>,
    pub faults: Vec<FaultEvent>,
    pub sentinel_events: Vec<SentinelEvent>,
    pub probes: Vec<ProbeResult>,
    pub final_state: FinalState,
}

/// A history that cannot be read: a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HistoryError(pub String);

impl Recorded {
    /// Reads `path`: a run directory (its `history.json`) or the file itself.
    pub fn load(path: &Path) -> Result<Recorded, HistoryError> {
        let file: PathBuf = if path.is_dir() {
            path.join("history.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| HistoryError(format!("cannot read history {}: {e}", file.display())))?;
        Recorded::parse(&text).map_err(|e| HistoryError(format!("{}: {}", file.display(), e.0)))
    }

    /// Parses `history.json` text; the error names the field and what was expected.
    pub fn parse(text: &str) -> Result<Recorded, HistoryError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<u32>,
        }
        let version = serde_json::from_str::<Version>(text).map_err(|e| {
            HistoryError(format!("not a chaos history (expected a JSON object): {e}"))
        })?;
        if version.schema_version != Some(HISTORY_SCHEMA_VERSION) {
            return Err(HistoryError(format!(
                "invalid `schema_version`: expected {HISTORY_SCHEMA_VERSION}, found {} (histories \
                 written before `chaos check` existed hold only the operations and cannot be \
                 judged again)",
                version
                    .schema_version
                    .map_or("none".into(), |v| v.to_string())
            )));
        }
        serde_json::from_str(text).map_err(|e| HistoryError(format!("invalid history: {e}")))
    }

    /// Compact JSON (histories are re-read by programs; `jq` makes them readable).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}
