//! How many sessions, cached tokens and rate-limit counters fit in a `maxmemory`, measured on the
//! real server rather than guessed from value sizes: what `loadgen capacity` prints, and what
//! `run`, `sweep` and `evict` add to their results.
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

pub(crate) mod measure;
pub(crate) mod model;

use cache::Redis;

use super::progress::Progress;
use super::redis_admin;
use crate::error::{Error, Result};
use crate::report::capacity::{
    CapacityReport, Counts, DEFAULT_HEADROOM, Headroom, Projection, SCHEMA_VERSION,
};
use crate::scenario::Scenario;

/// Items written per kind by `loadgen capacity`.
pub(crate) const DEFAULT_SAMPLES: usize = 2000;
/// Items per kind when the projection is added to run and sweep results (fast, a little noisier).
pub(crate) const RESULTS_SAMPLES: usize = 1000;

const HEADROOM_WHY: &str = "kept free inside maxmemory: client query/output buffers, the script cache and a keyspace table doubling (both tables exist while it rehashes) are counted against maxmemory; the replication backlog too, once a replica connected. Replica output buffers beyond the backlog, the AOF buffer, fragmentation and fork copy-on-write are NOT counted against maxmemory: leave host RAM above maxmemory for them.";

/// The scenario's steady-state keyspace (see [`CapacityReport::scenario`]).
pub(crate) fn scenario_counts(s: &Scenario) -> Counts {
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

/// The `maxmemory` to project for, and where it came from (`--maxmemory`, `CONFIG GET maxmemory`...).
pub(crate) struct Limit {
    pub(crate) bytes: u64,
    pub(crate) source: String,
}

/// Measures and projects. `limit` is the maxmemory to project for, if any.
pub(crate) async fn report(
    redis: &Redis,
    s: &Scenario,
    limit: Option<Limit>,
    headroom: f64,
    samples: usize,
) -> Result<CapacityReport> {
    let measured = measure::measure(redis, s, samples).await?;
    let m = &measured.model;
    let mut notes = Vec::new();
    if measured.expired_during > 0 {
        notes.push(format!(
            "{} of others' keys expired while measuring; each size was measured in a phase they disturbed by at most 0.5 % of its sample",
            measured.expired_during
        ));
    }
    if measured.base_clamped {
        notes.push("the server's base came out below an empty server's (keys expired while it was read); the empty server's used_memory_startup is used".into());
    }
    let backlog = redis_admin::config_number(redis, "repl-backlog-size")
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
            mix: Counts::scaled(unit, fits),
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
/// [`RESULTS_SAMPLES`] per kind. `None` (with a warning) when it cannot be measured; an ACL
/// refusal is an error (exit 3), as everywhere.
pub(crate) async fn for_results(
    redis: &Redis,
    s: &Scenario,
    progress: &Progress,
) -> Result<Option<CapacityReport>> {
    let limit = redis_admin::maxmemory(redis).await.map(|bytes| Limit {
        bytes,
        source: "CONFIG GET maxmemory".into(),
    });
    match report(redis, s, limit, DEFAULT_HEADROOM, RESULTS_SAMPLES).await {
        Ok(r) => Ok(Some(r)),
        Err(e @ Error::NoPermission { .. }) => Err(e),
        Err(e) => {
            progress.warn(format!("no memory projection: {e}"));
            Ok(None)
        }
    }
}
