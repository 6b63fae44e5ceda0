//! One experiment from start to verdict: db → generator + nemesis + sentinel watch + TTL prober →
//! settle and final reads → checker → report.
//!
//! Cleanup is structured so that nothing survives any way out of here:
//! - the normal path tears the topology down explicitly (`Db::teardown`);
//! - an error or a panic drops the `Db`, whose nodes kill themselves on drop (processes) or are
//!   removed by testcontainers' drop; and the caller ([`run_guarded`]) additionally force-removes
//!   every container labelled with this run's id;
//! - Ctrl-C: [`run_guarded`] aborts the experiment task (dropping everything above) and then sweeps.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::checker::{Evidence, judge};
use crate::client::Client;
use crate::db::{BackendKind, Db, DbError, docker, random_hex};
use crate::events::SentinelWatch;
use crate::experiment::Experiment;
use crate::generator::Generator;
use crate::history::{Clock, History};
use crate::nemesis;
use crate::observe::final_state;
use crate::report::{Report, SCHEMA_VERSION, results_dir};
use crate::ttl::TtlProber;

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
    #[error("{0}")]
    Failed(String),
    #[error("interrupted (Ctrl-C); every node of the run was removed")]
    Interrupted,
}

impl From<DbError> for RunError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Environment(m) => RunError::Environment(m),
            DbError::Failed(m) => RunError::Failed(m),
        }
    }
}

/// A spawned task that must not outlive the experiment that spawned it: it holds the `Db`, and an
/// aborted experiment (Ctrl-C) must release the nodes, not keep injecting faults.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The report and where it was written.
pub struct Outcome {
    pub report: Report,
    pub dir: PathBuf,
}

/// Runs `exp` in its own task, so that a panic or Ctrl-C still leads to cleanup.
pub async fn run_guarded(exp: Experiment, opts: RunOptions) -> Result<Outcome, RunError> {
    let run_id = random_hex(4);
    if opts.backend == BackendKind::Docker {
        docker::sweep_orphans().await;
    }
    let task = tokio::spawn(run(exp, opts.clone(), run_id.clone()));
    let abort = task.abort_handle();
    let result = tokio::select! {
        r = task => r.unwrap_or_else(|e| Err(RunError::Failed(format!("the experiment panicked: {e}")))),
        _ = tokio::signal::ctrl_c() => {
            abort.abort();
            Err(RunError::Interrupted)
        }
    };
    if opts.backend == BackendKind::Docker {
        docker::sweep_run(&run_id).await;
    }
    result
}

async fn run(exp: Experiment, opts: RunOptions, run_id: String) -> Result<Outcome, RunError> {
    let wall = Instant::now();
    let started = time::OffsetDateTime::now_utc();
    let db = Arc::new(Db::start(&exp.topology, opts.backend, &opts.image, &run_id).await?);
    let result = experiment(&exp, &db, &opts, wall, started).await;
    match Arc::try_unwrap(db) {
        Ok(db) => db.teardown().await,
        Err(db) => drop(db),
    }
    let (report, ops) = result?;
    let dir = results_dir(&opts.results_root, &exp.name, started);
    report
        .write(&dir, &ops)
        .map_err(|e| RunError::Failed(format!("writing {}: {e}", dir.display())))?;
    Ok(Outcome { report, dir })
}

async fn experiment(
    exp: &Experiment,
    db: &Arc<Db>,
    opts: &RunOptions,
    wall: Instant,
    started: time::OffsetDateTime,
) -> Result<(Report, Vec<crate::history::Op>), RunError> {
    let url = db.url();
    let mut clients = Vec::new();
    for _ in 0..exp.workload.clients {
        clients.push(
            Client::connect(&url, &exp.workload)
                .await
                .map_err(|e| RunError::Failed(format!("client cannot connect: {e}")))?,
        );
    }
    let prober_client = Client::connect(&url, &exp.workload)
        .await
        .map_err(|e| RunError::Failed(format!("TTL prober cannot connect: {e}")))?;
    let initial_primary_port = db.nodes[0].port;

    let history = Arc::new(History::default());
    let clock = Clock::start();
    let sentinels = db.sentinels().map(|n| (n.name.clone(), n.port)).collect();
    let watch = SentinelWatch::start(sentinels, clock, history.clone()).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let prober = TtlProber::start(
        prober_client.redis.clone(),
        exp.workload.short_session_ttl,
        exp.workload.ttl_tolerance,
        clock,
        history.clone(),
        rx,
    );
    let generator = Generator::start(clients, exp.workload.interval, clock, history.clone(), tx);
    let mut nemesis = AbortOnDrop(tokio::spawn(nemesis::run(
        db.clone(),
        exp.faults.clone(),
        clock,
        history.clone(),
    )));
    tokio::time::sleep_until(clock.instant_at(exp.duration.as_secs_f64() * 1000.0).into()).await;
    generator.stop().await;
    (&mut nemesis.0)
        .await
        .map_err(|e| RunError::Failed(format!("the nemesis failed: {e}")))?;
    let probes = prober.finish().await;
    let final_state = final_state(db, &exp.workload, clock, &history).await;
    // A few more ms of Sentinel events (e.g. +convert-to-slave right after the last restart).
    drop(watch);

    let ops = history.ops();
    let sessions = history.sessions();
    let faults = history.faults();
    let sentinel_events = history.sentinel_events();
    let verdict = judge(&Evidence {
        experiment: exp,
        ops: &ops,
        sessions: &sessions,
        faults: &faults,
        sentinel_events: &sentinel_events,
        probes: &probes,
        final_state: &final_state,
        initial_primary_port,
    });
    let fmt = time::format_description::well_known::Rfc3339;
    let report = Report {
        schema_version: SCHEMA_VERSION,
        experiment: exp.clone(),
        backend: opts.backend,
        image: (opts.backend == BackendKind::Docker).then(|| opts.image.clone()),
        started_utc: started.format(&fmt).unwrap_or_default(),
        wall_time_s: wall.elapsed().as_secs_f64(),
        url: cache::RedisUrl::parse(&url).map_or_else(|_| "(unparsable)".into(), |u| u.to_string()),
        nodes: db.nodes.clone(),
        faults,
        sentinel_events,
        final_state,
        verdict,
        total_ops: ops.len(),
    };
    Ok((report, ops))
}
