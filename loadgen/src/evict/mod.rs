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
//! A policy is SAFE when no session was lost, no limit was over-admitted, no write was refused and
//! no revoked token validated; otherwise UNSAFE with every reason. The working set has to exceed
//! `maxmemory` for this to mean anything, so the report also states what the keyspace needs (from
//! [`crate::capacity`], measured on a separate throwaway server or on the target before seeding)
//! and the smallest `maxmemory` projected to hold it with headroom.
//!
//! Results: `results/evict-<scenario>-<UTC>/evict.json` and `evict.md` (rendered in `render`).
//! Exit 0 when every policy is SAFE, 1 when one is UNSAFE, 2 usage, 3 target, 130 Ctrl-C.

mod render;
mod seed;

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::Fatal;
use crate::capacity::{self, CapacityReport, Limit};
use crate::run::{self, RunOptions};
use crate::scenario::Scenario;
use crate::sweep::step::Stepper;
use crate::target::{Target, UrlSource};

/// The default matrix: the policies an operator actually chooses between.
pub const DEFAULT_POLICIES: &str = "noeviction,allkeys-lru,allkeys-lfu,volatile-lru,volatile-ttl";
/// Bumped on incompatible changes to `evict.json`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Args, Debug)]
pub struct EvictArgs {
    /// Scenario file (TOML): its keyspace should need more memory than --maxmemory
    pub scenario: PathBuf,
    /// Comma-separated eviction policies, each run on its own throwaway server
    /// [default: noeviction,allkeys-lru,allkeys-lfu,volatile-lru,volatile-ttl]
    #[arg(long, value_name = "LIST")]
    pub policies: Option<String>,
    /// maxmemory of the throwaway servers, e.g. 16mb. Default: the scenario's [redis] maxmemory
    #[arg(long, value_name = "SIZE")]
    pub maxmemory: Option<String>,
    /// Measured load per policy (load.duration), e.g. 10s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    // With --redis-url (or REDIS_URL), the target is tested once, with its own policy and
    // maxmemory, instead of throwaway servers.
    #[command(flatten)]
    pub target: crate::sweep::ScenarioFlags,
}

/// SAFE or UNSAFE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Safe,
    Unsafe,
}

/// One policy's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyResult {
    pub policy: String,
    pub maxmemory_bytes: Option<u64>,
    pub verdict: Verdict,
    /// Why, in the operator's words (for SAFE: what was checked).
    pub reasons: Vec<String>,
    pub seeded_sessions: u64,
    /// Sign-ins refused with OOM while seeding.
    pub seed_oom_errors: u64,
    pub seed_other_errors: u64,
    /// Live sessions read as missing before their deadline during the load...
    pub lost_sessions_during_load: u64,
    /// ... and when every account came back once after it.
    pub lost_sessions_at_audit: u64,
    pub audited_sessions: u64,
    pub ratelimit_over_admissions: u64,
    pub revoked_tokens_validating: u64,
    /// `api_call`s that found their token, of all `api_call`s.
    pub token_hit_ratio: Option<f64>,
    /// Unrevoked, unexpired tokens not found (evicted).
    pub tokens_missing_before_expiry: u64,
    /// OOM errors during the load.
    pub load_oom_errors: u64,
    pub load_errors: u64,
    pub operations: u64,
    pub throughput: f64,
    /// `evicted_keys` over the whole policy run (seeding, load, audit).
    pub evicted_keys: u64,
    pub used_memory_after: u64,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct EvictReport {
    pub schema_version: u32,
    pub scenario: crate::report::ScenarioInfo,
    /// The target URL (redacted), or `throwaway servers`.
    pub target: String,
    pub started_utc: String,
    pub results_dir: String,
    pub duration: String,
    pub users: u32,
    /// The keyspace, what it needs, what fits (measured apart from the policy runs).
    pub capacity: Option<CapacityReport>,
    pub smallest_safe_maxmemory_bytes: Option<u64>,
    pub policies: Vec<PolicyResult>,
    pub all_safe: bool,
    pub interrupted: bool,
}

/// One policy to run: its scenario (with `[redis]` set for a throwaway server) and label.
struct Case {
    policy: String,
    scenario: Scenario,
}

fn rename_flags(mut f: Fatal) -> Fatal {
    f.message = f
        .message
        .replace("--set redis.maxmemory_policy", "--policies")
        .replace("--set redis.maxmemory", "--maxmemory");
    f
}

