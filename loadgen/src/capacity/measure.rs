//! Measuring what one session, token and rate-limit counter cost on the real server.
//!
//! `MEMORY USAGE` alone undercounts: it reports the key, the value and `sizeof(dictEntry)`, but not
//! the entry in the `expires` table that every store key has, not the allocator's rounding of the
//! dict entry, not the keyspace tables, and not a session's share of its user's index set. Filling
//! a 64 MB server with sessions showed it off by well over 5 %. So the cost of each kind is measured
//! the way the limit is enforced — by `used_memory`:
//!
//! 1. wait until `used_memory` is steady (a rehash in progress still holds two tables);
//! 2. write N items of one kind through the real stores ([`cache::SessionStore`],
//!    [`cache::TokenCache`], [`cache::RateLimiter`]) with the scenario's shapes: payload sizes,
//!    sessions per user, the login's session fields, the token's claims, the first endpoint's rule;
//! 3. wait again; `(Δused_memory − Δtables) / N` is the item's cost, with the tables' growth
//!    computed from `DBSIZE` ([`super::model`]);
//! 4. delete the samples.
//!
//! The sample ids cannot collide with the load's own: sample users are `c<n>` (the load's are
//! `u<n>`, same length), sample IPs come from 100.64.0.0/10 (the load's from 198.18.0.0/15 and
//! 2001:db8::/32). `MEMORY USAGE` of sample keys is kept alongside, for comparison.
//!
//! Keys already under the prefix (after a run) are counted with `SCAN` and subtracted from the
//! base, so the projection is about the scenario's keyspace, not about what is on the server now.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use cache::{Claims, IpPolicy, KeySchema, NewSession, RateLimiter, Redis, SessionConfig};
use cache::{SessionStore, TokenCache};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::model::{KindCost, Model, table_bytes as tables};
use crate::observe;
use crate::scenario::{KeyspaceConfig, Payload, Scenario};

/// What was measured, per kind, with `MEMORY USAGE` beside it.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub model: Model,
    /// Items written per kind.
    pub samples: usize,
    /// Mean `MEMORY USAGE` of the sample's main keys per kind (session key, token, counter).
    pub memory_usage_bytes: BTreeMap<&'static str, f64>,
    /// Store keys under the prefix before sampling, by kind (subtracted from the base).
    pub store_keys_before: BTreeMap<String, u64>,
    /// Keys that expired during the measurement: each freed memory the deltas did not see.
    pub expired_during: u64,
}

/// The session a login writes (as `loadgen`'s `login` op does): user, IP, agent, the
/// authenticated flag, e-mail, MFA state and the scenario's application payload.
pub fn realistic_session(user_id: &str, ip: &str, payload: &str) -> NewSession {
    let data = BTreeMap::from([
        ("authenticated".to_string(), serde_json::Value::Bool(true)),
        ("email".into(), format!("{user_id}@example.test").into()),
        ("mfa".into(), "none".into()),
        ("data".into(), payload.into()),
    ]);
    NewSession {
        user_id: user_id.to_string(),
        client_ip: Some(ip.to_string()),
        user_agent: Some("loadgen".into()),
        data,
    }
}

