//! The binary's half of the crate: flags and environment in ([`args`], [`values`], [`resolve`]),
//! text and exit codes out ([`render`]), process-wide signals ([`signals`]). Each subcommand is
//! resolved into its typed options, run on a fresh tokio runtime with a cancellation token that
//! Ctrl-C trips, and its result printed; its exit code is the process's.
//!
//! Exit codes: 0 every verdict held; 1 one failed (or the run broke); 2 usage or scenario error;
//! 3 Redis unreachable, authentication, TLS or permissions failed, or no server could be started;
//! 130 stopped by Ctrl-C ([`crate::error`] lists which error is which).

mod args;
mod render;
mod resolve;
mod signals;
pub(crate) mod values;
mod worker;

use std::future::Future;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::error::{Error, Result};
use args::{Cli, Command, CompareFormat, Format};

/// `main`, returning the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return render::clap_error(&e),
    };
    let env = std::env::var("REDIS_URL").ok();
    match dispatch(cli.command, &env) {
        Ok(code) => code,
        Err(e) => render::error(&e),
    }
}

fn dispatch(command: Command, env: &resolve::EnvUrl) -> Result<i32> {
    let progress = render::stderr_progress();
    match command {
        Command::Run(a) => {
            let (opts, dry_run) = resolve::run(&a, env, &worker::WorkerEnv::from_process())?;
            if dry_run {
                render::out(&format!(
                    "{}\n",
                    resolve::dry_run_json(&opts, a.target.tls_ca.as_deref())
                ));
                return Ok(0);
            }
            let outcome = with_runtime(Interrupt::Cancel, |cancel| {
                commands::run::run(&opts, &progress, cancel)
            })?;
            render::run_summary(&outcome.summary, &outcome.dir);
            Ok(outcome.exit_code())
        }
        Command::Sweep(a) => {
            let opts = resolve::sweep(&a, env)?;
            let outcome = with_runtime(Interrupt::Cancel, |cancel| {
                commands::sweep::run(&opts, &progress, cancel)
            })?;
            render::out(&crate::report::sweep::table(&outcome.report));
            render::results_line(&outcome.dir);
            Ok(outcome.exit_code())
        }
        Command::Capacity(a) => {
            let opts = resolve::capacity(&a, env)?;
            let outcome = with_runtime(Interrupt::Exit, |_| {
                commands::capacity::run(&opts, &progress)
            })?;
            let text = match a.format {
                Format::Json => serde_json::to_string_pretty(&outcome.report)
                    .map_err(|e| Error::Broken(format!("the report as JSON: {e}")))?,
                Format::Text => format!(
                    "# loadgen capacity: {} on {}\n\n{}",
                    opts.scenario.display_name(),
                    outcome.target,
                    crate::report::capacity::markdown(&outcome.report)
                ),
            };
            render::out(&format!("{text}\n"));
            Ok(outcome.exit_code())
        }
        Command::Evict(a) => {
            let opts = resolve::evict(&a, env)?;
            let outcome = with_runtime(Interrupt::Cancel, |cancel| {
                commands::evict::run(&opts, &progress, cancel)
            })?;
            render::out(&crate::report::evict::table(&outcome.report));
            render::results_line(&outcome.dir);
            Ok(outcome.exit_code())
        }
        Command::Compare(a) => {
            let opts = resolve::compare(&a)?;
            let c = commands::compare::compare(&opts)?;
            let text = match a.format {
                CompareFormat::Json => crate::report::compare::json(&c),
                CompareFormat::Md => crate::report::compare::markdown(&c),
            };
            render::out(&format!("{text}\n"));
            Ok(i32::from(c.regressions() > 0))
        }
        Command::Merge(a) => {
            let opts = resolve::merge(&a)?;
            let outcome = commands::merge::run(&opts, &progress)?;
            render::run_summary(&outcome.summary, &outcome.dir);
            Ok(outcome.exit_code())
        }
        Command::Doctor(a) => {
            let opts = resolve::doctor(&a, env)?;
            let report = with_runtime(Interrupt::Exit, |_| async {
                Ok(commands::doctor::run(&opts).await)
            })?;
            let text = match a.format {
                Format::Json => {
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::Broken(format!("the report as JSON: {e}")))?
                        + "\n"
                }
                Format::Text => report.render_text(),
            };
            render::out(&text);
            Ok(report.exit_code())
        }
    }
}

/// What Ctrl-C does to a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// Cancel it: it stops in order and writes what it measured (load commands).
    Cancel,
    /// The default: the process exits (commands with nothing to save).
    Exit,
}

/// Runs a command to completion on a fresh multi-threaded runtime, with goose's log routed and,
/// for load commands, Ctrl-C wired to the command's cancellation token. Users still winding down
/// after an attack must not keep the process alive, so the runtime is shut down with a bound.
fn with_runtime<T, F, Fut>(interrupt: Interrupt, command: F) -> Result<T>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Broken(format!("cannot start the async runtime: {e}")))?;
    let cancel = CancellationToken::new();
    if interrupt == Interrupt::Cancel {
        signals::cancel_on_ctrl_c(cancel.clone());
    }
    signals::route_goose_log();
    let result = runtime.block_on(command(cancel));
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}
