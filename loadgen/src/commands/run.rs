//! `loadgen run`: one scenario, start to verdict.
//!
//! 1. create the results directory (fail before any load if it cannot be written: exit 2);
//! 2. open the target (exit 3 if it cannot be used) and note its `INFO`;
//! 3. calibrate (raw `PING` rate), then seed the keyspace: every account's sessions and token;
//! 4. run the goose attack with the status tick and the `INFO` sampler alongside;
//! 5. collect `INFO` again, `MEMORY USAGE` samples and the memory projection, judge, write the
//!    results, and return the summary.
//!
//! Cancellation (Ctrl-C): before the attack it skips it (nothing measured: [`Error::Interrupted`]);
//! during the attack goose ends it and the results so far are written (exit 130). The throwaway
//! server is removed on every path.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Job, Started, verdict_exit};
use crate::engine::progress::{Event, Progress};
use crate::engine::seed::{self, OnFailure};
use crate::engine::stepper::{StepOutcome, Stepper};
use crate::engine::target::{self, Target};
use crate::engine::{capacity, judge, redis_admin, results, sampler};
use crate::error::{Error, Result};
use crate::report::hlog;
use crate::report::run::write_all;
use crate::report::summary::{RedisReport, RunInfo, SCHEMA_VERSION, SloResult, Summary, Verdict};
use crate::report::workers::WorkerInfo;

/// Everything `run` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct RunOptions {
    pub(crate) job: Job,
    /// Added inside every operation's measured service time (a controlled slowdown).
    pub(crate) inject_delay: Option<Duration>,
    /// A scale-out worker's shard (the scenario in `job` is already its share).
    pub(crate) worker: Option<WorkerInfo>,
    /// When the load begins (after seeding): the shared start of a scale-out run.
    pub(crate) start_at: Option<SystemTime>,
}

/// A finished run: its summary (also written as `summary.json`) and where its files are.
pub(crate) struct RunOutcome {
    pub(crate) summary: Summary,
    pub(crate) dir: PathBuf,
}

impl RunOutcome {
    /// 0 every SLO and invariant held, 1 one failed, 130 interrupted.
    pub(crate) fn exit_code(&self) -> i32 {
        verdict_exit(self.summary.run.interrupted, self.summary.slo.passed)
    }
}

