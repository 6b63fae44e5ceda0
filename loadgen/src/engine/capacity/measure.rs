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

use cache::{RateLimiter, Redis, SessionStore, TokenCache};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::model::{KindCost, Model, table_bytes as tables};
use crate::engine::keyspace::Keyspace;
use crate::engine::redis_admin::{self, ScanBudget};
use crate::engine::workload::{self, Stores, login_session};
use crate::error::{Error, Result};
use crate::report::capacity::Measurement;
use crate::scenario::{Payload, Scenario};

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

async fn num(redis: &Redis, section: &str, field: &str) -> Result<f64> {
    redis_admin::info(redis, section)
        .await
        .map_err(|e| Error::redis(format!("INFO {section}"), "INFO", e))?
        .num(field)
        .ok_or_else(|| Error::Unmeasurable(format!("INFO {section} has no {field}")))
}

async fn dbsize(redis: &Redis) -> Result<f64> {
    redis_admin::dbsize(redis)
        .await
        .map(|n| n as f64)
        .map_err(|e| Error::redis("DBSIZE", "DBSIZE", e))
}

/// `used_memory` once it has stopped moving (two reads 100 ms apart agree within 1 KiB), or the
/// last read after 3 s. A rehash that just ended frees the old table; this waits for that.
async fn steady_used_memory(redis: &Redis) -> Result<f64> {
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
async fn snapshot(redis: &Redis) -> Result<(f64, f64)> {
    Ok((steady_used_memory(redis).await?, dbsize(redis).await?))
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
    fn new(redis: &Redis, s: &Scenario, total: usize) -> Result<Writers> {
        let k = &s.keyspace;
        let per_user = k.sessions_per_user.max(1) as usize;
        let mut rng = SmallRng::seed_from_u64(s.seed ^ 0xCAFE);
        // Fail closed: a sample counter the limiter could not write must be an error here, not
        // an admission.
        let mut closed = s.clone();
        closed.ratelimit.failure_mode = cache::FailureMode::Closed;
        let Stores {
            sessions,
            tokens,
            limiter,
        } = Stores::new(&closed, redis)?;
        Ok(Writers {
            sessions,
            tokens,
            limiter,
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
            token_texts: (0..total).map(|_| Keyspace::new_token(&mut rng)).collect(),
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
    async fn write(&self, kind: usize, range: Range<usize>) -> Result<Vec<String>> {
        let what = || format!("writing sample {}s", KINDS[kind]);
        let one = |i: usize| async move {
            let stored = match kind {
                0 => {
                    let new = login_session(&self.user_of(i), &Self::ip_of(i), &self.payloads[i]);
                    self.sessions
                        .create(new)
                        .await
                        .map(|(id, _)| format!("{}:session:{}", self.prefix, id.expose()))
                }
                1 => self
                    .tokens
                    .put(
                        &self.token_texts[i],
                        &workload::claims(self.user_of(i), self.exp),
                    )
                    .await
                    .map(|_| self.token_key(i)),
                _ => match self.limiter.check(&Self::ip_of(i), &self.endpoint).await {
                    // Failed closed: Redis did not count it.
                    Ok(d) if d.degraded.is_some() => {
                        return Err(Error::Unmeasurable(format!(
                            "{}: the limiter could not count them ({})",
                            what(),
                            d.degraded.map_or(cache::ErrorKind::Other, |g| g.kind())
                        )));
                    }
                    r => r.map(|_| self.counter_key(i)),
                },
            };
            stored.map_err(|e| Error::redis(what(), ["EVALSHA", "SET", "EVALSHA"][kind], e))
        };
        stream::iter(range)
            .map(one)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Deletes items `0..total` of every kind.
    async fn clean_up(&self, redis: &Redis, total: usize) {
        let users: std::collections::BTreeSet<String> =
            (0..total).map(|i| self.user_of(i)).collect();
        for u in &users {
            let _ = self.sessions.destroy_all_for_user(u).await;
        }
        let tokens: Vec<String> = (0..total).map(|i| self.token_key(i)).collect();
        let counters: Vec<String> = (0..total).map(|i| self.counter_key(i)).collect();
        let _ = redis_admin::delete(redis, &tokens).await;
        let _ = redis_admin::delete(redis, &counters).await;
    }
}

/// Writes samples of each kind, measures, deletes them. Per kind, a warm-up batch first absorbs
/// one-time costs that are not per item (the script loaded, the connection's query buffer grown
/// to the pipelined size — together several percent of a 2000-item delta); then `n` items are
/// measured. Fails (with the reason) when a sample write fails — e.g. the server is full — or
/// keys were evicted while measuring.
pub(crate) async fn measure(redis: &Redis, s: &Scenario, n: usize) -> Result<Measurement> {
    let warm = (n / 4).max(50);
    let total = warm + n;
    let w = Writers::new(redis, s, total)?;
    let schema = workload::schema(&s.keyspace)?;
    let stats_before = redis_admin::info(redis, "stats").await.unwrap_or_default();
    let budget = ScanBudget {
        max_keys: 5_000_000,
        time: Duration::from_secs(10),
    };
    let existing = redis_admin::key_stats(redis, &schema, budget)
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
            let sample = &keys[..keys.len().min(50)];
            memory_usage_bytes.insert(*name, redis_admin::mean_memory_usage(redis, sample).await);
            Ok::<_, Error>(())
        };
        result = step.await;
        if result.is_err() {
            break;
        }
    }
    w.clean_up(redis, total).await;
    result?;

    let stats_after = redis_admin::info(redis, "stats").await.unwrap_or_default();
    let delta = |f: &str| stats_after.increase_since(&stats_before, f);
    if delta("evicted_keys") > 0 {
        return Err(Error::Unmeasurable(format!(
            "the server evicted {} keys while loadgen measured key sizes: it is too full to measure (use an empty server, or one with room)",
            delta("evicted_keys")
        )));
    }
    let count = |kind: &str| existing.get(kind).copied().unwrap_or(0) as f64;
    let store_keys: f64 = existing.values().sum::<u64>() as f64;
    let store_bytes = count("session") * kinds[0].bytes
        + count("token") * kinds[1].bytes
        + count("ratelimit") * kinds[2].bytes;
    Ok(Measurement {
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
