//! `loadgen sweep`: find the knee — the highest offered load that still meets the SLO.
//!
//! ```text
//! loadgen sweep <scenario.toml> --slo 'p99<2ms' [--slo ...] [--by rate|users] [--start N]
//!               [--step x1.5|+N|P%] [--max-steps 10] [--refine 2] [--min-gain 3%]
//!               [--step-duration 5s] [--redis-url URL] [--out DIR] [--set key=value ...]
//! ```
//!
//! One process, one keyspace (seeded once), one goose attack per step ([`step::Stepper`]). Each
//! step offers more load — an open-model target rate (`--by rate`, the default: latency is
//! measured from each operation's intended start, so queueing behind a saturated Redis shows) or
//! more closed-model users (`--by users`) — and is judged against the SLO and the invariants. The
//! sweep stops when a step breaks the SLO, when throughput stops growing (less than `--min-gain`
//! over the previous step, and less than half of the offered load's growth, so that small
//! additive steps are not mistaken for it: the system is saturated and more offered load only
//! queues), or after `--max-steps`. Between the last passing and the first failing rate it then bisects `--refine`
//! times, so the knee is known to better than one step.
//!
//! Results: `results/sweep-<scenario>-<UTC>/` with `sweep.json` (schema-versioned: every step,
//! the knee, why it stopped, the memory projection), `sweep.md` and `sweep.svg` ([`render`]).
//! Exit 0 when some step met the SLO, 1 when none did, 2 usage, 3 target, 130 Ctrl-C.

pub mod grammar;
mod plan;
pub mod render;
pub mod step;

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::Fatal;
use crate::capacity::{self, CapacityReport};
use crate::report::{Environment, ScenarioInfo, TargetInfo};
use crate::run::{self, RunOptions};
use crate::scenario::Slo;
use plan::{Plan, plan};

/// Bumped on incompatible changes to `sweep.json`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Scenario file (TOML): its mix, keyspace and users; the load is stepped
    pub scenario: PathBuf,
    /// SLO every step must meet, e.g. 'p99<2ms', 'page_view:p99.9<=10ms', 'service:p99<1ms',
    /// 'errors<0.1%' (repeatable; response time unless `service:`). Default: the scenario's
    /// `[slo]` latency bounds and error rate.
    #[arg(long, value_name = "BOUND")]
    pub slo: Vec<String>,
    /// What to step: the open-model target rate (ops/s), or the number of closed-model users
    #[arg(long, value_name = "WHAT", default_value = "rate", value_parser = ["rate", "users"])]
    pub by: String,
    /// First step's offered load. Default: the scenario's load.rate (or 1000) / load.users
    #[arg(long, value_name = "N")]
    pub start: Option<f64>,
    /// Growth per step: +N (add), xF (multiply) or P% (grow by P percent)
    #[arg(
        long,
        value_name = "RULE",
        default_value = "x1.5",
        allow_hyphen_values = true
    )]
    pub step: String,
    /// Most steps before the refinement
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_steps: u32,
    /// Bisection steps between the last passing and the first failing load
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub refine: u32,
    /// Stop when throughput grows by less than this over the previous step (saturation), or
    /// by less than half the offered load's growth, whichever is smaller
    #[arg(long, value_name = "PERCENT", default_value = "3%")]
    pub min_gain: String,
    /// Measured time per step (after the scenario's warm-up)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        allow_hyphen_values = true
    )]
    pub step_duration: String,
    /// Users for the open model (load.users): enough to send the highest rate
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    #[command(flatten)]
    pub target: ScenarioFlags,
}

