//! `loadgen evict`: is this `maxmemory` + eviction policy safe for sessions and rate limits?
//!
//! ```text
//! loadgen evict <scenario.toml> [--policies noeviction,allkeys-lru,allkeys-lfu,volatile-lru,volatile-ttl]
//!               [--maxmemory 16mb] [--duration 10s] [--redis-url URL] [--out DIR] [--set key=value ...]
//! ```
//!
//! For each policy — on a throwaway `redis-server` started with that policy and `maxmemory`, or,
//! with a URL, once against the target's own settings — loadgen seeds the scenario's whole
//! keyspace (every account signed in, with a token), runs its load, then has every account come
//! back once (the **audit**: one session read per account, as a user reloading a page). What the
//! operator needs to know comes out in their words:
//!
//! - **users logged out early**: sessions we created and kept alive that read as missing before
//!   their idle or absolute deadline — the lost-sessions invariant, during the load and at the audit;
//! - **rate limits failing open**: a counter evicted mid-window restarts at 1, so the limiter admits
//!   more than the rule allows — the over-admission invariant, across all users;
//! - **writes refused**: `OOM` errors, while seeding (sign-ins) and during the load (sign-ins,
//!   token caching, rate-limit checks, which then fail open or closed);
//! - **token cache hit ratio**: evicted tokens are not a violation (the server falls back to its
//!   database) but cost it load.
//!
//! A policy is UNSAFE when a session was lost, a limit over-admitted, a write refused with OOM or a
//! revoked token validated, with every reason. Otherwise it is SAFE only if the run could have
//! shown harm — else **NOT TESTED**, with the reason, and exit 3:
//! - the workload ran: sessions were seeded, the load's errors other than OOM stayed within the
//!   scenario's `slo.max_error_rate` (1 % when unset; seeding's too), and the audit could read
//!   sessions back (or find them lost). An ACL user that cannot run `EVALSHA`
//!   seeds nothing: NOT TESTED, "the ACL user lacks `EVALSHA`";
//! - eviction pressure existed: `maxmemory` is set, and `used_memory` reached 90 % of it or keys
//!   were evicted or writes refused with OOM. A server with room to spare evicts nothing under
//!   any policy, so "nothing was lost" there says nothing about the policy.
//!
//! The report also states what the keyspace needs (from
//! [`crate::engine::capacity`], measured on a separate throwaway server or on the target before
//! seeding)
//! and the smallest `maxmemory` projected to hold it with headroom.
//!
//! Results: `results/evict-<scenario>-<UTC>/evict.json` and `evict.md`
//! ([`crate::report::evict`]).
//! Exit 0 when every policy is SAFE, 1 when one is UNSAFE, 3 when one is NOT TESTED (and none
//! UNSAFE) or the target cannot be used, 2 usage, 130 Ctrl-C.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::{Job, Started, verdict_exit};
use crate::engine::capacity::{self, Limit};
use crate::engine::progress::{Event, Progress};
use crate::engine::seed::{self, OnFailure};
use crate::engine::stepper::Stepper;
use crate::engine::target::{self, Target, TargetSpec};
use crate::engine::{redis_admin, results};
use crate::error::{EXIT_NOT_TESTED, Error, Result};
use crate::report::capacity::{CapacityReport, DEFAULT_HEADROOM};
use crate::report::evict::{EvictReport, PolicyResult, SCHEMA_VERSION, Verdict, write_all};
use crate::report::fmt;
use crate::scenario::{Scenario, parse_size};

/// The default matrix: the policies an operator actually chooses between.
pub(crate) const DEFAULT_POLICIES: &str =
    "noeviction,allkeys-lru,allkeys-lfu,volatile-lru,volatile-ttl";

/// One policy to run: its scenario (with `[redis]` set for a throwaway server) and label.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) policy: String,
    pub(crate) scenario: Scenario,
}

/// Everything `evict` needs, resolved at the edge: one [`Case`] per policy on throwaway servers,
/// or one case (`target's own`) against a URL.
#[derive(Debug)]
pub(crate) struct EvictOptions {
    pub(crate) job: Job,
    pub(crate) cases: Vec<Case>,
}

/// A finished matrix: its report (also written as `evict.json`) and where its files are.
pub(crate) struct EvictOutcome {
    pub(crate) report: EvictReport,
    pub(crate) dir: PathBuf,
}

