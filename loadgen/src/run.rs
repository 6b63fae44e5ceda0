//! One `loadgen run`, start to exit code:
//!
//! 1. create the results directory (fail before any load if it cannot be written: exit 2);
//! 2. resolve the target (exit 3 if it cannot be used) and note its `INFO`;
//! 3. calibrate (raw `PING` rate), then seed the keyspace: every account's sessions and token;
//! 4. run the goose attack with the status line and the `INFO` sampler alongside;
//! 5. collect `INFO` again, `MEMORY USAGE` samples, judge, write the results, print the summary.
//!
//! Ctrl-C: the first one stops the run in order — before the attack it skips it, during the
//! attack it trips goose's killswitch so goose ends the attack and the results so far are written —
//! and the throwaway server is removed on the way out (exit 130). A second Ctrl-C exits at once;
//! the server still dies with loadgen (`PR_SET_PDEATHSIG`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache::{IpPolicy, KeySchema, RateLimiter, SessionConfig, SessionStore, TokenCache};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::Fatal;
use crate::attack;
use crate::keyspace::Keyspace;
use crate::observe::{self, Info, SERIES_FIELDS, Sampler};
use crate::report::{
    self, Environment, RedisReport, RunInfo, ScenarioInfo, SloResult, Summary, TargetInfo,
};
use crate::scenario::Scenario;
use crate::target::{self, Target, UrlSource};
use crate::workload::{Workload, WorkloadParts};

/// Everything `run` needs, resolved at the edge (see [`crate::cli`]).
pub struct RunOptions {
    pub scenario_file: PathBuf,
    pub scenario: Scenario,
    pub url: UrlSource,
    pub out: PathBuf,
    pub inject_delay: Option<Duration>,
    pub tls_ca: Option<PathBuf>,
}

/// Exit code for a run stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed during this run.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Our Ctrl-C handler. Installed before goose's, so goose's own `set_handler` fails (it then only
/// logs) and this one stays in charge for the whole run, including seeding.
pub fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            eprintln!("\nsecond Ctrl-C: exiting now");
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!(
            "\nCtrl-C: stopping the run and writing what was measured (Ctrl-C again to exit now)"
        );
        goose::trigger_killswitch("Ctrl-C");
    });
}

/// `(directory stamp, RFC 3339)` of now, UTC.
pub fn utc_stamp() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let dir = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "now".into());
    let iso = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (dir, iso)
}

/// Creates `out/<name>-<stamp>` (with `-2`, `-3`... if taken) and proves it is writable.
pub fn results_dir(out: &Path, name: &str, stamp: &str) -> Result<PathBuf, Fatal> {
    let fail = |what: &str, e: std::io::Error| {
        Fatal::usage(format!(
            "--out {}: cannot {what}: {e} (expected a directory loadgen can create and write)",
            out.display()
        ))
    };
    std::fs::create_dir_all(out).map_err(|e| fail("create it", e))?;
    let mut dir = out.join(format!("{name}-{stamp}"));
    let mut n = 2;
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                dir = out.join(format!("{name}-{stamp}-{n}"));
                n += 1;
            }
            Err(e) => return Err(fail("create the results directory in it", e)),
        }
    }
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| fail("write into it", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(dir)
}

fn selected(info: &Info) -> std::collections::BTreeMap<String, f64> {
    let mut m: std::collections::BTreeMap<String, f64> = SERIES_FIELDS
        .iter()
        .filter_map(|f| Some((f.to_string(), info.num(f)?)))
        .collect();
    m.insert("keys".into(), info.keys());
    m
}