/// Resolves the scenario once per policy, so each policy name and the maxmemory are checked by
/// the scenario's own validation (same list, same messages, blamed on the flag).
fn cases(a: &EvictArgs, env_url: Option<String>) -> Result<(RunOptions, Vec<Case>), Fatal> {
    if let Some(d) = &a.duration {
        crate::sweep::grammar::parse_duration_flag("--duration", d).map_err(Fatal::usage)?;
    }
    let duration: Vec<String> = a
        .duration
        .iter()
        .map(|d| format!("load.duration={}", serde_json::json!(d)))
        .collect();
    let resolve = |extra: &[String]| {
        a.target
            .resolve(
                &a.scenario,
                env_url.clone(),
                &[&duration[..], extra].concat(),
            )
            .map_err(|f| {
                let mut f = rename_flags(f);
                f.message = f.message.replace("--set load.duration", "--duration");
                f
            })
    };
    let base = resolve(&[])?;
    if !matches!(base.url, UrlSource::None) {
        if a.maxmemory.is_some() || a.policies.is_some() {
            return Err(Fatal::usage(
                "--policies and --maxmemory configure throwaway servers; with --redis-url (or REDIS_URL) loadgen evict tests the target's own policy and maxmemory: drop them, or drop the URL",
            ));
        }
        let case = Case {
            policy: "target's own".into(),
            scenario: base.scenario.clone(),
        };
        return Ok((base, vec![case]));
    }
    let maxmemory = a.maxmemory.clone().or(base.scenario.redis.maxmemory.clone()).ok_or_else(|| {
        Fatal::usage("loadgen evict needs a maxmemory for its throwaway servers: pass --maxmemory 16mb or set [redis] maxmemory in the scenario")
    })?;
    let mut out = Vec::new();
    let policies = a.policies.as_deref().unwrap_or(DEFAULT_POLICIES);
    for p in policies.split(',').map(str::trim) {
        if p.is_empty() {
            return Err(Fatal::usage(format!(
                "--policies `{policies}`: empty entry: expected comma-separated policies such as {DEFAULT_POLICIES}"
            )));
        }
        let o = resolve(&[
            format!("redis.maxmemory={}", serde_json::json!(maxmemory)),
            format!("redis.maxmemory_policy={}", serde_json::json!(p)),
        ])?;
        out.push(Case {
            policy: p.to_string(),
            scenario: o.scenario,
        });
    }
    Ok((base, out))
}

/// `loadgen evict`.
pub async fn run(args: EvictArgs, env_url: Option<String>) -> Result<i32, Fatal> {
    let (opts, cases) = cases(&args, env_url)?;
    run::install_ctrl_c();
    let s = &opts.scenario;
    let (stamp, started_utc) = run::utc_stamp();
    let dir = run::results_dir(&args.out, &format!("evict-{}", s.display_name()), &stamp)?;
    std::fs::create_dir_all(dir.join("goose"))
        .map_err(|e| Fatal::usage(format!("{}: {e}", dir.display())))?;
    let url_target = !matches!(opts.url, UrlSource::None);
    let capacity = calibrate(&opts, &cases).await?;
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if run::interrupted() {
            break;
        }
        eprintln!("policy {} ({}/{})", case.policy, i + 1, cases.len());
        let target =
            crate::target::resolve(&opts.url, &case.scenario.redis, opts.tls_ca.as_ref()).await?;
        let file = case
            .policy
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        let html = dir.join("goose").join(format!("{file}.html"));
        let r = one_policy(&target, case, &html, capacity.as_ref()).await;
        target.close().await;
        let r = r?;
        eprintln!("{}", render::line(&r));
        results.push(r);
    }
    let report = EvictReport {
        schema_version: SCHEMA_VERSION,
        scenario: crate::report::ScenarioInfo::of(&opts),
        target: if url_target {
            crate::target::parse_url(&opts.url)?.map_or_else(String::new, |u| u.to_string())
        } else {
            "throwaway servers".into()
        },
        started_utc,
        results_dir: dir.display().to_string(),
        duration: s.load.duration.to_string(),
        users: s.load.users,
        smallest_safe_maxmemory_bytes: capacity.as_ref().map(|c| c.smallest_safe_maxmemory_bytes),
        capacity,
        all_safe: results.iter().all(|r| r.verdict == Verdict::Safe),
        policies: results,
        interrupted: run::interrupted(),
    };
    render::write_all(&dir, &report)
        .map_err(|e| Fatal::usage(format!("writing results to {}: {e}", dir.display())))?;
    print!("{}", render::table(&report));
    println!("results: {}", dir.display());
    Ok(if report.interrupted {
        run::EXIT_INTERRUPTED
    } else if report.all_safe {
        0
    } else {
        1
    })
}