impl EvictOutcome {
    /// 0 every policy SAFE, 1 one UNSAFE, 3 one NOT TESTED (none UNSAFE), 130 interrupted.
    pub(crate) fn exit_code(&self) -> i32 {
        let verdicts = || self.report.policies.iter().map(|p| p.verdict);
        let untested = verdicts().any(|v| v == Verdict::NotTested)
            && !verdicts().any(|v| v == Verdict::Unsafe);
        if untested && !self.report.interrupted {
            EXIT_NOT_TESTED
        } else {
            verdict_exit(self.report.interrupted, self.report.all_safe)
        }
    }
}

/// `used_memory` at or above this share of `maxmemory` counts as eviction pressure.
const PRESSURE: f64 = 0.90;
/// The load's error bound when the scenario sets none.
const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;

/// `loadgen evict`.
pub(crate) async fn run(
    opts: &EvictOptions,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<EvictOutcome> {
    let s = &opts.job.scenario;
    let Started {
        dir,
        utc: started_utc,
    } = opts.job.start("evict", "evict-", progress)?;
    let goose_dir = results::create_subdir(&dir, "goose")?;
    let capacity = keyspace_needs(opts, progress).await?;
    let mut policies = Vec::new();
    for (i, case) in opts.cases.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        progress.emit(Event::PolicyStarted {
            policy: case.policy.clone(),
            index: i + 1,
            of: opts.cases.len(),
        });
        let target = target::open(&opts.job.target, &case.scenario.redis, progress).await?;
        let file = case
            .policy
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let html = goose_dir.join(format!("{file}.html"));
        let r = one_policy(&target, case, &html, capacity.as_ref(), progress, &cancel).await;
        target.close().await;
        let r = r?;
        progress.emit(Event::PolicyDone(r.clone()));
        policies.push(r);
    }
    let report = EvictReport {
        schema_version: SCHEMA_VERSION,
        scenario: opts.job.info(),
        target: match &opts.job.target.url {
            Some(u) => u.to_string(),
            None => "throwaway servers".into(),
        },
        started_utc,
        results_dir: dir.display().to_string(),
        duration: s.load.duration.to_string(),
        users: s.load.users,
        smallest_safe_maxmemory_bytes: capacity.as_ref().map(|c| c.smallest_safe_maxmemory_bytes),
        capacity,
        all_safe: policies.iter().all(|r| r.verdict == Verdict::Safe),
        policies,
        interrupted: cancel.is_cancelled(),
    };
    write_all(&dir, &report).map_err(|e| crate::error::Error::write(&dir, e))?;
    Ok(EvictOutcome { report, dir })
}

/// Bytes per kind and the projection, measured where nothing is evicted: on a throwaway server
/// without maxmemory (projected for the cases' maxmemory), or on the target before seeding.
async fn keyspace_needs(
    opts: &EvictOptions,
    progress: &Progress,
) -> Result<Option<CapacityReport>> {
    let s = &opts.job.scenario;
    let (target, limit) = if opts.job.target.is_throwaway() {
        let mut cfg = s.redis.clone();
        cfg.maxmemory = None;
        cfg.maxmemory_policy = None;
        let t = target::open(&TargetSpec::throwaway(), &cfg, progress).await?;
        let limit = opts
            .cases
            .first()
            .and_then(|c| c.scenario.redis.maxmemory.as_deref())
            .and_then(|m| parse_size(m).ok())
            .map(|bytes| Limit {
                bytes,
                source: "--maxmemory / scenario".into(),
            });
        (t, limit)
    } else {
        let t = target::open(&opts.job.target, &s.redis, progress).await?;
        let limit = redis_admin::maxmemory(&t.redis).await.map(|bytes| Limit {
            bytes,
            source: "CONFIG GET maxmemory".into(),
        });
        (t, limit)
    };
    let r = capacity::report(
        &target.redis,
        s,
        limit,
        DEFAULT_HEADROOM,
        capacity::RESULTS_SAMPLES,
    )
    .await;
    target.close().await;
    Ok(
        r.map_err(|e| progress.warn(format!("no memory projection: {e}")))
            .ok(),
    )
}

