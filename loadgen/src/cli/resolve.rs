//! From flags and environment to a command's options, once: the scenario file with its `--set`s and
//! typed flag overrides applied field by field, the Redis URL parsed into a [`TargetSpec`], the CA
//! bundle read, every small language parsed. Below this point nothing re-parses a URL, reads an
//! environment variable or formats a flag back into text; a bad value is blamed on its flag here.

use std::path::{Path, PathBuf};

use cache::RedisUrl;
use serde_json::json;

use super::args::{
    By, CapacityArgs, CompareArgs, DoctorArgs, EvictArgs, MergeArgs, RunArgs, ScenarioFlags,
    SweepArgs,
};
use super::values;
use super::worker::{self, WorkerEnv};
use crate::commands::Job;
use crate::commands::capacity::CapacityOptions;
use crate::commands::compare::CompareOptions;
use crate::commands::doctor::DoctorOptions;
use crate::commands::evict::{Case, DEFAULT_POLICIES, EvictOptions};
use crate::commands::merge::MergeOptions;
use crate::commands::run::RunOptions;
use crate::commands::sweep::{Plan, SweepFlags, SweepOptions};
use crate::engine::target::TargetSpec;
use crate::error::{Error, Result};
use crate::scenario::{self, Override, Scenario, parse_size};

/// `REDIS_URL` as the process found it (empty counts as unset).
pub(crate) type EnvUrl = Option<String>;

/// `--redis-url` beats `REDIS_URL`; with neither, `None` (a throwaway server).
fn parse_url(flag: Option<&str>, env: &EnvUrl) -> Result<Option<RedisUrl>> {
    let (origin, raw) = match (flag, env.as_deref().filter(|u| !u.is_empty())) {
        (Some(u), _) => ("--redis-url", u),
        (None, Some(u)) => ("REDIS_URL", u),
        (None, None) => return Ok(None),
    };
    RedisUrl::parse(raw)
        .map(Some)
        .map_err(|source| Error::Url { origin, source })
}

/// The CA bundle `--tls-ca` names; `what` says what it is in the error.
fn read_ca(path: Option<&Path>, what: &str) -> Result<Option<Vec<u8>>> {
    path.map(|p| {
        std::fs::read(p).map_err(|e| Error::usage(format!("--tls-ca {}: {what}: {e}", p.display())))
    })
    .transpose()
}

fn target(flags: &ScenarioFlags, env: &EnvUrl) -> Result<TargetSpec> {
    Ok(TargetSpec {
        url: parse_url(flags.redis_url.as_deref(), env)?,
        tls_ca_pem: read_ca(
            flags.tls_ca.as_deref(),
            "cannot read the CA bundle (expected a PEM file)",
        )?,
    })
}

fn load(file: &Path, sets: &[String], overrides: &[Override]) -> Result<Scenario> {
    scenario::load_with(file, sets, overrides).map_err(Error::Scenario)
}

/// `loadgen run`: options, and whether this is a dry run.
pub(crate) fn run(a: &RunArgs, env: &EnvUrl, workers: &WorkerEnv) -> Result<(RunOptions, bool)> {
    let mut overrides = Vec::new();
    if let Some(u) = a.users {
        overrides.push(Override::Users(u));
    }
    if let Some(d) = &a.duration {
        overrides.push(Override::Duration(
            values::parse_duration("--duration", d).map_err(Error::Usage)?,
        ));
    }
    if let Some(r) = a.rate {
        overrides.push(Override::Rate(r));
    }
    let mut scenario = load(&a.scenario, &a.target.set, &overrides)?;
    let start_at = worker::start_at(a.start_at.as_deref(), workers, std::time::SystemTime::now())
        .map_err(Error::Usage)?;
    let worker =
        match worker::shard(a.worker.as_deref(), a.workers, workers).map_err(Error::Usage)? {
            Some(shard) => {
                let (sharded, mut info) = shard.apply(&scenario)?;
                scenario = sharded;
                info.start_at = start_at.map(|t| humantime::format_rfc3339_seconds(t).to_string());
                Some(info)
            }
            None => None,
        };
    let inject_delay = a
        .inject_delay
        .as_deref()
        .map(|d| values::parse_duration("--inject-delay", d))
        .transpose()
        .map_err(Error::Usage)?;
    let target = target(&a.target, env)?;
    Ok((
        RunOptions {
            job: Job {
                file: a.scenario.clone(),
                scenario,
                target,
                out: a.out.clone(),
            },
            inject_delay,
            worker,
            start_at,
        },
        a.dry_run,
    ))
}