/// A payload of the scenario's size (fixed or uniform in its range).
pub fn payload(p: Payload, rng: &mut SmallRng) -> String {
    let len = match p {
        Payload::Fixed(n) => n,
        Payload::Range { min, max } => rng.random_range(min..=max),
    };
    (0..len)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// The session store with the scenario's timeouts and a value limit that fits its payloads.
pub fn session_store(redis: &Redis, k: &KeyspaceConfig) -> Result<SessionStore, String> {
    let keys = KeySchema::new(&k.prefix).map_err(|e| format!("keyspace.prefix: {e}"))?;
    SessionStore::new(
        redis.clone(),
        keys,
        SessionConfig {
            idle_timeout: k.session_idle_timeout.0,
            absolute_lifetime: k.session_absolute_lifetime.0,
            max_value_bytes: k.payload.max() + 4096,
        },
    )
    .map_err(|e| format!("keyspace: {e}"))
}

async fn num(redis: &Redis, section: &str, field: &str) -> Result<f64, String> {
    observe::info(redis, section)
        .await
        .map_err(|e| format!("INFO {section}: {e}"))?
        .num(field)
        .ok_or_else(|| format!("INFO {section} has no {field}"))
}

async fn dbsize(redis: &Redis) -> Result<f64, String> {
    let mut c = redis.clone();
    redis::cmd("DBSIZE")
        .query_async::<u64>(&mut c)
        .await
        .map(|n| n as f64)
        .map_err(|e| format!("DBSIZE: {}", cache::Error::from(e)))
}

/// `used_memory` once it has stopped moving (two reads 100 ms apart agree within 1 KiB), or the
/// last read after 3 s. A rehash that just ended frees the old table; this waits for that.
async fn steady_used_memory(redis: &Redis) -> Result<f64, String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = num(redis, "memory", "used_memory").await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = num(redis, "memory", "used_memory").await?;
        if (now - last).abs() < 1024.0 || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// `(steady used_memory, DBSIZE)`.
async fn snapshot(redis: &Redis) -> Result<(f64, f64), String> {
    Ok((steady_used_memory(redis).await?, dbsize(redis).await?))
}

async fn memory_usage(redis: &Redis, keys: &[String]) -> f64 {
    let mut total = 0.0;
    let mut n = 0.0;
    for k in keys.iter().take(50) {
        let mut c = redis.clone();
        if let Ok(Some(b)) = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async::<Option<u64>>(&mut c)
            .await
        {
            total += b as f64;
            n += 1.0;
        }
    }
    if n > 0.0 { total / n } else { 0.0 }
}

async fn delete(redis: &Redis, keys: &[String]) {
    for chunk in keys.chunks(500) {
        let mut c = redis.clone();
        let _ = redis::cmd("DEL")
            .arg(chunk)
            .query_async::<i64>(&mut c)
            .await;
    }
}

const CONCURRENCY: usize = 32;

/// The three kinds, in [`Model::kinds`] order.
const KINDS: [&str; 3] = ["session", "token", "counter"];

/// Writes sample items through the real stores; item `i` of a kind is always the same item.
struct Writers {
    sessions: SessionStore,
    tokens: TokenCache,
    limiter: RateLimiter,
    prefix: String,
    endpoint: String,
    per_user: usize,
    stride: usize,
    payloads: Vec<String>,
    token_texts: Vec<String>,
    exp: u64,
}

impl Writers {
    fn new(redis: &Redis, s: &Scenario, total: usize) -> Result<Writers, String> {
        let k = &s.keyspace;
        let schema = KeySchema::new(&k.prefix).map_err(|e| format!("keyspace.prefix: {e}"))?;
        let per_user = k.sessions_per_user.max(1) as usize;
        let mut rng = SmallRng::seed_from_u64(s.seed ^ 0xCAFE);
        Ok(Writers {
            sessions: session_store(redis, k)?,
            tokens: TokenCache::new(redis.clone(), schema.clone()),
            limiter: RateLimiter::new(
                redis.clone(),
                schema,
                s.ratelimit.resolved_rules(),
                cache::FailureMode::Closed,
                IpPolicy::default(),
            )
            .map_err(|e| format!("ratelimit: {e}"))?,
            prefix: k.prefix.clone(),
            endpoint: k
                .endpoints
                .first()
                .cloned()
                .unwrap_or_else(|| "signin".into()),
            per_user,
            // Sample users spread over the scenario's account numbers, so ids have the load's
            // lengths; each holds `sessions_per_user` sessions, as the load's accounts do.
            stride: (k.users as usize / total.div_ceil(per_user)).max(1),
            payloads: (0..total).map(|_| payload(k.payload, &mut rng)).collect(),
            token_texts: (0..total)
                .map(|_| crate::keyspace::Keyspace::new_token(&mut rng))
                .collect(),
            exp: unix_now() + k.token_ttl.0.as_secs(),
        })
    }

    fn user_of(&self, i: usize) -> String {
        format!("c{}", (i / self.per_user) * self.stride)
    }

    fn ip_of(i: usize) -> String {
        format!("100.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 255, i & 255)
    }

    fn token_key(&self, i: usize) -> String {
        let hash = cache::token::token_hash(&self.token_texts[i]);
        format!("{}:token:{hash}", self.prefix)
    }

    fn counter_key(&self, i: usize) -> String {
        format!(
            "{}:ratelimit:{}:{}",
            self.prefix,
            Self::ip_of(i),
            self.endpoint
        )
    }

    /// Writes items `range` of `kind`; returns their main keys.
    async fn write(&self, kind: usize, range: Range<usize>) -> Result<Vec<String>, String> {
        let one = |i: usize| async move {
            match kind {
                0 => {
                    let new =
                        realistic_session(&self.user_of(i), &Self::ip_of(i), &self.payloads[i]);
                    let (id, _) = self.sessions.create(new).await?;
                    // The key schema owns the session key's shape (its hash tag).
                    Ok(KeySchema::new(&self.prefix)?.session(id.expose()))
                }
                1 => {
                    let claims = Claims {
                        user_id: self.user_of(i),
                        client_id: "loadgen".into(),
                        scope: "openid profile".into(),
                        exp: self.exp,
                    };
                    self.tokens
                        .put(&self.token_texts[i], &claims)
                        .await
                        .map(|_| self.token_key(i))
                }
                _ => self
                    .limiter
                    .check(&Self::ip_of(i), &self.endpoint)
                    .await
                    .map(|_| self.counter_key(i)),
            }
        };
        stream::iter(range)
            .map(one)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
            .map_err(|e: cache::Error| format!("writing sample {}s: {e}", KINDS[kind]))
    }

    /// Deletes items `0..total` of every kind.
    async fn clean_up(&self, redis: &Redis, total: usize) {
        let users: std::collections::BTreeSet<String> =
            (0..total).map(|i| self.user_of(i)).collect();
        for u in &users {
            let _ = self.sessions.destroy_all_for_user(u).await;
        }
        delete(
            redis,
            &(0..total).map(|i| self.token_key(i)).collect::<Vec<_>>(),
        )
        .await;
        delete(
            redis,
            &(0..total).map(|i| self.counter_key(i)).collect::<Vec<_>>(),
        )
        .await;
    }
}

/// Writes samples of each kind, measures, deletes them. Per kind, a warm-up batch first absorbs
/// one-time costs that are not per item (the script loaded, the connection's query buffer grown
/// to the pipelined size — together several percent of a 2000-item delta); then `n` items are
/// measured. Fails (with the reason) when a sample write fails — e.g. the server is full — or
/// keys were evicted while measuring.
pub async fn measure(redis: &Redis, s: &Scenario, n: usize) -> Result<Measured, String> {
    let warm = (n / 4).max(50);
    let total = warm + n;
    let w = Writers::new(redis, s, total)?;
    let schema = KeySchema::new(&s.keyspace.prefix).map_err(|e| format!("keyspace.prefix: {e}"))?;
    let stats_before = observe::info(redis, "stats").await.unwrap_or_default();
    let existing = crate::doctor::scan_keys(redis, &schema, 5_000_000, Duration::from_secs(10))
        .await
        .per_kind
        .into_iter()
        .map(|(kind, st)| (kind, st.keys))
        .collect::<BTreeMap<_, _>>();
    let (u0, k0) = snapshot(redis).await?;
    let mut kinds = [KindCost::default(); 3];
    let mut memory_usage_bytes = BTreeMap::new();
    let mut result = Ok(());
    for (kind, name) in KINDS.iter().enumerate() {
        let step = async {
            w.write(kind, 0..warm).await?;
            let (ua, ka) = snapshot(redis).await?;
            let keys = w.write(kind, warm..total).await?;
            let (ub, kb) = snapshot(redis).await?;
            kinds[kind] = KindCost {
                bytes: ((ub - ua) - (tables(kb) - tables(ka))) / n as f64,
                keys: (kb - ka) / n as f64,
            };
            memory_usage_bytes.insert(*name, memory_usage(redis, &keys).await);
            Ok::<_, String>(())
        };
        result = step.await;
        if result.is_err() {
            break;
        }
    }
    w.clean_up(redis, total).await;
    result?;

    let stats_after = observe::info(redis, "stats").await.unwrap_or_default();
    let delta = |f: &str| stats_after.increase_since(&stats_before, f);
    if delta("evicted_keys") > 0 {
        return Err(format!(
            "the server evicted {} keys while loadgen measured key sizes: it is too full to measure (use an empty server, or one with room)",
            delta("evicted_keys")
        ));
    }
    let count = |kind: &str| existing.get(kind).copied().unwrap_or(0) as f64;
    let store_keys: f64 = existing.values().sum::<u64>() as f64;
    let store_bytes = count("session") * kinds[0].bytes
        + count("token") * kinds[1].bytes
        + count("ratelimit") * kinds[2].bytes;
    Ok(Measured {
        model: Model {
            base: u0 - tables(k0) - store_bytes,
            other_keys: (k0 - store_keys).max(0.0),
            kinds,
        },
        samples: n,
        memory_usage_bytes,
        store_keys_before: existing,
        expired_during: delta("expired_keys"),
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