/// Bytes per kind and the projection, measured where nothing is evicted: on a throwaway server
/// without maxmemory (projected for the cases' maxmemory), or on the target before seeding.
async fn calibrate(opts: &RunOptions, cases: &[Case]) -> Result<Option<CapacityReport>, Fatal> {
    let s = &opts.scenario;
    let (target, limit) = if matches!(opts.url, UrlSource::None) {
        let mut cfg = s.redis.clone();
        cfg.maxmemory = None;
        cfg.maxmemory_policy = None;
        let t = crate::target::resolve(&UrlSource::None, &cfg, None).await?;
        let limit = cases
            .first()
            .and_then(|c| c.scenario.redis.maxmemory.as_deref())
            .and_then(|m| capacity::model::parse_size(m).ok())
            .map(|bytes| Limit {
                bytes,
                source: "--maxmemory / scenario".into(),
            });
        (t, limit)
    } else {
        let t = crate::target::resolve(&opts.url, &s.redis, opts.tls_ca.as_ref()).await?;
        let limit = capacity::target_maxmemory(&t.redis)
            .await
            .map(|bytes| Limit {
                bytes,
                source: "CONFIG GET maxmemory".into(),
            });
        (t, limit)
    };
    let r = capacity::report(
        &target.redis,
        s,
        limit,
        capacity::DEFAULT_HEADROOM,
        capacity::RESULTS_SAMPLES,
    )
    .await;
    target.close().await;
    Ok(
        r.map_err(|e| eprintln!("warning: no memory projection: {e}"))
            .ok(),
    )
}

async fn one_policy(
    target: &Target,
    case: &Case,
    html: &std::path::Path,
    capacity: Option<&CapacityReport>,
) -> Result<PolicyResult, Fatal> {
    let redis = &target.redis;
    let s = &case.scenario;
    let before = crate::observe::info(redis, "stats")
        .await
        .unwrap_or_default();
    let maxmemory = capacity::target_maxmemory(redis).await;
    let policy = if target.throwaway.is_some() {
        case.policy.clone()
    } else {
        config_policy(redis)
            .await
            .unwrap_or_else(|| "unknown (CONFIG GET refused)".into())
    };
    let mut stepper = Stepper::new(target, s).await?;
    let seeded = seed::seed(stepper.workload(), s.seed).await;
    eprintln!(
        "seeded {} sessions ({} sign-ins refused with OOM, {} other errors)",
        seeded.stored, seeded.oom, seeded.other
    );
    let out = stepper.step(&s.load, html).await?;
    let audit = seed::audit(stepper.workload(), s.seed).await;
    let after = crate::observe::info(redis, "all").await.unwrap_or_default();
    let evicted = after.increase_since(&before, "evicted_keys");
    let api = out.ops.get("api_call");
    let token_hit_ratio = api
        .filter(|a| a.count > 0)
        .map(|a| (a.count - a.misses - a.errors) as f64 / a.count as f64);
    let load_oom: u64 = out
        .measured
        .ops
        .iter()
        .flat_map(|o| o.error_kinds.iter())
        .filter(|(msg, _)| seed::is_oom(msg))
        .map(|(_, n)| n)
        .sum();
    let all = out.ops.get("all");
    let mut r = PolicyResult {
        policy,
        maxmemory_bytes: maxmemory,
        verdict: Verdict::Safe,
        reasons: Vec::new(),
        seeded_sessions: seeded.stored,
        seed_oom_errors: seeded.oom,
        seed_other_errors: seeded.other,
        lost_sessions_during_load: out.invariants.lost_sessions,
        lost_sessions_at_audit: audit.lost,
        audited_sessions: audit.read,
        ratelimit_over_admissions: out.invariants.ratelimit_over_admissions,
        revoked_tokens_validating: out.invariants.revoked_tokens_validating,
        token_hit_ratio,
        tokens_missing_before_expiry: out.invariants.token_cache_misses,
        load_oom_errors: load_oom,
        load_errors: all.map_or(0, |a| a.errors),
        operations: all.map_or(0, |a| a.count),
        throughput: all.map_or(0.0, |a| a.throughput),
        evicted_keys: evicted,
        used_memory_after: after.num("used_memory").unwrap_or(0.0) as u64,
        notes: Vec::new(),
    };
    judge(&mut r, capacity);
    Ok(r)
}

async fn config_policy(redis: &cache::Redis) -> Option<String> {
    let mut c = redis.clone();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut c)
        .await
        .ok()?;
    pairs.get(1).cloned()
}

/// SAFE or UNSAFE, with the reasons in the operator's words.
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
    if reasons.is_empty() {
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
                capacity::model::human_bytes(c.scenario_needs_bytes as f64),
                capacity::model::human_bytes(safe as f64)
            ));
        }
    }
}