/// The configuration `--dry-run` prints: everything resolved, the URL redacted.
pub(crate) fn dry_run_json(o: &RunOptions, tls_ca: Option<&Path>) -> String {
    let j = &o.job;
    let target = match &j.target.url {
        Some(u) => json!({ "url": u.to_string(), "throwaway": false }),
        None => json!({
            "throwaway": true,
            "maxmemory": j.scenario.redis.maxmemory,
            "maxmemory_policy": j.scenario.redis.maxmemory_policy,
            "persistence": j.scenario.redis.persistence,
        }),
    };
    serde_json::to_string_pretty(&json!({
        "scenario_file": j.file.display().to_string(),
        "scenario": j.scenario,
        "target": target,
        "results_under": j.out.display().to_string(),
        "inject_delay": o.inject_delay.map(|d| humantime::format_duration(d).to_string()),
        "worker": o.worker,
        "tls_ca": tls_ca.map(|p| p.display().to_string()),
    }))
    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `loadgen sweep`.
pub(crate) fn sweep(a: &SweepArgs, env: &EnvUrl) -> Result<SweepOptions> {
    let scenario = load(&a.scenario, &a.target.set, &[])?;
    let flags = SweepFlags {
        by_users: a.by == By::Users,
        start: a.start,
        rule: values::parse_step_rule(&a.step).map_err(Error::Usage)?,
        max_steps: a.max_steps,
        refine: a.refine,
        min_gain: values::parse_fraction("--min-gain", &a.min_gain).map_err(Error::Usage)?,
        step_duration: values::parse_duration_flag("--step-duration", &a.step_duration)
            .map_err(Error::Usage)?,
        users: a.users,
        slo: if a.slo.is_empty() {
            None
        } else {
            Some(values::parse_slos(&a.slo).map_err(Error::Usage)?)
        },
    };
    let plan = Plan::new(&flags, &scenario)?;
    Ok(SweepOptions {
        job: Job {
            file: a.scenario.clone(),
            scenario,
            target: target(&a.target, env)?,
            out: a.out.clone(),
        },
        plan,
    })
}

/// `loadgen capacity`.
pub(crate) fn capacity(a: &CapacityArgs, env: &EnvUrl) -> Result<CapacityOptions> {
    let headroom = values::parse_fraction("--headroom", &a.headroom).map_err(Error::Usage)?;
    let maxmemory = a
        .maxmemory
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| Error::usage(format!("--maxmemory {e}")))?;
    if !(10..=1_000_000).contains(&a.samples) {
        return Err(Error::usage(format!(
            "--samples {}: expected 10 to 1000000 items per kind",
            a.samples
        )));
    }
    Ok(CapacityOptions {
        scenario_file: a.scenario.clone(),
        scenario: load(&a.scenario, &a.target.set, &[])?,
        target: target(&a.target, env)?,
        maxmemory,
        headroom,
        samples: a.samples,
    })
}

