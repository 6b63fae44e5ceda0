//! The last look at the system, once the workload has stopped and the topology has settled.
//!
//! "Settled" means a client can write again through the same URL the workload used (for Sentinel:
//! the sentinels name a primary that itself reports `role:master`). Only then are acknowledged
//! writes looked for: reading during a failover would count writes as lost that are merely
//! unreachable. Everything here goes through a fresh `cache::Redis` handle, i.e. through the same
//! failover-following path an application would use.

use std::time::Duration;

use cache::{KeySchema, RedisUrl, TokenStatus};
use serde::Serialize;

use crate::client::{Client, RATE_WINDOW};
use crate::db::Db;
use crate::experiment::{TopologyKind, WorkloadSpec};
use crate::history::{Clock, History};

/// What the final reads found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FinalState {
    /// When the system had settled (ms on the experiment clock), or `None` if it never did.
    pub settled_ms: Option<f64>,
    /// Registry indices of acknowledged long sessions that are gone.
    pub missing_sessions: Vec<usize>,
    /// Acknowledged long sessions that were looked for.
    pub checked_sessions: usize,
    /// Revoked tokens whose lookup says `Valid` again.
    pub revocations_lost: usize,
    /// Revoked tokens whose tombstone is gone (lookup `Unknown`: the application asks the
    /// authorization server, so not a security hole, but worth knowing).
    pub revocations_forgotten: usize,
    pub revocations_checked: usize,
    /// `authority:*` keys without a TTL.
    pub keys_without_ttl: usize,
    /// Rate-limit counters whose TTL exceeds their window.
    pub counters_beyond_window: usize,
    pub keys_scanned: usize,
    /// Why the final reads could not run, if they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Waits (≤ 30 s) until the topology serves writes again through `url` (the workload's), then
/// reads everything back.
pub async fn final_state(
    db: &Db,
    url: &RedisUrl,
    workload: &WorkloadSpec,
    clock: Clock,
    history: &History,
) -> FinalState {
    let mut state = FinalState::default();
    let client = match settle(db, url, workload).await {
        Ok(c) => c,
        Err(e) => {
            state.error = Some(e);
            return state;
        }
    };
    state.settled_ms = Some(clock.now());
    let now = clock.now();
    let ttl_ms = workload.session_ttl.as_secs_f64() * 1000.0;
    let keys = KeySchema::default();
    let mut conn = client.redis.clone();
    for chunk in history
        .sessions()
        .into_iter()
        .enumerate()
        .filter(|(_, s)| !s.short && s.created_ms + ttl_ms > now)
        .collect::<Vec<_>>()
        // A cluster pipeline goes to one node: one key per round trip there.
        .chunks(if db.spec.kind == TopologyKind::Cluster {
            1
        } else {
            200
        })
    {
        let mut pipe = redis::pipe();
        for (_, s) in chunk {
            pipe.cmd("EXISTS").arg(keys.session(s.id.expose()));
        }
        // EXISTS is idempotent: a read timed out on a loaded machine is simply asked again.
        let mut found = pipe.query_async::<Vec<i64>>(&mut conn).await;
        for _ in 0..3 {
            if found.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            found = pipe.query_async::<Vec<i64>>(&mut conn).await;
        }
        match found {
            Ok(found) => {
                state.checked_sessions += chunk.len();
                for ((i, _), f) in chunk.iter().zip(found) {
                    if f == 0 {
                        state.missing_sessions.push(*i);
                    }
                }
            }
            Err(e) => {
                state.error = Some(format!("reading sessions back: {e}"));
                return state;
            }
        }
    }
    for t in history.revoked_tokens() {
        match client.tokens.lookup(&t.token).await {
            Ok(TokenStatus::Valid(_)) => state.revocations_lost += 1,
            Ok(TokenStatus::Unknown) => state.revocations_forgotten += 1,
            Ok(TokenStatus::Revoked) => {}
            Err(e) => {
                state.error = Some(format!("looking up revoked tokens: {e}"));
                return state;
            }
        }
        state.revocations_checked += 1;
    }
    let pattern = keys.pattern_all();
    let scanned = if db.spec.kind == TopologyKind::Cluster {
        scan_cluster(db, &pattern, &mut state).await
    } else {
        scan_ttls(&mut client.redis.clone(), &pattern, &mut state).await
    };
    if let Err(e) = scanned {
        state.error = Some(format!("scanning {pattern} keys: {e}"));
    }
    state
}

async fn settle(db: &Db, url: &RedisUrl, workload: &WorkloadSpec) -> Result<Client, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::from("not tried");
    while tokio::time::Instant::now() < deadline {
        let primary_ok = match db.spec.kind {
            TopologyKind::Standalone => true,
            TopologyKind::Cluster => db.cluster_settled().await,
            TopologyKind::Sentinel => match db.sentinel_primary().await {
                Some(port) => db.role(port).await.as_deref() == Some("master"),
                None => false,
            },
        };
        if primary_ok {
            match Client::connect(url, workload).await {
                Ok(c) if c.redis.ping().await.is_ok() => return Ok(c),
                Ok(_) => last = "PING failed".into(),
                Err(e) => last = e.to_string(),
            }
        } else {
            last = "the sentinels name no primary that reports role:master".into();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the topology did not settle within 30 s: {last}"))
}

/// SCAN `pattern` (every key of the stores) on the primary: keys without TTL, rate-limit counters
/// beyond their window.
async fn scan_ttls(
    conn: &mut impl redis::aio::ConnectionLike,
    pattern: &str,
    state: &mut FinalState,
) -> redis::RedisResult<()> {
    let window_ms = RATE_WINDOW.as_millis() as i64;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = pipe.query_async(conn).await?;
            for (k, ttl) in keys.iter().zip(ttls) {
                state.keys_scanned += 1;
                if ttl == -1 {
                    state.keys_without_ttl += 1;
                }
                if k.contains(":ratelimit:") && ttl > window_ms {
                    state.counters_beyond_window += 1;
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// [`scan_ttls`] on every primary of a cluster (each holds only its own slots' keys).
async fn scan_cluster(db: &Db, pattern: &str, state: &mut FinalState) -> redis::RedisResult<()> {
    let view = db.cluster_view().await.unwrap_or_default();
    for n in view
        .iter()
        .filter(|n| n.master && !n.fail && !n.slots.is_empty())
    {
        let mut conn = db.connection(n.port).await?;
        scan_ttls(&mut conn, pattern, state).await?;
    }
    Ok(())
}
