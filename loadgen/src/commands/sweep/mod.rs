//! `loadgen sweep`: find the knee — the highest offered load that still meets the SLO.
//!
//! ```text
//! loadgen sweep <scenario.toml> --slo 'p99<2ms' [--slo ...] [--by rate|users] [--start N]
//!               [--step x1.5|+N|P%] [--max-steps 10] [--refine 2] [--min-gain 3%]
//!               [--step-duration 5s] [--redis-url URL] [--out DIR] [--set key=value ...]
//! ```
//!
//! One process, one keyspace (seeded once), one goose attack per step
//! ([`crate::engine::stepper::Stepper`]). Each
//! step offers more load — an open-model target rate (`--by rate`, the default: latency is
//! measured from each operation's intended start, so queueing behind a saturated Redis shows) or
//! more closed-model users (`--by users`) — and is judged against the SLO and the invariants. The
//! sweep stops when a step breaks the SLO, when throughput stops growing (less than `--min-gain`
//! over the previous step, and less than half of the offered load's growth, so that small
//! additive steps are not mistaken for it: the system is saturated and more offered load only
//! queues), or after `--max-steps`. Between the last passing and the first failing rate it then
//! bisects `--refine` times, so the knee is known to better than one step.
//!
//! Results: `results/sweep-<scenario>-<UTC>/` with `sweep.json` (schema-versioned: every step,
//! the knee, why it stopped, the memory projection), `sweep.md` and `sweep.svg`
//! ([`crate::report::sweep`]).
//! Exit 0 when some step met the SLO, 1 when none did, 2 usage, 3 target, 130 Ctrl-C.

mod plan;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

pub(crate) use plan::{Plan, StepRule, SweepFlags};

use crate::commands::{Job, Started, verdict_exit};
use crate::engine::progress::{Event, Progress};
use crate::engine::seed::{self, OnFailure};
use crate::engine::stepper::Stepper;
use crate::engine::target::{self, Target};
use crate::engine::{capacity, judge, redis_admin, results};
use crate::error::{Error, Result};
use crate::report::summary::Limit;
use crate::report::sweep::{Knee, NoKnee, SCHEMA_VERSION, StepRow, SweepReport, write_all};
use crate::scenario::{Slo, TimeKind};

/// Everything `sweep` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct SweepOptions {
    pub(crate) job: Job,
    pub(crate) plan: Plan,
}

/// A finished sweep: its report (also written as `sweep.json`) and where its files are.
pub(crate) struct SweepOutcome {
    pub(crate) report: SweepReport,
    pub(crate) dir: PathBuf,
}

impl SweepOutcome {
    /// 0 a knee was found, 1 none, 130 interrupted.
    pub(crate) fn exit_code(&self) -> i32 {
        verdict_exit(self.report.interrupted, self.report.knee.is_some())
    }
}

fn slo_lines(slo: &Slo) -> Vec<String> {
    let mut out: Vec<String> = slo
        .latency
        .iter()
        .map(|l| {
            let kind = match l.time {
                TimeKind::Response => "response",
                TimeKind::Service => "service",
            };
            format!("{} p{} {kind} time ≤ {}", l.op, l.percentile, l.max)
        })
        .collect();
    if let Some(e) = slo.max_error_rate {
        out.push(format!("error rate ≤ {}%", e * 100.0));
    }
    out
}