/// `loadgen evict`: the scenario once per policy, so each policy name and the maxmemory are
/// checked by the scenario's own validation (same list, same messages) and blamed on the flag.
pub(crate) fn evict(a: &EvictArgs, env: &EnvUrl) -> Result<EvictOptions> {
    let mut overrides = Vec::new();
    if let Some(d) = &a.duration {
        overrides.push(Override::Duration(
            values::parse_duration_flag("--duration", d).map_err(Error::Usage)?,
        ));
    }
    let scenario = load(&a.scenario, &a.target.set, &overrides)?;
    let target = target(&a.target, env)?;
    let base = |scenario: Scenario, cases: Vec<Case>| EvictOptions {
        job: Job {
            file: a.scenario.clone(),
            scenario,
            target: target.clone(),
            out: a.out.clone(),
        },
        cases,
    };
    if !target.is_throwaway() {
        if a.maxmemory.is_some() || a.policies.is_some() {
            return Err(Error::usage(
                "--policies and --maxmemory configure throwaway servers; with --redis-url (or REDIS_URL) loadgen evict tests the target's own policy and maxmemory: drop them, or drop the URL",
            ));
        }
        let case = Case {
            policy: "target's own".into(),
            scenario: scenario.clone(),
        };
        return Ok(base(scenario, vec![case]));
    }
    let maxmemory = a.maxmemory.clone().or(scenario.redis.maxmemory.clone()).ok_or_else(|| {
        Error::usage("loadgen evict needs a maxmemory for its throwaway servers: pass --maxmemory 16mb or set [redis] maxmemory in the scenario")
    })?;
    let policies = a.policies.as_deref().unwrap_or(DEFAULT_POLICIES);
    let mut cases = Vec::new();
    for p in policies.split(',').map(str::trim) {
        if p.is_empty() {
            return Err(Error::usage(format!(
                "--policies `{policies}`: empty entry: expected comma-separated policies such as {DEFAULT_POLICIES}"
            )));
        }
        let mut o = overrides.clone();
        o.push(Override::Maxmemory(maxmemory.clone()));
        o.push(Override::Policy(p.to_string()));
        cases.push(Case {
            policy: p.to_string(),
            scenario: load(&a.scenario, &a.target.set, &o)?,
        });
    }
    Ok(base(scenario, cases))
}

/// `loadgen compare`: which paths are the baseline and which the current runs.
pub(crate) fn compare(a: &CompareArgs) -> Result<CompareOptions> {
    let threshold = values::parse_threshold(&a.max_regression).map_err(Error::Usage)?;
    let mut baseline: Vec<PathBuf> = a.baseline.clone();
    let mut current: Vec<PathBuf> = a.current.clone();
    match (baseline.is_empty(), current.is_empty(), a.paths.as_slice()) {
        (true, true, [b, c]) => {
            baseline.push(b.clone());
            current.push(c.clone());
        }
        (true, true, _) => {
            return Err(Error::usage(format!(
                "loadgen compare needs a baseline and a current run: `loadgen compare BASELINE CURRENT` (got {} path(s)), or --baseline/--current",
                a.paths.len()
            )));
        }
        (false, _, rest) => current.extend(rest.iter().cloned()),
        (true, false, rest) => baseline.extend(rest.iter().cloned()),
    }
    if baseline.is_empty() || current.is_empty() {
        return Err(Error::usage(format!(
            "loadgen compare needs at least one {} run",
            if baseline.is_empty() {
                "baseline"
            } else {
                "current"
            }
        )));
    }
    Ok(CompareOptions {
        baseline,
        current,
        threshold,
        normalize: a.normalize,
    })
}

/// `loadgen doctor`: a URL is required (there is nothing to diagnose on a throwaway server).
pub(crate) fn doctor(a: &DoctorArgs, env: &EnvUrl) -> Result<DoctorOptions> {
    let url = parse_url(a.redis_url.as_deref(), env)?.ok_or_else(|| {
        Error::usage("loadgen doctor needs a target: pass --redis-url URL or set REDIS_URL")
    })?;
    Ok(DoctorOptions {
        url,
        tls_ca_pem: read_ca(a.tls_ca.as_deref(), "cannot read it")?,
    })
}

/// `loadgen merge`: the directories as given; `--out` must not already hold a run.
pub(crate) fn merge(a: &MergeArgs) -> Result<MergeOptions> {
    if a.out.join("summary.json").exists() {
        return Err(Error::usage(format!(
            "--out {}: already holds a summary.json: give a new directory for the merged run",
            a.out.display()
        )));
    }
    Ok(MergeOptions {
        dirs: a.dirs.clone(),
        out: a.out.clone(),
    })
}
