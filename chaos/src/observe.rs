//! The last look at the system, once the workload has stopped and the topology has settled.
//!
//! "Settled" means a client can write again through the same URL the workload used (for Sentinel:
//! the sentinels name a primary that itself reports `role:master`). Only then are acknowledged
//! writes looked for: reading during a failover would count writes as lost that are merely
//! unreachable. Everything here goes through a fresh `cache::Redis` handle, i.e. through the same
//! failover-following path an application would use.

use std::collections::HashMap;
use std::time::Duration;

use cache::{KeySchema, RedisUrl, TokenStatus};
use serde::{Deserialize, Serialize};

use crate::client::{Client, RATE_WINDOW};
use crate::db::Db;
use crate::experiment::{TopologyKind, WorkloadSpec};
use crate::history::{AckedWrite, Clock, History, OpKind};

/// What the final reads found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FinalState {
    /// When the system had settled (ms on the experiment clock), or `None` if it never did.
    pub settled_ms: Option<f64>,
    /// Acknowledged writes (of every kind) that were read back.
    pub writes_checked: usize,
    /// Indices into the write registry of acknowledged writes the reads did not find: a session
    /// gone, an update not visible, a token unknown, a revocation whose tombstone is gone.
    pub lost_writes: Vec<usize>,
    /// Revocations whose token validates again (also in `lost_writes`): the security hole.
    pub revocations_valid_again: Vec<usize>,
    /// `authority:*` keys without a TTL.
    pub keys_without_ttl: usize,
    /// Rate-limit counters whose TTL exceeds their window.
    pub counters_beyond_window: usize,
    /// Rate-limit counters seen by the scan.
    pub counters_scanned: usize,
    pub keys_scanned: usize,
    /// Why the final reads could not run (or finish), if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Waits (≤ 30 s) until the topology serves writes again through `url` (the workload's), then
/// reads every acknowledged write back.
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
    // A cluster pipeline goes to one node: one key per round trip there.
    let per_call = if db.spec.kind == TopologyKind::Cluster {
        1
    } else {
        200
    };
    if let Err(e) = read_back(&client, history, per_call, &mut state).await {
        state.error = Some(e);
        return state;
    }
    let pattern = KeySchema::default().pattern_all();
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

/// What the final read saw of one session: present, and whether the workload's update shows.
#[derive(Clone, Copy, Default)]
struct SessionSeen {
    present: bool,
    authenticated: bool,
}

async fn read_back(
    client: &Client,
    history: &History,
    per_call: usize,
    state: &mut FinalState,
) -> Result<(), String> {
    let writes = history.writes();
    let sessions = read_sessions(client, history, &writes, per_call).await?;
    let mut tokens: HashMap<&str, TokenStatus> = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        let kept = match (w.kind, w.session, w.token.as_deref()) {
            (OpKind::SessionCreate, Some(s), _) => sessions.get(&s).is_some_and(|x| x.present),
            (OpKind::SessionUpdate, Some(s), _) => {
                sessions.get(&s).is_some_and(|x| x.authenticated)
            }
            (OpKind::TokenPut | OpKind::TokenRevoke, _, Some(token)) => {
                if !tokens.contains_key(token) {
                    let status = client
                        .tokens
                        .lookup(token)
                        .await
                        .map_err(|e| format!("looking up tokens: {e}"))?;
                    tokens.insert(token, status);
                }
                let status = &tokens[token];
                if w.kind == OpKind::TokenPut {
                    !matches!(status, TokenStatus::Unknown)
                } else {
                    if matches!(status, TokenStatus::Valid(_)) {
                        state.revocations_valid_again.push(i);
                    }
                    matches!(status, TokenStatus::Revoked)
                }
            }
            _ => continue,
        };
        state.writes_checked += 1;
        if !kept {
            state.lost_writes.push(i);
        }
    }
    Ok(())
}

/// `GET` of every session a write refers to, `per_call` per pipeline (raw reads: the store's own
/// `get` would refresh the TTL). A read that fails is asked again up to 3 times: `GET` is
/// idempotent, and a timeout on a loaded machine must not cost the run its verdict.
async fn read_sessions(
    client: &Client,
    history: &History,
    writes: &[AckedWrite],
    per_call: usize,
) -> Result<HashMap<usize, SessionSeen>, String> {
    let keys = KeySchema::default();
    let mut wanted: Vec<usize> = writes.iter().filter_map(|w| w.session).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut seen = HashMap::new();
    let mut conn = client.redis.clone();
    for chunk in wanted.chunks(per_call) {
        let mut pipe = redis::pipe();
        let mut asked = Vec::new();
        for &i in chunk {
            if let Some(id) = history.session_at(i).and_then(|s| s.id) {
                pipe.cmd("GET").arg(keys.session(id.expose()));
                asked.push(i);
            }
        }
        let mut values = pipe.query_async::<Vec<Option<String>>>(&mut conn).await;
        for _ in 0..3 {
            if values.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            values = pipe.query_async(&mut conn).await;
        }
        let values = values.map_err(|e| format!("reading sessions back: {e}"))?;
        for (i, v) in asked.into_iter().zip(values) {
            let authenticated = v
                .as_deref()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                .is_some_and(|json| json["data"]["authenticated"] == serde_json::Value::Bool(true));
            let present = v.is_some();
            seen.insert(
                i,
                SessionSeen {
                    present,
                    authenticated,
                },
            );
        }
    }
    Ok(seen)
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
                if k.contains(":ratelimit:") {
                    state.counters_scanned += 1;
                    if ttl > window_ms || ttl == -1 {
                        state.counters_beyond_window += 1;
                    }
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