/// The flags every scenario command shares (`sweep`, `capacity`, `evict`): where to run, scenario
/// overrides, TLS trust.
#[derive(Args, Debug, Clone)]
pub struct ScenarioFlags {
    /// Redis to use (any REDIS_URL form). Overrides REDIS_URL. With neither, loadgen starts
    /// throwaway redis-servers on free loopback ports and removes them at the end.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Override any scenario value by its dotted path (repeatable), e.g. --set keyspace.users=1000
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// PEM bundle of CA certificates to trust for rediss:// (a private CA)
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

impl ScenarioFlags {
    /// Scenario, `--set` overrides (then `extra_sets`) and target URL, resolved exactly as
    /// `loadgen run` resolves them: same errors, same precedence.
    pub fn resolve(
        &self,
        scenario: &std::path::Path,
        env_url: Option<String>,
        extra_sets: &[String],
    ) -> Result<RunOptions, Fatal> {
        let args = crate::cli::RunArgs {
            scenario: scenario.to_path_buf(),
            redis_url: self.redis_url.clone(),
            users: None,
            duration: None,
            rate: None,
            out: PathBuf::from("results"),
            set: [&self.set[..], extra_sets].concat(),
            dry_run: false,
            inject_delay: None,
            tls_ca: self.tls_ca.clone(),
        };
        crate::cli::resolve(args, env_url).map(|(o, _)| o)
    }
}

/// One step as reported.
#[derive(Clone, Debug, Serialize)]
pub struct StepRow {
    pub index: usize,
    /// `step` (growing) or `refine` (bisecting towards the knee).
    pub phase: &'static str,
    /// Target ops/s (`--by rate`) or users (`--by users`).
    pub offered: f64,
    pub users: u32,
    pub target_rate: Option<f64>,
    /// Operations per second completed in the measured window.
    pub achieved: f64,
    pub count: u64,
    pub errors: u64,
    /// Response time over all operations, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    pub invariant_violations: u64,
    pub evicted_keys: u64,
    pub passed: bool,
    /// Failed checks as `name observed (bound)`.
    pub failed: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Knee {
    pub offered: f64,
    pub achieved: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub step: usize,
}

#[derive(Serialize)]
pub struct SweepReport {
    pub schema_version: u32,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub started_utc: String,
    pub results_dir: String,
    /// `rate` or `users`.
    pub by: String,
    /// The SLO, one bound per entry, as judged.
    pub slo: Vec<String>,
    pub step_rule: String,
    pub min_gain: f64,
    pub step_duration: String,
    pub warmup: String,
    pub steps: Vec<StepRow>,
    /// The highest offered load that met the SLO; `null` when none did.
    pub knee: Option<Knee>,
    pub stopped_because: String,
    pub interrupted: bool,
    /// Bytes per key kind and what fits in the target's maxmemory (see `loadgen capacity`).
    pub memory_projection: Option<CapacityReport>,
    pub environment: Environment,
}

fn slo_lines(slo: &Slo) -> Vec<String> {
    let mut out: Vec<String> = slo
        .latency
        .iter()
        .map(|l| {
            let kind = match l.time {
                crate::scenario::TimeKind::Response => "response",
                crate::scenario::TimeKind::Service => "service",
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
pub async fn run(args: SweepArgs, env_url: Option<String>) -> Result<i32, Fatal> {
    let opts = args.target.resolve(&args.scenario, env_url, &[])?;
    let plan = plan(&args, &opts)?;
    run::install_ctrl_c();
    let s = &opts.scenario;
    let name = s.display_name().to_string();
    let (stamp, started_utc) = run::utc_stamp();
    let dir = run::results_dir(&args.out, &format!("sweep-{name}"), &stamp)?;
    let target = match crate::target::resolve(&opts.url, &s.redis, opts.tls_ca.as_ref()).await {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let result = sweep(&opts, &plan, &target, &dir, started_utc).await;
    target.close().await;
    result
}

async fn sweep(
    opts: &RunOptions,
    plan: &Plan,
    target: &crate::target::Target,
    dir: &std::path::Path,
    started_utc: String,
) -> Result<i32, Fatal> {
    let s = &opts.scenario;
    let info = crate::observe::info(&target.redis, "server")
        .await
        .map_err(|e| Fatal::target(format!("INFO on {}: {e}", target.url)))?;
    let version = info.get("redis_version").unwrap_or("unknown").to_string();
    eprintln!(
        "sweep: scenario {} on {} (redis {version})",
        s.display_name(),
        target.url
    );
    let mut stepper = step::Stepper::new(target, s).await?;
    let (seeded, _) = stepper
        .workload()
        .seed(64, &run::interrupted)
        .await
        .map_err(|e| Fatal::run(format!("{e} (target {})", target.url)))?;
    eprintln!(
        "seeded {seeded} sessions; stepping {} from {}",
        if plan.by_users { "users" } else { "ops/s" },
        plan.start
    );
    std::fs::create_dir_all(dir.join("goose"))
        .map_err(|e| Fatal::usage(format!("{}: {e}", dir.display())))?;

    let mut rows: Vec<StepRow> = Vec::new();
    let mut offered = plan.start;
    let mut last_pass: Option<f64> = None;
    let mut first_fail: Option<f64> = None;
    // (offered, achieved) of the last passing step.
    let mut prev: Option<(f64, f64)> = None;
    let mut stopped = format!("reached --max-steps {}", plan.max_steps);
    for _ in 0..plan.max_steps {
        let passed = run_step(&mut stepper, plan, dir, offered, "step", &mut rows).await?;
        if run::interrupted() {
            stopped = "interrupted (Ctrl-C)".into();
            break;
        }
        let achieved = rows.last().map_or(0.0, |r| r.achieved);
        if !passed {
            first_fail = Some(offered);
            stopped = format!("the SLO broke at {}", describe(plan.by_users, offered));
            break;
        }
        last_pass = Some(offered);
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
                break;
            }
        }
        prev = Some((offered, achieved));
        offered = plan.next(offered);
    }
    if let (Some(mut pass), Some(mut fail)) = (last_pass, first_fail) {
        for _ in 0..plan.refine {
            let mid = if plan.by_users {
                ((pass + fail) / 2.0).round()
            } else {
                (pass + fail) / 2.0
            };
            if run::interrupted() || mid <= pass || mid >= fail || (fail - pass) / fail < 0.02 {
                break;
            }
            if run_step(&mut stepper, plan, dir, mid, "refine", &mut rows).await? {
                pass = mid;
            } else {
                fail = mid;
            }
        }
    }
    let knee = rows
        .iter()
        .filter(|r| r.passed)
        .max_by(|a, b| a.offered.total_cmp(&b.offered))
        .map(|r| Knee {
            offered: r.offered,
            achieved: r.achieved,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            step: r.index,
        });
    let memory_projection = if run::interrupted() {
        None
    } else {
        capacity::for_results(&target.redis, s).await
    };
    let report = SweepReport {
        schema_version: SCHEMA_VERSION,
        scenario: ScenarioInfo::of(opts),
        target: TargetInfo::of(target),
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
        stopped_because: stopped,
        interrupted: run::interrupted(),
        memory_projection,
        environment: Environment::here(version, None),
    };
    render::write_all(dir, &report)
        .map_err(|e| Fatal::usage(format!("writing results to {}: {e}", dir.display())))?;
    print!("{}", render::table(&report));
    println!("results: {}", dir.display());
    Ok(if report.interrupted {
        run::EXIT_INTERRUPTED
    } else if report.knee.is_some() {
        0
    } else {
        1
    })
}

/// Runs one step at `offered`, judges it, appends its row; returns whether it passed.
async fn run_step(
    stepper: &mut step::Stepper<'_>,
    plan: &Plan,
    dir: &std::path::Path,
    offered: f64,
    phase: &'static str,
    rows: &mut Vec<StepRow>,
) -> Result<bool, Fatal> {
    let load = plan.load_for(offered);
    let index = rows.len() + 1;
    eprintln!(
        "step {index} ({phase}): offering {}",
        describe(plan.by_users, offered)
    );
    let html = dir.join("goose").join(format!("step-{index:02}.html"));
    let out = stepper.step(&load, &html).await?;
    let verdicts = crate::verdict::judge(&plan.slo, &out.measured, &out.invariants, out.seconds);
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("{} {} (bound {})", v.name, v.observed, v.bound))
        .collect();
    let Some(all) = out.ops.get("all") else {
        return Err(Fatal::run("the step produced no totals"));
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
    };
    eprintln!("{}", render::row_line(&row));
    let passed = row.passed;
    rows.push(row);
    Ok(passed)
}

fn describe(by_users: bool, offered: f64) -> String {
    if by_users {
        format!("{offered:.0} users")
    } else {
        format!("{offered:.0} ops/s")
    }
}