async fn one_policy(
    target: &Target,
    case: &Case,
    html: &Path,
    capacity: Option<&CapacityReport>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<PolicyResult> {
    let redis = &target.redis;
    let s = &case.scenario;
    let before = redis_admin::info(redis, "stats")
        .await
        .map_err(|e| Error::redis("INFO stats before the eviction run", "INFO", e))?;
    let policy = if target.throwaway.is_some() {
        case.policy.clone()
    } else {
        redis_admin::config_get(redis, &["maxmemory-policy"])
            .await
            .ok()
            .and_then(|c| c.get("maxmemory-policy").cloned())
            .unwrap_or_else(|| "unknown (CONFIG GET refused)".into())
    };
    let mut r = PolicyResult {
        policy,
        maxmemory_bytes: redis_admin::maxmemory(redis).await,
        max_error_rate: s.slo.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE),
        ..PolicyResult::default()
    };
    let mut stepper = Stepper::new(target, s, None, cancel.clone(), progress.clone()).await?;
    // Counting, never failing: every refusal is a finding. `Err` cannot come back.
    let seeded = seed::seed(stepper.workload(), s.seed, OnFailure::Count, progress)
        .await
        .unwrap_or_default();
    r.seeded_sessions = seeded.sessions;
    r.seeded_accounts = seeded.accounts;
    r.seed_oom_errors = seeded.oom;
    r.seed_other_errors = seeded.other;
    // An ACL refusal while seeding means nothing below can run: say which command, and stop.
    if let Some(e) = seeded.first_other
        && e.kind() == cache::ErrorKind::NoPermission
    {
        let refused = Error::redis("seeding the keyspace", "EVALSHA", e);
        r.reasons
            .push(format!("the workload could not run: {refused}"));
        return Ok(r);
    }
    let out = match stepper.step(&s.load, html).await {
        Err(refused @ Error::NoPermission { .. }) => {
            r.reasons
                .push(format!("the workload could not run: {refused}"));
            return Ok(r);
        }
        out => out?,
    };
    let audit = seed::audit(stepper.workload(), s.seed).await;
    let after = redis_admin::info(redis, "all").await.unwrap_or_default();
    let api = out.ops.get("api_call");
    let all = out.ops.get("all");
    let used_memory_after = after.num("used_memory").unwrap_or(0.0) as u64;
    r.lost_sessions_during_load = out.invariants.lost_sessions;
    r.lost_sessions_at_audit = audit.lost;
    r.audited_sessions = audit.read;
    r.ratelimit_over_admissions = out.invariants.ratelimit_over_admissions;
    r.revoked_tokens_validating = out.invariants.revoked_tokens_validating;
    r.token_hit_ratio = api
        .filter(|a| a.count > 0)
        .map(|a| (a.count - a.misses - a.errors) as f64 / a.count as f64);
    r.tokens_missing_before_expiry = out.invariants.token_cache_misses;
    r.load_oom_errors = out.measured.errors_of(cache::ErrorKind::OutOfMemory);
    r.load_errors = all.map_or(0, |a| a.errors);
    r.operations = all.map_or(0, |a| a.count);
    r.throughput = all.map_or(0.0, |a| a.throughput);
    r.evicted_keys = after.increase_since(&before, "evicted_keys");
    r.used_memory_after = used_memory_after;
    r.peak_used_memory = out
        .series
        .iter()
        .filter_map(|p| p.values.get("used_memory"))
        .fold(used_memory_after as f64, |m, v| m.max(*v)) as u64;
    judge(&mut r, capacity);
    Ok(r)
}

