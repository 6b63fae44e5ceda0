//! Running goose: one measured attack on a [`Workload`], with the live status line, goose's own
//! log routed to stderr, and the settings goose takes.
//!
//! `loadgen run` attacks once, a sweep step or an eviction run once per step on a keyspace that
//! outlives the attack ([`crate::sweep::step`]); both go through [`measured`], so the ramp, the
//! status line's expected length, goose's run time and the measured window are computed in one
//! place.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::scenario::Load;
use crate::status::Status;
use crate::workload::Workload;

/// Runs one attack of `load` on `w` with the live status line (goose's HTML report goes to
/// `report_html`); returns how many seconds of the measured window it covered. A goose error is
/// printed as a warning: what was measured until then still counts.
pub async fn measured(w: &Arc<Workload>, load: &Load, host: String, report_html: &Path) -> f64 {
    let ramp = load.ramp_per_sec();
    let ramp_time = Duration::from_secs_f64(load.users.saturating_sub(1) as f64 / ramp);
    let status = Status::start(w.clone(), ramp_time + load.warmup.0 + load.duration.0);
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
    let ended = Instant::now();
    status.finish().await;
    if let Err(e) = goose {
        eprintln!("warning: {e}");
    }
    w.recorder.window.seconds_until(ended)
}

/// How goose should run the attack.
pub struct AttackSettings {
    /// Absolute URL goose requires; never contains credentials.
    pub host: String,
    pub users: u32,
    pub ramp: f64,
    /// Seconds goose runs after all users started (warm-up + duration, rounded up, + 1 s).
    pub run_time_secs: u64,
    pub report_html: String,
}

/// Goose's log lines at warning level and above, on stderr; its per-user chatter dropped.
///
/// Goose installs a logger that prints to stdout unless one is already installed; ours is
/// installed first so stdout stays the results summary.
struct GooseLog;

impl log::Log for GooseLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("goose {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

fn route_goose_log() {
    static LOG: GooseLog = GooseLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Runs the goose attack to completion (or until Ctrl-C trips goose's killswitch).
pub async fn attack(w: Arc<Workload>, s: AttackSettings) -> Result<GooseMetrics, String> {
    route_goose_log();
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