/// Runs the scenario and writes its results.
pub(crate) async fn run(
    opts: &RunOptions,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<RunOutcome> {
    let s = &opts.job.scenario;
    let Started {
        dir,
        utc: started_utc,
    } = opts
        .job
        .start("run", &worker_prefix(opts.worker.as_ref()), progress)?;
    let target = match target::open(&opts.job.target, &s.redis, progress).await {
        Ok(t) => t,
        Err(e) => {
            results::remove_if_empty(&dir);
            return Err(e);
        }
    };
    let result = measure(opts, &target, &dir, started_utc, progress, cancel).await;
    if result.is_err() {
        results::remove_if_empty(&dir);
    }
    target.close().await;
    result
}

async fn measure(
    opts: &RunOptions,
    target: &Target,
    dir: &Path,
    started_utc: String,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<RunOutcome> {
    let s = &opts.job.scenario;
    let redis = &target.redis;
    let before = redis_admin::info(redis, "all")
        .await
        .map_err(|e| Error::redis(format!("INFO on {}", target.url), "INFO", e))?;
    let redis_version = before.get("redis_version").unwrap_or("unknown").to_string();
    progress.emit(Event::Target {
        url: target.url.to_string(),
        version: redis_version.clone(),
    });

    let calibration = target::calibrate(redis, Duration::from_secs(1), 200_000).await;
    progress.emit(Event::Calibrated(calibration.clone()));

    let mut stepper = Stepper::new(
        target,
        s,
        opts.inject_delay,
        cancel.clone(),
        progress.clone(),
    )
    .await?;
    let seeded = seed::seed(stepper.workload(), s.seed, OnFailure::Stop, progress)
        .await
        .map_err(|e| Error::seeding(&target.url, e))?;
    if cancel.is_cancelled() {
        progress.emit(Event::InterruptedBeforeLoad);
        return Err(Error::Interrupted);
    }

    let late_s = match opts.start_at {
        Some(at) => Some(wait_until(at, &cancel).await?),
        None => None,
    };
    let l = &s.load;
    progress.emit(Event::LoadStarted(l.clone()));
    let attack_began = SystemTime::now();
    let step = stepper.step(l, &dir.join("goose-report.html")).await?;
    let bytes_per_key = redis_admin::memory_per_key(redis, &s.keyspace.prefix, 32).await;
    let nodes = redis_admin::node_reports(redis).await;
    // Skipped after Ctrl-C: the operator wants out, not more writes. Skipped by a scale-out
    // worker: the other workers write at the same time, so no clean sample is possible, and the
    // merge does not combine projections anyway.
    let memory_projection = if cancel.is_cancelled() {
        None
    } else if opts.worker.as_ref().is_some_and(|w| w.count > 1) {
        progress.note(
            "memory projection: not measured by a scale-out worker (the other workers write at \
             the same time); run `loadgen capacity` on its own for it",
        );
        None
    } else {
        capacity::for_results(redis, s, progress).await?
    };
    let StepOutcome {
        measured,
        seconds,
        invariants,
        ops,
        after,
        series,
        bottleneck,
        availability,
        clock_offset_ms,
        window_from_s,
        ..
    } = step;
    let verdicts = judge::judge(&s.slo, &measured, &invariants, seconds);
    let passed = verdicts.iter().all(Verdict::holds);
    // From before the seeding: the run's whole footprint on the server, node by node.
    let (deltas, deltas_by_node) = sampler::deltas(&before, &after, &series);
    let same_server = before.get("run_id") == after.get("run_id");

    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        scenario: opts.job.info(),
        config: s.clone(),
        target: target.info(),
        run: RunInfo {
            started_utc,
            results_dir: dir.display().to_string(),
            model: if l.rate.is_some() { "open" } else { "closed" }.into(),
            target_rate: l.rate,
            measured_seconds: (seconds * 1000.0).round() / 1000.0,
            measured_from_s: (window_from_s * 10.0).round() / 10.0,
            interrupted: cancel.is_cancelled(),
            inject_delay_us: opts.inject_delay.map_or(0, |d| d.as_micros() as u64),
            seeded_sessions: seeded.sessions as usize,
            redis_clock_offset_ms: clock_offset_ms,
        },
        ops,
        invariants,
        slo: SloResult { passed, verdicts },
        bottleneck,
        availability,
        redis: RedisReport {
            version: redis_version.clone(),
            before: sampler::selected(&before),
            after: sampler::selected(&after),
            deltas,
            deltas_by_node,
            commandstats: if same_server {
                after.commandstats_since(&before)
            } else {
                Default::default()
            },
            bytes_per_key,
            nodes,
            series,
        },
        series: measured.series_report(),
        errors: measured.errors(),
        environment: results::environment(redis_version, Some(calibration)),
        memory_projection,
        worker: opts.worker.clone().map(|w| WorkerInfo { late_s, ..w }),
        workers: None,
        merge: None,
    };
    write_all(dir, &summary, &measured.histograms(), &measured.series)
        .and_then(|()| hlog::write(&dir.join("latency.hlog"), attack_began, measured.hlog()))
        .map_err(|e| Error::write(dir, e))?;
    Ok(RunOutcome {
        summary,
        dir: dir.to_path_buf(),
    })
}

/// A worker's results directory says which shard it holds (`w2of8-<scenario>-<UTC>`), so N
/// workers writing under one `--out` are told apart at a glance.
fn worker_prefix(w: Option<&WorkerInfo>) -> String {
    w.map_or_else(String::new, |w| format!("w{}of{}-", w.index, w.count))
}

/// Sleeps until `at` (the shared start of a scale-out run); returns how many seconds late the
/// load begins (0 when on time: seeding finished first). Ctrl-C ends the wait.
async fn wait_until(at: SystemTime, cancel: &CancellationToken) -> Result<f64> {
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => {
            tokio::select! {
                () = tokio::time::sleep(ahead) => Ok(0.0),
                () = cancel.cancelled() => Err(Error::Interrupted),
            }
        }
        Err(late) => Ok((late.duration().as_secs_f64() * 1000.0).round() / 1000.0),
    }
}