/// The stores and an empty keyspace for the scenario on the target (nothing written yet).
pub async fn build_workload(
    s: &Scenario,
    target: &Target,
    inject_delay: Option<Duration>,
) -> Result<Workload, Fatal> {
    let k = &s.keyspace;
    let keys =
        KeySchema::new(&k.prefix).map_err(|e| Fatal::usage(format!("keyspace.prefix: {e}")))?;
    let sessions = SessionStore::new(
        target.redis.clone(),
        keys.clone(),
        SessionConfig {
            idle_timeout: k.session_idle_timeout.0,
            absolute_lifetime: k.session_absolute_lifetime.0,
            max_value_bytes: k.payload.max() + 4096,
        },
    )
    .map_err(|e| Fatal::usage(format!("keyspace: {e}")))?;
    let tokens = TokenCache::new(target.redis.clone(), keys.clone());
    let limiter = RateLimiter::new(
        target.redis.clone(),
        keys,
        s.ratelimit.resolved_rules(),
        s.ratelimit.failure_mode,
        IpPolicy::default(),
    )
    .map_err(|e| Fatal::usage(format!("ratelimit: {e}")))?;
    let mut rng = SmallRng::seed_from_u64(s.seed);
    Workload::new(WorkloadParts {
        sessions,
        tokens,
        limiter,
        keyspace: Keyspace::new(k, &mut rng),
        weights: s.mix.weights(),
        rate: s.load.rate,
        users: s.load.users,
        warmup: s.load.warmup.0,
        duration: s.load.duration.0,
        inject_delay,
        seed: s.seed,
    })
    .map_err(Fatal::usage)
}

/// Runs the scenario; returns the exit code (0, 1 or 130) once the results are written.
pub async fn run(opts: RunOptions) -> Result<i32, Fatal> {
    install_ctrl_c();
    let s = &opts.scenario;
    let name = s.display_name().to_string();
    let (stamp, started_utc) = utc_stamp();
    let dir = results_dir(&opts.out, &name, &stamp)?;
    let remove_empty_dir = |dir: &Path| {
        let _ = std::fs::remove_dir(dir);
    };
    eprintln!(
        "loadgen {}: scenario {name} ({})",
        env!("CARGO_PKG_VERSION"),
        opts.scenario_file.display()
    );
    let target = match target::resolve(&opts.url, &s.redis, opts.tls_ca.as_ref()).await {
        Ok(t) => t,
        Err(e) => {
            remove_empty_dir(&dir);
            return Err(e);
        }
    };
    let result = measure(&opts, &target, &dir, &started_utc).await;
    if result.is_err() {
        remove_empty_dir(&dir);
    }
    target.close().await;
    result
}

