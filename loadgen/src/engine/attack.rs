//! Running goose: one measured attack on a [`Workload`], with the status tick alongside and the
//! settings goose takes.
//!
//! `loadgen run` attacks once; a sweep step or an eviction run attacks once per step on a keyspace
//! that outlives the attack ([`super::stepper`]). Both go through [`measured`], so the ramp, the
//! status tick's expected length, goose's run time and the measured window are computed in one
//! place.
//!
//! Cancellation: goose has a process-wide killswitch and no cancellation handle, so a task watches
//! the command's [`CancellationToken`] and trips the killswitch when it fires; goose then ends the
//! attack between transactions and what was measured until then counts. Goose's own logging goes
//! through the `log` facade; the binary decides where it goes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use super::status::Status;
use super::workload::Workload;
use crate::scenario::Load;

/// Runs one attack of `load` on `w` with the status tick (goose's HTML report goes to
/// `report_html`); returns how many seconds of the measured window it covered, and goose's error
/// if it returned one.
pub(crate) async fn measured(
    w: &Arc<Workload>,
    load: &Load,
    host: String,
    report_html: &Path,
    progress: &Progress,
) -> Attacked {
    let ramp = load.ramp_per_sec();
    let ramp_time = Duration::from_secs_f64(load.users.saturating_sub(1) as f64 / ramp);
    let status = Status::start(
        w.clone(),
        ramp_time + load.warmup.0 + load.duration.0,
        progress.clone(),
    );
    let killswitch = trip_on_cancel(w.cancel.clone());
    let goose = attack(
        w.clone(),
        AttackSettings {
            host,
            users: load.users,
            ramp,
            run_time_secs: (load.warmup.0 + load.duration.0).as_secs_f64().ceil() as u64 + 1,
            report_html: report_html.to_string_lossy().into_owned(),
        },
    )
    .await;
    killswitch.abort();
    let ended = Instant::now();
    status.finish().await;
    Attacked {
        seconds: w.recorder.window.seconds_until(ended),
        goose_error: goose.err(),
    }
}

/// How an attack ended: the measured window's length, and goose's error if it returned one. An
/// error after operations ran (its HTML report could not be written, say) is a warning; before any
/// ran, the run measured nothing and the caller stops.
pub(crate) struct Attacked {
    pub(crate) seconds: f64,
    pub(crate) goose_error: Option<String>,
}

/// Trips goose's killswitch when `cancel` fires (until the returned task is aborted).
fn trip_on_cancel(cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        cancel.cancelled().await;
        goose::trigger_killswitch("Ctrl-C");
    })
}

/// How goose should run the attack.
pub(crate) struct AttackSettings {
    /// Absolute URL goose requires; never contains credentials.
    pub(crate) host: String,
    pub(crate) users: u32,
    pub(crate) ramp: f64,
    /// Seconds goose runs after all users started (warm-up + duration, rounded up, + 1 s).
    pub(crate) run_time_secs: u64,
    pub(crate) report_html: String,
}

/// Runs the goose attack to completion (or until the killswitch trips).
pub(crate) async fn attack(w: Arc<Workload>, s: AttackSettings) -> Result<GooseMetrics, String> {
    let mut config = GooseConfiguration::default();
    config.host = Some(s.host);
    config.users = Some(s.users as usize);
    config.increase_rate = Some(format!("{}", s.ramp));
    config.run_time = Some(s.run_time_secs.to_string());
    config.report_file = vec![s.report_html];
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    // One transaction that does everything: per-transaction and per-scenario tables would only
    // repeat the request table.
    config.no_transaction_metrics = true;
    config.no_scenario_metrics = true;
    let step: TransactionFunction = Arc::new(move |user| Box::pin(w.clone().step(user)));
    let scenario = scenario!("redis").register_transaction(Transaction::new(step).set_name("op"));
    GooseAttack::initialize_with_config(config)
        .map_err(|e| format!("goose: {e}"))?
        .register_scenario(scenario)
        .execute()
        .await
        .map_err(|e| format!("goose: {e}"))
}