/// Why this run proved nothing about the policy, if it did not (see the module docs): the
/// workload did not run, or there was no eviction pressure.
fn not_tested(r: &PolicyResult) -> Vec<String> {
    let mut why = Vec::new();
    let bound = r.max_error_rate;
    let seed_attempts = r.seeded_sessions + r.seed_oom_errors + r.seed_other_errors;
    if r.seeded_sessions == 0 {
        why.push(format!(
            "the workload did not run: no session was seeded ({} sign-ins refused with OOM, {} failed otherwise)",
            r.seed_oom_errors, r.seed_other_errors
        ));
    } else if r.seed_other_errors as f64 > bound * seed_attempts as f64 {
        why.push(format!(
            "the workload did not run as written: {} of {seed_attempts} sign-ins while seeding failed for another reason than OOM (bound {:.2} %)",
            r.seed_other_errors,
            bound * 100.0
        ));
    }
    let other_errors = r.load_errors.saturating_sub(r.load_oom_errors);
    if r.operations == 0 {
        why.push("the load ran no operation".into());
    } else if other_errors as f64 > bound * r.operations as f64 {
        why.push(format!(
            "the load did not run as written: {other_errors} of {} operations failed for another reason than OOM ({:.2} %, the scenario's bound is {:.2} %)",
            r.operations,
            other_errors as f64 * 100.0 / r.operations as f64,
            bound * 100.0
        ));
    }
    // Accounts whose sessions all ended during the load (logouts) are not audited, so the audit
    // may judge fewer accounts than were seeded; judging none means its reads failed.
    if r.seeded_sessions > 0 && r.audited_sessions + r.lost_sessions_at_audit == 0 {
        why.push(format!(
            "the audit could judge none of the {} accounts it seeded (every read failed)",
            r.seeded_accounts
        ));
    }
    match r.maxmemory_bytes {
        None => why.push(
            "no eviction pressure: maxmemory is not set (or CONFIG GET was refused), so no policy was exercised".into(),
        ),
        Some(max) => {
            let peak = r.peak_used_memory as f64;
            let oom = r.seed_oom_errors + r.load_oom_errors;
            if peak < PRESSURE * max as f64 && r.evicted_keys == 0 && oom == 0 {
                why.push(format!(
                    "no eviction pressure: used_memory peaked at {} ({:.0} % of maxmemory {}), under {:.0} %, and nothing was evicted or refused: use a smaller --maxmemory or a bigger keyspace",
                    fmt::bytes(peak),
                    peak * 100.0 / max as f64,
                    fmt::bytes(max as f64),
                    PRESSURE * 100.0
                ));
            }
        }
    }
    why
}

/// SAFE, UNSAFE or NOT TESTED, with the reasons in the operator's words.
fn judge(r: &mut PolicyResult, capacity: Option<&CapacityReport>) {
    let lost = r.lost_sessions_during_load + r.lost_sessions_at_audit;
    let oom = r.seed_oom_errors + r.load_oom_errors;
    let mut reasons = Vec::new();
    if lost > 0 {
        reasons.push(format!(
            "{lost} signed-in users were logged out early: their sessions were evicted before the idle timeout ({} seen during the load, {} when every account came back)",
            r.lost_sessions_during_load, r.lost_sessions_at_audit
        ));
    }
    if r.ratelimit_over_admissions > 0 {
        reasons.push(format!(
            "rate limits failed open: rate-limit counters were evicted mid-window, the limiter started counting again and admitted {} requests over the limit",
            r.ratelimit_over_admissions
        ));
    }
    if oom > 0 {
        reasons.push(format!(
            "Redis refused {oom} writes with OOM ({} sign-ins while seeding, {} during the load): users cannot sign in, tokens are not cached, rate-limit checks fail",
            r.seed_oom_errors, r.load_oom_errors
        ));
    }
    if r.revoked_tokens_validating > 0 {
        reasons.push(format!(
            "{} revoked tokens still validated",
            r.revoked_tokens_validating
        ));
    }
    let untested = not_tested(r);
    if reasons.is_empty() && !untested.is_empty() {
        r.verdict = Verdict::NotTested;
        reasons = untested;
    } else if reasons.is_empty() {
        r.verdict = Verdict::Safe;
        reasons.push(format!(
            "no session lost ({} read back at the audit), no limit over-admitted, no write refused{}",
            r.audited_sessions,
            if r.evicted_keys > 0 {
                format!(" ({} keys evicted, none of them a live session we read)", r.evicted_keys)
            } else {
                String::new()
            }
        ));
    } else {
        r.verdict = Verdict::Unsafe;
    }
    r.reasons = reasons;
    if let (Some(c), Some(m)) = (capacity, r.maxmemory_bytes) {
        let safe = c.smallest_safe_maxmemory_bytes;
        if r.verdict == Verdict::Safe && safe > m {
            r.notes.push(format!(
                "no harm seen in this run, but the keyspace needs {} and the smallest safe maxmemory is projected at {}: a longer or busier run may evict",
                fmt::bytes(c.scenario_needs_bytes as f64),
                fmt::bytes(safe as f64)
            ));
        }
    }
}
