//! The live status line: elapsed/remaining, ops/s, p99, errors and invariant violations, once a
//! second. On a terminal it rewrites one line in place; otherwise (CI logs, pipes) it prints a
//! plain line every [`PLAIN_EVERY`] seconds so logs stay readable.
//!
//! The same 1 Hz tick also closes each second of the recorder's per-second series, so the status
//! line and `summary.json` always show the same numbers.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::verdict::fmt_us;
use crate::workload::Workload;

pub const PLAIN_EVERY: u64 = 5;

pub struct Status {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Status {
    /// `expected` is the whole run's expected length (ramp + warm-up + duration), for "remaining"
    /// before the window opens.
    pub fn start(w: Arc<Workload>, expected: Duration) -> Status {
        let (stop, mut stopped) = watch::channel(false);
        let tty = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut every = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => break,
                }
                n += 1;
                let now = Instant::now();
                let tick = w.recorder.tick(now);
                let violations = w.invariants.counts().violations();
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
                let line = format!(
                    "{:>5}s {phase:<9} {:>9} ops/s  p99 {:>8}  errors {:>6}  violations {:>4}  remaining {:>4}s",
                    (now - t0).as_secs(),
                    tick.ops,
                    fmt_us(tick.p99_us),
                    tick.errors,
                    violations,
                    remaining.as_secs(),
                );
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[2K{line}");
                    let _ = err.flush();
                } else if n.is_multiple_of(PLAIN_EVERY) {
                    let _ = writeln!(err, "{line}");
                }
            }
            if tty {
                let _ = writeln!(std::io::stderr());
            }
        });
        Status { stop, task }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
