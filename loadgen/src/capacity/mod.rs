//! `loadgen capacity`: how many sessions, cached tokens and rate-limit counters fit in a
//! `maxmemory`, measured on the real server rather than guessed from value sizes.
//!
//! ```text
//! loadgen capacity <scenario.toml> [--maxmemory 256mb] [--redis-url URL] [--headroom 10%]
//!                  [--samples 2000] [--format text|json] [--set key=value ...]
//! ```
//!
//! [`measure`] writes a sample of each kind through the real stores and reads `used_memory`
//! deltas; [`model`] turns them into a prediction of `used_memory` for any key count; this module
//! states the projection for the scenario's mix and the smallest `maxmemory` that holds its
//! keyspace. The same report is added to `loadgen run`'s `summary.json` (`memory_projection`) and
//! to `loadgen sweep`'s `sweep.json`; `loadgen evict` uses it for "smallest safe maxmemory".
//!
//! ## Headroom: how much, and why
//!
//! The projection keeps [`DEFAULT_HEADROOM`] (10 %, `--headroom`) of `maxmemory` free, plus the
//! replication backlog (`repl-backlog-size`, read from the server; 1 MB by default):
//! - Redis counts against `maxmemory` more than keys: client query and output buffers (pipelines,
//!   large replies, pub/sub and `MONITOR` clients), the script cache, and — while a keyspace table
//!   doubles — both tables at once. Running at 100 % means the next burst evicts sessions (with
//!   `allkeys-*`) or refuses writes (`noeviction`).
//! - The replication backlog is counted once a replica has connected, so it is reserved in full.
//! - Replica output buffers beyond the backlog and the AOF buffer are *not* counted against
//!   `maxmemory` (`freeMemoryGetNotCountedMemory`): they, allocator fragmentation and copy-on-write
//!   during `BGSAVE`/AOF rewrite need RAM on the host *above* `maxmemory`, which no headroom inside
//!   `maxmemory` can provide. The report says so.
//!
//! The "at maxmemory" figures have no headroom: they are where Redis starts evicting or refusing
//! writes, and are what the accuracy test compares with a server filled until it refused.

pub mod measure;
pub mod model;

use std::path::PathBuf;

use cache::Redis;
use clap::Args;
use serde::Serialize;

use crate::Fatal;
use crate::scenario::Scenario;
use model::human_bytes;

/// Fraction of `maxmemory` kept free for what Redis counts besides keys (see the module docs).
pub const DEFAULT_HEADROOM: f64 = 0.10;
/// Items written per kind by `loadgen capacity`.
pub const DEFAULT_SAMPLES: usize = 2000;
/// Items per kind when the projection is added to run and sweep results (fast, a little noisier).
pub const RESULTS_SAMPLES: usize = 1000;
/// Bumped on incompatible changes to the report's JSON.
pub const SCHEMA_VERSION: u32 = 1;

const HEADROOM_WHY: &str = "kept free inside maxmemory: client query/output buffers, the script cache and a keyspace table doubling (both tables exist while it rehashes) are counted against maxmemory; the replication backlog too, once a replica connected. Replica output buffers beyond the backlog, the AOF buffer, fragmentation and fork copy-on-write are NOT counted against maxmemory: leave host RAM above maxmemory for them.";

/// Counts of the three kinds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Counts {
    pub sessions: u64,
    pub tokens: u64,
    pub counters: u64,
}

impl Counts {
    fn from_scaled(unit: [f64; 3], f: f64) -> Counts {
        let [s, t, c] = unit.map(|u| (u * f).floor().max(0.0) as u64);
        Counts {
            sessions: s,
            tokens: t,
            counters: c,
        }
    }

