//! One module per subcommand. Each takes its options already resolved and typed (the CLI builds
//! them), reports progress through [`crate::engine::progress::Progress`], honours the cancellation
//! token it is given, and returns its result as a value with the exit code its verdict maps to.
//! None of them prints, reads the environment or imports another command: what two commands share
//! lives in the engine (a sweep and an eviction run both step attacks with
//! [`crate::engine::stepper`]; `run`, `sweep` and `evict` all add [`crate::engine::capacity`]'s
//! projection).
//!
//! | command | question it answers |
//! |---|---|
//! | [`run`] | does this deployment meet the scenario's SLOs and keep the stores' promises? |
//! | [`sweep`] | where is the knee: the highest offered load that still meets the SLO? |
//! | [`capacity`] | how many sessions, tokens and counters fit in a `maxmemory`? |
//! | [`evict`] | is this `maxmemory` + eviction policy safe for sessions and rate limits? |
//! | [`compare`] | did this change make us slower (the CI regression gate)? |
//! | [`doctor`] | can we reach it, and is it configured for sessions and rate limits? |
//! | [`merge`] | what did N scale-out workers measure together, exactly? |

pub(crate) mod capacity;
pub(crate) mod compare;
pub(crate) mod doctor;
pub(crate) mod evict;
pub(crate) mod merge;
pub(crate) mod run;
pub(crate) mod sweep;

use std::path::PathBuf;

use crate::engine::progress::{Event, Progress};
use crate::engine::results;
use crate::engine::target::TargetSpec;
use crate::error::{EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, Result};
use crate::report::summary::ScenarioInfo;
use crate::scenario::Scenario;

/// What every load command starts from, resolved at the edge: the scenario (overrides applied),
/// the file it came from, the Redis to use, and where the results directory goes.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) file: PathBuf,
    pub(crate) scenario: Scenario,
    pub(crate) target: TargetSpec,
    /// Directory under which the results directory is created.
    pub(crate) out: PathBuf,
}

/// A started job: its results directory and when it started (RFC 3339, UTC).
pub(crate) struct Started {
    pub(crate) dir: PathBuf,
    pub(crate) utc: String,
}

impl Job {
    /// Creates the results directory `<out>/<prefix><scenario>-<UTC time>` (before any load, so an
    /// unwritable `--out` fails at once) and announces the command.
    pub(crate) fn start(
        &self,
        command: &'static str,
        prefix: &str,
        progress: &Progress,
    ) -> Result<Started> {
        let (stamp, utc) = results::utc_stamp();
        let name = format!("{prefix}{}", self.scenario.display_name());
        let dir = results::create_dir(&self.out, &name, &stamp)?;
        progress.emit(Event::Started {
            command,
            scenario: self.scenario.display_name().to_string(),
            file: self.file.display().to_string(),
        });
        Ok(Started { dir, utc })
    }

    /// The scenario as the results name it.
    pub(crate) fn info(&self) -> ScenarioInfo {
        ScenarioInfo::of(&self.scenario, &self.file)
    }
}

/// The exit code of a load command's verdict: 130 interrupted, 0 passed, 1 failed.
pub(crate) fn verdict_exit(interrupted: bool, passed: bool) -> i32 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if passed {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}
