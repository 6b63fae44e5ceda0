//! What a command is doing, as events: the library never prints.
//!
//! Commands and the engine emit [`Event`]s through a [`Progress`] handle; the binary decides how
//! they look (the live status line on a terminal, a plain line every few seconds in CI logs) and
//! where they go (stderr). Tests and other callers collect them or drop them. Final
//! results are not events: commands return them as values.

use std::sync::Arc;

use crate::report::evict::PolicyResult;
use crate::report::summary::Calibration;
use crate::report::sweep::StepRow;
use crate::scenario::Load;

/// One thing worth telling the operator while a command runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub(crate) enum Event {
    /// A command started on a scenario file.
    Started {
        command: &'static str,
        scenario: String,
        file: String,
    },
    /// A throwaway redis-server was started on this loopback port with these settings.
    Throwaway { port: u16, settings: Vec<String> },
    /// Connected; `url` is redacted.
    Target { url: String, version: String },
    /// The raw PING rate of client + server + machine, before the load.
    Calibrated(Calibration),
    /// The keyspace was written before the load.
    Seeded {
        sessions: u64,
        accounts: u64,
        seconds: f64,
        refused_oom: u64,
        other_errors: u64,
    },
    /// The measured attack starts.
    LoadStarted(Load),
    /// Once a second during an attack.
    Status(StatusLine),
    /// The attack ended: the status line is finished.
    StatusEnd,
    /// A sweep step starts (`offered` is already in words: `2000 ops/s`).
    StepStarted {
        index: usize,
        phase: &'static str,
        offered: String,
    },
    /// A sweep step was judged.
    StepDone(StepRow),
    /// An eviction policy's run starts.
    PolicyStarted {
        policy: String,
        index: usize,
        of: usize,
    },
    /// An eviction policy was judged.
    PolicyDone(PolicyResult),
    /// Key sizes are being measured.
    Measuring { samples: usize, url: String },
    /// Stopped by Ctrl-C before the load started: nothing measured.
    InterruptedBeforeLoad,
    /// Worth knowing, not wrong.
    Note(String),
    /// Something went wrong but the command goes on.
    Warning(String),
}

/// The live status line's figures for one second.
#[derive(Clone, Debug)]
pub(crate) struct StatusLine {
    pub(crate) elapsed_secs: u64,
    /// `ramp`, `warm-up`, `measuring` or `stopping`.
    pub(crate) phase: &'static str,
    pub(crate) ops: u64,
    pub(crate) p99_us: u64,
    pub(crate) errors: u64,
    pub(crate) violations: u64,
    pub(crate) remaining_secs: u64,
}

/// Where events go. Cheap to clone; every clone reaches the same sink.
#[derive(Clone)]
pub(crate) struct Progress(Arc<dyn Fn(Event) + Send + Sync>);

impl Progress {
    pub(crate) fn new(sink: impl Fn(Event) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(sink))
    }

    pub(crate) fn emit(&self, e: Event) {
        (self.0)(e)
    }

    pub(crate) fn note(&self, text: impl Into<String>) {
        self.emit(Event::Note(text.into()))
    }

    pub(crate) fn warn(&self, text: impl Into<String>) {
        self.emit(Event::Warning(text.into()))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}