    fn as_array(&self) -> [f64; 3] {
        [
            self.sessions as f64,
            self.tokens as f64,
            self.counters as f64,
        ]
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Headroom {
    pub fraction: f64,
    pub repl_backlog_bytes: u64,
    /// `fraction × maxmemory + repl_backlog_bytes`.
    pub bytes: u64,
    pub why: &'static str,
}

/// What fits in one `maxmemory`.
#[derive(Clone, Debug, Serialize)]
pub struct Projection {
    pub maxmemory_bytes: u64,
    /// Where `maxmemory` came from: `--maxmemory`, `CONFIG GET maxmemory`, `scenario`.
    pub maxmemory_source: String,
    pub headroom: Headroom,
    /// `maxmemory − headroom`: what the keys may use.
    pub usable_bytes: u64,
    /// The scenario's keyspace scaled to fit (same proportions), within the headroom.
    pub mix: Counts,
    /// How many times the scenario's keyspace fits within the headroom (≥ 1: it fits).
    pub scenario_fits_times: f64,
    /// Each kind alone, within the headroom.
    pub alone: Counts,
    /// Each kind alone at `maxmemory` itself: where Redis starts evicting or refusing writes.
    pub alone_at_maxmemory: Counts,
}

/// The whole `loadgen capacity` answer.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    /// `used_memory` growth per item (keyspace tables apart), from the sample.
    pub bytes_per_session: f64,
    pub bytes_per_token: f64,
    pub bytes_per_counter: f64,
    pub measured: measure::Measured,
    /// The scenario's own keyspace: every account's sessions and token, and every client IP on
    /// every rate-limited endpoint within one window (an upper bound).
    pub scenario: Counts,
    /// Predicted `used_memory` holding the scenario's keyspace.
    pub scenario_needs_bytes: u64,
    /// Smallest `maxmemory` that holds it with the headroom, rounded up to a MiB.
    pub smallest_safe_maxmemory_bytes: u64,
    pub projection: Option<Projection>,
    pub notes: Vec<String>,
}

/// The scenario's steady-state keyspace (see [`CapacityReport::scenario`]).
pub fn scenario_counts(s: &Scenario) -> Counts {
    let k = &s.keyspace;
    let mut endpoints = if s.mix.ratelimit > 0 {
        k.endpoints.len() as u64
    } else {
        0
    };
    if s.mix.login > 0 && !k.endpoints.iter().any(|e| e == "signin") {
        endpoints += 1;
    }
    Counts {
        sessions: k.users as u64 * k.sessions_per_user as u64,
        tokens: k.users as u64,
        counters: k.client_ips as u64 * endpoints,
    }
}

/// Where the limit comes from, as given.
pub struct Limit {
    pub bytes: u64,
    pub source: String,
}

async fn config_get(redis: &Redis, name: &str) -> Option<u64> {
    let mut c = redis.clone();
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(&mut c)
        .await
        .ok()?;
    pairs.get(1)?.parse().ok()
}

/// The target's `maxmemory` (`None` when unset, 0, or `CONFIG GET` is not allowed).
pub async fn target_maxmemory(redis: &Redis) -> Option<u64> {
    config_get(redis, "maxmemory").await.filter(|m| *m > 0)
}

/// Measures and projects. `limit` is the maxmemory to project for, if any.
pub async fn report(
    redis: &Redis,
    s: &Scenario,
    limit: Option<Limit>,
    headroom: f64,
    samples: usize,
) -> Result<CapacityReport, String> {
    let measured = measure::measure(redis, s, samples).await?;
    let m = &measured.model;
    let mut notes = Vec::new();
    if measured.expired_during > 0 {
        notes.push(format!(
            "{} keys expired while measuring; the memory they freed makes the per-key figures slightly low",
            measured.expired_during
        ));
    }
    let backlog = config_get(redis, "repl-backlog-size")
        .await
        .unwrap_or(1024 * 1024);
    let scenario = scenario_counts(s);
    let needs = m.used(scenario.as_array(), None);
    let safe = ((needs + backlog as f64) / (1.0 - headroom) / 1048576.0).ceil() as u64 * 1048576;
    let projection = limit.map(|l| {
        let max = l.bytes as f64;
        let reserved = (headroom * max) as u64 + backlog;
        let usable = l.bytes.saturating_sub(reserved) as f64;
        let unit = scenario.as_array();
        let fits = m.max_scale(unit, usable, Some(max));
        let alone = |limit: f64| {
            let one = |k: usize| {
                let mut u = [0.0; 3];
                u[k] = 1.0;
                m.max_scale(u, limit, Some(max)).floor() as u64
            };
            Counts {
                sessions: one(0),
                tokens: one(1),
                counters: one(2),
            }
        };
        Projection {
            maxmemory_bytes: l.bytes,
            maxmemory_source: l.source,
            headroom: Headroom {
                fraction: headroom,
                repl_backlog_bytes: backlog,
                bytes: reserved,
                why: HEADROOM_WHY,
            },
            usable_bytes: usable as u64,
            mix: Counts::from_scaled(unit, fits),
            scenario_fits_times: (fits * 1000.0).floor() / 1000.0,
            alone: alone(usable),
            alone_at_maxmemory: alone(max),
        }
    });
    if projection.is_none() {
        notes.push("no maxmemory known (unset on the target, or CONFIG GET refused): pass --maxmemory to project".into());
    }
    Ok(CapacityReport {
        schema_version: SCHEMA_VERSION,
        bytes_per_session: (m.kinds[0].bytes * 10.0).round() / 10.0,
        bytes_per_token: (m.kinds[1].bytes * 10.0).round() / 10.0,
        bytes_per_counter: (m.kinds[2].bytes * 10.0).round() / 10.0,
        scenario,
        scenario_needs_bytes: needs as u64,
        smallest_safe_maxmemory_bytes: safe,
        projection,
        notes,
        measured,
    })
}

/// The projection for run and sweep results: the target's own `maxmemory`, default headroom,
/// [`RESULTS_SAMPLES`] per kind. `None` (with a warning) when it cannot be measured.
pub async fn for_results(redis: &Redis, s: &Scenario) -> Option<CapacityReport> {
    let limit = target_maxmemory(redis).await.map(|bytes| Limit {
        bytes,
        source: "CONFIG GET maxmemory".into(),
    });
    match report(redis, s, limit, DEFAULT_HEADROOM, RESULTS_SAMPLES).await {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("warning: no memory projection: {e}");
            None
        }
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report as Markdown (also what `loadgen capacity` prints).
pub fn render_markdown(r: &CapacityReport) -> String {
    let mu = &r.measured.memory_usage_bytes;
    let mu = |k: &str| mu.get(k).map_or("-".into(), |b| format!("{b:.0} B"));
    let kinds = &r.measured.model.kinds;
    let mut o = format!(
        "## Memory per item\n\nMeasured as `used_memory` growth over {} items of each kind written through the real stores (keyspace tables modelled apart); `MEMORY USAGE` of the main key for comparison — it leaves out the `expires` entry, allocator rounding and the user's index.\n\n| kind | bytes per item | keys per item | MEMORY USAGE |\n|---|---:|---:|---:|\n| session | {:.0} | {:.2} | {} |\n| token | {:.0} | {:.2} | {} |\n| rate-limit counter | {:.0} | {:.2} | {} |\n\nBase (empty server, clients, other data): {}.\n\n",
        r.measured.samples,
        kinds[0].bytes,
        kinds[0].keys,
        mu("session"),
        kinds[1].bytes,
        kinds[1].keys,
        mu("token"),
        kinds[2].bytes,
        kinds[2].keys,
        mu("counter"),
        human_bytes(r.measured.model.base),
    );
    let sc = &r.scenario;
    o.push_str(&format!(
        "The scenario's keyspace ({} sessions, {} tokens, up to {} counters) needs **{}**; smallest safe maxmemory with the headroom: **{}**.\n\n",
        thousands(sc.sessions),
        thousands(sc.tokens),
        thousands(sc.counters),
        human_bytes(r.scenario_needs_bytes as f64),
        human_bytes(r.smallest_safe_maxmemory_bytes as f64),
    ));
    if let Some(p) = &r.projection {
        o.push_str(&format!(
            "## Projection for maxmemory {} ({})\n\nHeadroom {:.0} % + replication backlog {} = {} reserved: {}\n\n| | sessions | tokens | counters |\n|---|---:|---:|---:|\n| scenario mix (fits {:.2}×) | {} | {} | {} |\n| one kind alone | {} | {} | {} |\n| one kind alone, at maxmemory (no headroom) | {} | {} | {} |\n\n",
            human_bytes(p.maxmemory_bytes as f64),
            p.maxmemory_source,
            p.headroom.fraction * 100.0,
            human_bytes(p.headroom.repl_backlog_bytes as f64),
            human_bytes(p.headroom.bytes as f64),
            p.headroom.why,
            p.scenario_fits_times,
            thousands(p.mix.sessions),
            thousands(p.mix.tokens),
            thousands(p.mix.counters),
            thousands(p.alone.sessions),
            thousands(p.alone.tokens),
            thousands(p.alone.counters),
            thousands(p.alone_at_maxmemory.sessions),
            thousands(p.alone_at_maxmemory.tokens),
            thousands(p.alone_at_maxmemory.counters),
        ));
    }
    for n in &r.notes {
        o.push_str(&format!("- note: {n}\n"));
    }
    o
}

#[derive(Args, Debug)]
pub struct CapacityArgs {
    /// Scenario file (TOML): its keyspace (payload sizes, sessions per user, IPs, endpoints) is
    /// what is measured and projected
    pub scenario: PathBuf,
    /// maxmemory to project for, e.g. 256mb. Default: the target's (CONFIG GET), else the
    /// scenario's [redis] maxmemory.
    #[arg(long, value_name = "SIZE")]
    pub maxmemory: Option<String>,
    /// Share of maxmemory kept free (plus the replication backlog), e.g. 10% or 0.1
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub headroom: String,
    /// Items written per kind for the measurement
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SAMPLES)]
    pub samples: usize,
    /// Output format
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    // Without a URL the measurement runs on a throwaway server with no maxmemory; the limit is
    // projected.
    #[command(flatten)]
    pub target: crate::sweep::ScenarioFlags,
}