/// `loadgen sweep`.
pub(crate) async fn run(
    opts: &SweepOptions,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<SweepOutcome> {
    let s = &opts.job.scenario;
    let Started {
        dir,
        utc: started_utc,
    } = opts.job.start("sweep", "sweep-", progress)?;
    let target = match target::open(&opts.job.target, &s.redis, progress).await {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let result = sweep(opts, &target, &dir, started_utc, progress, cancel).await;
    target.close().await;
    result
}

/// What the stepping found.
struct Stepped {
    rows: Vec<StepRow>,
    stopped: String,
    /// The knee, when an SLO break was bracketed by a passing step and the generator had headroom
    /// at both; else why there is none.
    knee: Result<Knee, NoKnee>,
}

async fn sweep(
    opts: &SweepOptions,
    target: &Target,
    dir: &Path,
    started_utc: String,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<SweepOutcome> {
    let (s, plan) = (&opts.job.scenario, &opts.plan);
    let info = redis_admin::info(&target.redis, "server")
        .await
        .map_err(|e| Error::redis(format!("INFO on {}", target.url), "INFO", e))?;
    let version = info.get("redis_version").unwrap_or("unknown").to_string();
    progress.emit(Event::Target {
        url: target.url.to_string(),
        version: version.clone(),
    });
    let mut stepper = Stepper::new(target, s, None, cancel.clone(), progress.clone()).await?;
    seed::seed(stepper.workload(), s.seed, OnFailure::Stop, progress)
        .await
        .map_err(|e| Error::seeding(&target.url, e))?;
    progress.note(format!(
        "stepping {} from {}",
        if plan.by_users { "users" } else { "ops/s" },
        plan.start
    ));
    let goose_dir = results::create_subdir(dir, "goose")?;
    let Stepped {
        rows,
        stopped,
        knee,
    } = step_to_the_knee(&mut stepper, plan, &goose_dir, progress, &cancel).await?;
    let (knee, no_knee) = match knee {
        Ok(k) => (Some(k), None),
        Err(n) => (None, Some(n)),
    };
    let memory_projection = if cancel.is_cancelled() {
        None
    } else {
        capacity::for_results(&target.redis, s, progress).await?
    };
    let report = SweepReport {
        schema_version: SCHEMA_VERSION,
        scenario: opts.job.info(),
        target: target.info(),
        started_utc,
        results_dir: dir.display().to_string(),
        by: if plan.by_users { "users" } else { "rate" }.into(),
        slo: slo_lines(&plan.slo),
        step_rule: plan.rule.describe(),
        min_gain: plan.min_gain,
        step_duration: plan.base.duration.to_string(),
        warmup: plan.base.warmup.to_string(),
        steps: rows,
        knee,
        no_knee,
        stopped_because: stopped,
        interrupted: cancel.is_cancelled(),
        memory_projection,
        environment: results::environment(version, None),
    };
    write_all(dir, &report).map_err(|e| Error::write(dir, e))?;
    Ok(SweepOutcome {
        report,
        dir: dir.to_path_buf(),
    })
}

/// Steps the offered load up until the SLO breaks, the generator saturates, throughput stops
/// growing or `--max-steps`, then bisects between the last passing and the first failing load
/// `--refine` times. Only an SLO break bracketed by a passing step, with the generator unsaturated
/// at both, is a knee: stopping for any other reason says "no knee below X".
async fn step_to_the_knee(
    stepper: &mut Stepper<'_>,
    plan: &Plan,
    goose_dir: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Stepped> {
    let mut rows: Vec<StepRow> = Vec::new();
    let mut offered = plan.start;
    let mut first_fail: Option<f64> = None;
    // (offered, achieved) of the last passing step.
    let mut prev: Option<(f64, f64)> = None;
    let mut stopped = format!("reached --max-steps {}", plan.max_steps);
    let mut why_no_knee: Option<String> = None;
    for _ in 0..plan.max_steps {
        let row = run_step(stepper, plan, goose_dir, offered, "step", progress).await?;
        let (passed, achieved, generator_bound) =
            (row.passed, row.achieved, row.bottleneck == Limit::Generator);
        let rule = row.bottleneck_rule.clone();
        rows.push(row);
        if cancel.is_cancelled() {
            stopped = "interrupted (Ctrl-C)".into();
            break;
        }
        if generator_bound {
            stopped = format!("generator-bound at {}: {rule}", plan.describe(offered));
            why_no_knee = Some(format!(
                "loadgen, not Redis, was the limit at {}: add workers or cores",
                plan.describe(offered)
            ));
            break;
        }
        if !passed {
            first_fail = Some(offered);
            stopped = format!("the SLO broke at {}", plan.describe(offered));
            break;
        }
        // Saturated: throughput grew by less than --min-gain, and by less than half of what the
        // offered load grew (so small additive steps at a high rate are not mistaken for it).
        if let Some((prev_offered, prev_achieved)) = prev {
            let gain = achieved / prev_achieved.max(1e-9) - 1.0;
            let offered_gain = offered / prev_offered - 1.0;
            if gain < plan.min_gain.min(offered_gain / 2.0) {
                stopped = format!(
                    "throughput stopped growing: {achieved:.0} ops/s after {prev_achieved:.0} ops/s (+{:.1} % for +{:.0} % offered; --min-gain {:.0} %)",
                    gain * 100.0,
                    offered_gain * 100.0,
                    plan.min_gain * 100.0
                );
                why_no_knee = Some(
                    "throughput stopped growing before the SLO broke: raise the SLO's bound or look at the bottleneck".into(),
                );
                break;
            }
        }
        prev = Some((offered, achieved));
        offered = plan.next(offered);
    }
    let last_pass = rows
        .iter()
        .filter(|r| r.passed)
        .map(|r| r.offered)
        .fold(None, |m: Option<f64>, o| Some(m.map_or(o, |m| m.max(o))));
    if let (Some(mut pass), Some(mut fail)) = (last_pass, first_fail) {
        for _ in 0..plan.refine {
            let mid = if plan.by_users {
                ((pass + fail) / 2.0).round()
            } else {
                (pass + fail) / 2.0
            };
            if cancel.is_cancelled() || mid <= pass || mid >= fail || (fail - pass) / fail < 0.02 {
                break;
            }
            let row = run_step(stepper, plan, goose_dir, mid, "refine", progress).await?;
            let (passed, generator_bound) = (row.passed, row.bottleneck == Limit::Generator);
            rows.push(row);
            if generator_bound {
                why_no_knee = Some(format!(
                    "loadgen, not Redis, was the limit at {} while refining: add workers or cores",
                    plan.describe(mid)
                ));
                break;
            }
            if passed {
                pass = mid;
            } else {
                fail = mid;
            }
        }
    }
    let highest = rows
        .iter()
        .filter(|r| r.passed && r.bottleneck != Limit::Generator)
        .max_by(|a, b| a.offered.total_cmp(&b.offered));
    let knee = match (highest, first_fail, why_no_knee) {
        (Some(r), Some(_), None) => Ok(Knee {
            offered: r.offered,
            achieved: r.achieved,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            step: r.index,
            bottleneck: r.bottleneck,
        }),
        (highest, _, why) => Err(NoKnee {
            reason: why.unwrap_or_else(|| match (highest, first_fail) {
                (None, _) => "no step met the SLO".into(),
                _ => format!(
                    "the SLO never broke: stopped after {} (raise --max-steps or --start)",
                    stopped
                ),
            }),
            highest_passing_offered: highest.map(|r| r.offered),
            highest_passing_step: highest.map(|r| r.index),
        }),
    };
    Ok(Stepped {
        rows,
        stopped,
        knee,
    })
}

/// Runs one step at `offered`, judges it, appends its row; returns whether it passed.
async fn run_step(
    stepper: &mut Stepper<'_>,
    plan: &Plan,
    goose_dir: &Path,
    offered: f64,
    phase: &'static str,
    progress: &Progress,
) -> Result<StepRow> {
    let load = plan.load_for(offered);
    let index = stepper.attacks() as usize + 1;
    progress.emit(Event::StepStarted {
        index,
        phase,
        offered: plan.describe(offered),
    });
    let html = goose_dir.join(format!("step-{index:02}.html"));
    let out = stepper.step(&load, &html).await?;
    let verdicts = judge::judge(&plan.slo, &out.measured, &out.invariants, out.seconds);
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.holds())
        .map(|v| format!("{} {} (bound {})", v.name, v.observed, v.bound))
        .collect();
    let Some(all) = out.ops.get("all") else {
        return Err(Error::Broken("the step produced no totals".into()));
    };
    let r = &all.response;
    let row = StepRow {
        index,
        phase,
        offered,
        users: load.users,
        target_rate: load.rate,
        achieved: all.throughput,
        count: all.count,
        errors: all.errors,
        p50_us: r.p50_us,
        p99_us: r.p99_us,
        p99_9_us: r.p99_9_us,
        max_us: r.max_us,
        invariant_violations: out.invariants.violations(),
        evicted_keys: out.redis.evicted_keys,
        passed: failed.is_empty(),
        failed,
        bottleneck: out.bottleneck.verdict,
        bottleneck_rule: out.bottleneck.rule.clone(),
        generator_utilisation: out.bottleneck.generator.utilisation,
        redis_main_thread_utilisation: out
            .bottleneck
            .server
            .as_ref()
            .map(|s| s.main_thread_utilisation),
    };
    progress.emit(Event::StepDone(row.clone()));
    Ok(row)
}
