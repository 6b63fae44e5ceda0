//! The once-a-second tick of an attack: it closes each second of the recorder's per-second series
//! and reports the live figures (elapsed/remaining, ops/s, p99, errors, invariant violations) as an
//! [`Event::Status`], so the status line and `summary.json` always show the same numbers. How the
//! line looks (rewritten in place on a terminal, a plain line every few seconds in CI logs) is the
//! binary's business.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::progress::{Event, Progress, StatusLine};
use super::workload::Workload;

pub(crate) struct Status {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Status {
    /// `expected` is the whole attack's expected length (ramp + warm-up + duration), for
    /// "remaining" before the window opens.
    pub(crate) fn start(w: Arc<Workload>, expected: Duration, progress: Progress) -> Status {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut every = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => break,
                }
                let now = Instant::now();
                let tick = w.recorder.tick(now);
                let window = &w.recorder.window;
                let (phase, remaining) = match window.start() {
                    None => ("ramp", expected.saturating_sub(now - t0)),
                    Some(s) if now < s => (
                        "warm-up",
                        (s + window.length()).saturating_duration_since(now),
                    ),
                    Some(s) if now < s + window.length() => {
                        ("measuring", (s + window.length()) - now)
                    }
                    Some(_) => ("stopping", Duration::ZERO),
                };
                progress.emit(Event::Status(StatusLine {
                    elapsed_secs: (now - t0).as_secs(),
                    phase,
                    ops: tick.ops,
                    p99_us: tick.p99_us,
                    errors: tick.errors,
                    violations: w.invariants.counts().violations(),
                    remaining_secs: remaining.as_secs(),
                }));
            }
            progress.emit(Event::StatusEnd);
        });
        Status { stop, task }
    }

    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