/// `loadgen capacity`: exit 0, or 1 when a maxmemory is known and the scenario's keyspace does
/// not fit in it with the headroom.
pub async fn run(args: CapacityArgs, env_url: Option<String>) -> Result<i32, Fatal> {
    let headroom = model::parse_fraction(&args.headroom)
        .map_err(|e| Fatal::usage(format!("--headroom {e}")))?;
    let flag_limit = args
        .maxmemory
        .as_deref()
        .map(model::parse_size)
        .transpose()
        .map_err(|e| Fatal::usage(format!("--maxmemory {e}")))?;
    if !(10..=1_000_000).contains(&args.samples) {
        return Err(Fatal::usage(format!(
            "--samples {}: expected 10 to 1000000 items per kind",
            args.samples
        )));
    }
    let opts = args.target.resolve(&args.scenario, env_url, &[])?;
    let s = &opts.scenario;
    // The measurement needs room: a throwaway server gets no maxmemory; the limit is projected.
    let mut redis_cfg = s.redis.clone();
    redis_cfg.maxmemory = None;
    redis_cfg.maxmemory_policy = None;
    let target = crate::target::resolve(&opts.url, &redis_cfg, opts.tls_ca.as_ref()).await?;
    let limit = match flag_limit {
        Some(bytes) => Some(Limit {
            bytes,
            source: "--maxmemory".into(),
        }),
        None if target.throwaway.is_none() => {
            target_maxmemory(&target.redis).await.map(|bytes| Limit {
                bytes,
                source: "CONFIG GET maxmemory".into(),
            })
        }
        None => s
            .redis
            .maxmemory
            .as_deref()
            .and_then(|m| model::parse_size(m).ok())
            .map(|bytes| Limit {
                bytes,
                source: "scenario [redis] maxmemory".into(),
            }),
    };
    eprintln!(
        "measuring {} samples per kind on {}",
        args.samples, target.url
    );
    let result = report(&target.redis, s, limit, headroom, args.samples).await;
    let shown = target.url.to_string();
    target.close().await;
    let r = result.map_err(|e| Fatal::run(format!("{e} (target {shown})")))?;
    if args.format == "json" {
        let j = serde_json::to_string_pretty(&r).map_err(|e| Fatal::run(e.to_string()))?;
        println!("{j}");
    } else {
        println!(
            "# loadgen capacity: {} on {}\n\n{}",
            s.display_name(),
            shown,
            render_markdown(&r)
        );
    }
    Ok(match &r.projection {
        Some(p) if p.scenario_fits_times < 1.0 => 1,
        _ => 0,
    })
}
