//! Everything loadgen prints. Progress events go to stderr (the live status line rewritten in place
//! on a terminal, a plain line every [`PLAIN_EVERY`] seconds otherwise, so CI logs stay readable);
//! results go to stdout, rendered by [`crate::report`]; errors go to stderr as `error: ...`. This
//! is the only module of the crate that prints.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::progress::{Event, Progress, StatusLine};
use crate::error::{EXIT_INTERRUPTED, Error};
use crate::report::fmt;
use crate::report::run::console;
use crate::report::summary::Summary;
use crate::report::sweep::row_line;

/// Without a terminal, one status line every this many seconds.
pub(crate) const PLAIN_EVERY: u64 = 5;

/// A [`Progress`] that renders every event on stderr.
pub(crate) fn stderr_progress() -> Progress {
    let tty = std::io::stderr().is_terminal();
    let ticks = AtomicU64::new(0);
    Progress::new(move |e| {
        let mut err = std::io::stderr().lock();
        match e {
            Event::Status(s) => {
                let n = ticks.fetch_add(1, Ordering::Relaxed) + 1;
                if tty {
                    let _ = write!(err, "\r\x1b[2K{}", status_line(&s));
                    let _ = err.flush();
                } else if n.is_multiple_of(PLAIN_EVERY) {
                    let _ = writeln!(err, "{}", status_line(&s));
                }
            }
            Event::StatusEnd => {
                ticks.store(0, Ordering::Relaxed);
                if tty {
                    let _ = writeln!(err);
                }
            }
            other => {
                if let Some(line) = line(&other) {
                    let _ = writeln!(err, "{line}");
                }
            }
        }
    })
}

fn status_line(s: &StatusLine) -> String {
    format!(
        "{:>5}s {:<9} {:>9} ops/s  p99 {:>8}  errors {:>6}  violations {:>4}  remaining {:>4}s",
        s.elapsed_secs,
        s.phase,
        s.ops,
        fmt::us(s.p99_us),
        s.errors,
        s.violations,
        s.remaining_secs,
    )
}

/// The line an event prints, if any.
fn line(e: &Event) -> Option<String> {
    Some(match e {
        Event::Started {
            command,
            scenario,
            file,
        } => format!(
            "loadgen {} {command}: scenario {scenario} ({file})",
            env!("CARGO_PKG_VERSION")
        ),
        Event::Throwaway { port, settings } => format!(
            "no REDIS_URL or --redis-url: started a throwaway redis-server at 127.0.0.1:{port}{}; it is removed when loadgen exits",
            if settings.is_empty() {
                String::new()
            } else {
                format!(" ({})", settings.join(", "))
            }
        ),
        Event::Target { url, version } => format!("target: {url} (redis {version})"),
        Event::Calibrated(c) => format!(
            "calibration: {:.0} {}/s at concurrency {}",
            c.ops_per_sec, c.command, c.concurrency
        ),
        Event::Seeded {
            sessions,
            accounts,
            seconds,
            refused_oom,
            other_errors,
        } => {
            let mut l =
                format!("seeded {sessions} sessions for {accounts} accounts in {seconds:.1} s");
            if refused_oom + other_errors > 0 {
                l.push_str(&format!(
                    " ({refused_oom} sign-ins refused with OOM, {other_errors} other errors)"
                ));
            }
            l
        }
        Event::LoadStarted(l) => format!(
            "running: {} users (ramp {}/s) on {} connection{}, warm-up {}, measuring {}, {}",
            l.users,
            l.ramp_per_sec(),
            l.connections(),
            if l.connections() == 1 { "" } else { "s" },
            l.warmup,
            l.duration,
            match l.rate {
                Some(r) => format!("open model at {r} ops/s"),
                None => "closed model".into(),
            }
        ),
        Event::StepStarted {
            index,
            phase,
            offered,
        } => format!("step {index} ({phase}): offering {offered}"),
        Event::StepDone(row) => row_line(row),
        Event::PolicyStarted { policy, index, of } => format!("policy {policy} ({index}/{of})"),
        Event::PolicyDone(r) => crate::report::evict::line(r),
        Event::Measuring { samples, url } => {
            format!("measuring {samples} samples per kind on {url}")
        }
        Event::InterruptedBeforeLoad => {
            "interrupted before the load started: nothing measured".into()
        }
        Event::Note(n) => format!("note: {}", fmt::clip(n, fmt::MAX_LINE)),
        Event::Warning(w) => format!("warning: {}", fmt::clip(w, fmt::MAX_LINE)),
        Event::Status(_) | Event::StatusEnd => return None,
    })
}

/// `loadgen run`'s console summary and where its results are (stdout).
pub(crate) fn run_summary(summary: &Summary, dir: &std::path::Path) {
    print!("{}", console(summary));
    results_line(dir);
}

/// Text for stdout, as is.
pub(crate) fn out(text: &str) {
    print!("{text}");
}

/// The last line of every command that writes a results directory (scripts read it).
pub(crate) fn results_line(dir: &std::path::Path) {
    println!("results: {}", dir.display());
}

/// An error on stderr, one `error:` per line, and its exit code. An interruption was already
/// announced by the Ctrl-C handler.
pub(crate) fn error(e: &Error) -> i32 {
    let code = e.exit_code();
    if code != EXIT_INTERRUPTED {
        for line in e.to_string().lines() {
            eprintln!("error: {}", fmt::clip(line, fmt::MAX_LINE));
        }
    }
    code
}

/// clap's own message for a bad command line (or its help), and the exit code.
pub(crate) fn clap_error(e: &clap::Error) -> i32 {
    let _ = e.print();
    if e.use_stderr() { 2 } else { 0 }
}

/// A goose log record (warnings and above), on stderr.
pub(crate) fn goose_log(level: log::Level, message: &std::fmt::Arguments<'_>) {
    eprintln!("goose {}: {message}", level.as_str().to_lowercase());
}

/// What the Ctrl-C handler says.
pub(crate) fn interrupt_notice(second: bool) {
    if second {
        eprintln!("\nsecond Ctrl-C: exiting now");
    } else {
        eprintln!(
            "\nCtrl-C: stopping the run and writing what was measured (Ctrl-C again to exit now)"
        );
    }
}