async fn measure(
    opts: &RunOptions,
    target: &Target,
    dir: &Path,
    started_utc: &str,
) -> Result<i32, Fatal> {
    let s = &opts.scenario;
    let redis = &target.redis;
    let before = observe::info(redis, "all")
        .await
        .map_err(|e| Fatal::target(format!("INFO on {}: {e}", target.url)))?;
    let redis_version = before.get("redis_version").unwrap_or("unknown").to_string();
    eprintln!("target: {} (redis {redis_version})", target.url);

    let calibration = target::calibrate(redis, Duration::from_secs(1), 200_000).await;
    eprintln!(
        "calibration: {:.0} {}/s at concurrency {}",
        calibration.ops_per_sec, calibration.command, calibration.concurrency
    );

    let w = Arc::new(build_workload(s, target, opts.inject_delay).await?);
    let t = Instant::now();
    let (seeded, accounts) = w
        .seed(64, &interrupted)
        .await
        .map_err(|e| Fatal::run(format!("{e} (target {})", target.url)))?;
    eprintln!(
        "seeded {seeded} sessions for {accounts} accounts in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if interrupted() {
        eprintln!("interrupted before the load started: nothing measured");
        return Err(Fatal {
            code: EXIT_INTERRUPTED,
            message: "interrupted".into(),
        });
    }

    let l = &s.load;
    eprintln!(
        "running: {} users (ramp {}/s), warm-up {}, measuring {}, {}",
        l.users,
        l.ramp_per_sec(),
        l.warmup,
        l.duration,
        match l.rate {
            Some(r) => format!("open model at {r} ops/s"),
            None => "closed model".into(),
        }
    );
    let sampler = Sampler::start(redis.clone());
    let measured_seconds =
        attack::measured(&w, l, target.goose_host(), &dir.join("report.html")).await;
    let series = sampler.finish().await;

    let after = observe::info(redis, "all").await.unwrap_or_default();
    let bytes_per_key = observe::memory_per_key(redis, &s.keyspace.prefix, 32).await;
    // Skipped after Ctrl-C: the operator wants out, not more writes.
    let memory_projection = if interrupted() {
        None
    } else {
        crate::capacity::for_results(redis, s).await
    };
    let measured = w.recorder.finish();
    let invariants = w.invariants.counts();
    let verdicts = crate::verdict::judge(&s.slo, &measured, &invariants, measured_seconds);
    let passed = verdicts.iter().all(|v| v.passed);

    let before_sel = selected(&before);
    let after_sel = selected(&after);
    let deltas = after_sel
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "used_memory" | "connected_clients" | "instantaneous_ops_per_sec"
            )
        })
        .map(|(k, v)| (k.clone(), v - before_sel.get(k).copied().unwrap_or(0.0)))
        .collect();
    let cs_before = before.commandstats();
    let commandstats = after
        .commandstats()
        .into_iter()
        .filter_map(|(cmd, a)| {
            let b = cs_before.get(&cmd).copied().unwrap_or_default();
            let d = observe::CommandStat {
                calls: a.calls.saturating_sub(b.calls),
                usec: a.usec.saturating_sub(b.usec),
                failed_calls: a.failed_calls.saturating_sub(b.failed_calls),
            };
            (d.calls > 0).then_some((cmd, d))
        })
        .collect();

    let summary = Summary {
        schema_version: report::SCHEMA_VERSION,
        scenario: ScenarioInfo::of(opts),
        config: s.clone(),
        target: TargetInfo::of(target),
        run: RunInfo {
            started_utc: started_utc.to_string(),
            results_dir: dir.display().to_string(),
            model: if l.rate.is_some() { "open" } else { "closed" },
            target_rate: l.rate,
            measured_seconds: (measured_seconds * 1000.0).round() / 1000.0,
            interrupted: interrupted(),
            inject_delay_us: opts.inject_delay.map_or(0, |d| d.as_micros() as u64),
            seeded_sessions: seeded,
        },
        ops: report::op_stats(&measured, &s.mix.weighted_ops(), measured_seconds),
        invariants,
        slo: SloResult { passed, verdicts },
        redis: RedisReport {
            version: redis_version.clone(),
            before: before_sel,
            after: after_sel,
            deltas,
            commandstats,
            bytes_per_key,
            series,
        },
        series: report::series_report(&measured),
        errors: measured
            .ops
            .iter()
            .filter(|o| !o.error_kinds.is_empty())
            .map(|o| (o.op.name().to_string(), o.error_kinds.clone()))
            .collect(),
        environment: Environment::here(redis_version, Some(calibration)),
        memory_projection,
    };
    report::write_all(dir, &summary, &measured)
        .map_err(|e| Fatal::usage(format!("writing results to {}: {e}", dir.display())))?;
    print_summary(&summary);
    println!("results: {}", dir.display());
    Ok(if interrupted() {
        EXIT_INTERRUPTED
    } else if passed {
        0
    } else {
        1
    })
}

fn print_summary(s: &Summary) {
    use crate::verdict::fmt_us;
    println!(
        "{:<18} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "op", "count", "ops/s", "p50", "p99", "p99.9", "max", "errors"
    );
    for (name, st) in &s.ops {
        let r = &st.response;
        println!(
            "{name:<18} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
            st.count,
            st.throughput,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            fmt_us(r.p99_9_us),
            fmt_us(r.max_us),
            st.errors
        );
    }
    let i = &s.invariants;
    println!(
        "invariants: lost sessions {}, rate-limit over-admissions {}, revoked tokens validating {} (token cache misses {})",
        i.lost_sessions,
        i.ratelimit_over_admissions,
        i.revoked_tokens_validating,
        i.token_cache_misses
    );
    let failed: Vec<String> = s
        .slo
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("{} {} (bound {})", v.name, v.observed, v.bound))
        .collect();
    if failed.is_empty() {
        println!("verdict: PASS ({} checks)", s.slo.verdicts.len());
    } else {
        println!("verdict: FAIL: {}", failed.join("; "));
    }
}
