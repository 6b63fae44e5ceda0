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
//! **Keys it controls.** The samples are fresh keys under the scenario's own prefix (so their
//! sizes are the real keys' sizes, and the stores' ACL rule `~<prefix>:*` covers them): sample
//! users are `c<n>` (the load's are `u<n>`, same length), sample IPs come from 100.64.0.0/10 (the
//! load's from 198.18.0.0/15 and 2001:db8::/32), tokens are random per measurement, and any
//! leftover of an interrupted measurement is deleted first. Their TTLs are made far longer than
//! the measurement ([`LONG_TTL`]: session idle and absolute lifetime, token lifetime, the
//! counter's window), so none of them expires while it is measured; they are deleted after.
//!
//! **Others' changes.** `used_memory` is the whole server's, so keys that expire, are evicted or
//! are written by others during a phase would be counted as ours — after a load run, its
//! short-lived rate-limit counters expiring mid-measurement once made a counter "−150 B". Each
//! phase therefore checks what else changed: `expired_keys` and `evicted_keys` (none of them
//! ours), and `DBSIZE` against the keys the phase itself created. A phase disturbed by more than
//! [`BACKGROUND_BOUND`] of its sample (or with a non-positive result) is retried on fresh items,
//! after a pause, up to [`ATTEMPTS`] times within [`ATTEMPTS_TIME`]; then the measurement is refused (exit 3, with the
//! counts) rather than printing a wrong projection. A result takes two clean phases in a row that
//! agree within [`AGREEMENT`]: memory Redis frees on its own (a hash table shrunk in its cron
//! after mass expiry) moves no key count and shows only as a disagreement.
//!
//! Keys already under the prefix (after a run) are counted with `SCAN` and subtracted from the
//! base, so the projection is about the scenario's keyspace, not about what is on the server now.
//! The base is never below the empty server's `used_memory_startup`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use cache::{KeySchema, RateLimiter, Redis, SessionStore, TokenCache};
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

/// The shortest TTL a sample gets: far longer than any measurement.
const LONG_TTL: Duration = Duration::from_secs(3600);
/// Background key changes a phase tolerates, as a share of its sample (at least 1 key).
const BACKGROUND_BOUND: f64 = 0.005;
/// Tries per kind, and the time they may take, before the measurement is refused.
const ATTEMPTS: usize = 12;
const ATTEMPTS_TIME: Duration = Duration::from_secs(20);

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
    payload: Payload,
    /// Random per measurement: item `i`'s payload and token come from `seed ^ i`, so a leftover
    /// token of an earlier measurement is never hit again.
    seed: u64,
    exp: u64,
}

impl Writers {
    fn new(redis: &Redis, s: &Scenario, total: usize) -> Result<Writers> {
        let k = &s.keyspace;
        let per_user = k.sessions_per_user.max(1) as usize;
        let endpoint = k
            .endpoints
            .first()
            .cloned()
            .unwrap_or_else(|| "signin".into());
        let sampling = long_lived(s, &endpoint);
        let Stores {
            sessions,
            tokens,
            limiter,
        } = Stores::new(&sampling, redis)?;
        Ok(Writers {
            sessions,
            tokens,
            limiter,
            prefix: k.prefix.clone(),
            endpoint,
            per_user,
            // Sample users spread over the scenario's account numbers, so ids have the load's
            // lengths; each holds `sessions_per_user` sessions, as the load's accounts do.
            stride: (k.users as usize / total.div_ceil(per_user)).max(1),
            payload: k.payload,
            seed: rand::random(),
            exp: unix_now() + sampling.keyspace.token_ttl.0.as_secs(),
        })
    }

    /// Keys items `range` of `kind` create on a server without them: one each, plus — for
    /// sessions — one index per user not already holding an earlier item.
    fn new_keys(&self, kind: usize, range: Range<usize>) -> f64 {
        let n = range.len() as f64;
        if kind != 0 || range.is_empty() {
            return n;
        }
        let users = (range.start / self.per_user..=(range.end - 1) / self.per_user).count();
        let shared =
            range.start > 0 && (range.start - 1) / self.per_user == range.start / self.per_user;
        n + (users - shared as usize) as f64
    }

    fn rng(&self, i: usize) -> SmallRng {
        SmallRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn token_text(&self, i: usize) -> String {
        Keyspace::new_token(&mut self.rng(i))
    }

    fn user_of(&self, i: usize) -> String {
        format!("c{}", (i / self.per_user) * self.stride)
    }

    fn ip_of(i: usize) -> String {
        format!("100.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 255, i & 255)
    }

    fn token_key(&self, i: usize) -> String {
        let hash = cache::token::token_hash(&self.token_text(i));
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
                    let body = payload(self.payload, &mut self.rng(i));
                    let new = login_session(&self.user_of(i), &Self::ip_of(i), &body);
                    self.sessions
                        .create(new)
                        .await
                        // The key schema owns the session key's shape (it carries a hash tag).
                        .and_then(|(id, _)| Ok(KeySchema::new(&self.prefix)?.session(id.expose())))
                }
                1 => self
                    .tokens
                    .put(
                        &self.token_text(i),
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
        stream::iter(&users)
            .for_each_concurrent(CONCURRENCY, |u| async move {
                let _ = self.sessions.destroy_all_for_user(u).await;
            })
            .await;
        let tokens: Vec<String> = (0..total).map(|i| self.token_key(i)).collect();
        let counters: Vec<String> = (0..total).map(|i| self.counter_key(i)).collect();
        let _ = redis_admin::delete(redis, &tokens).await;
        let _ = redis_admin::delete(redis, &counters).await;
    }
}

/// The scenario as the samples are written: TTLs of at least [`LONG_TTL`] (the shapes, sizes and
/// prefix unchanged), and a limiter that fails closed — a sample counter it could not write must
/// be an error here, not an admission.
fn long_lived(s: &Scenario, endpoint: &str) -> Scenario {
    let mut m = s.clone();
    let k = &mut m.keyspace;
    k.session_idle_timeout.0 = k.session_idle_timeout.0.max(LONG_TTL);
    k.session_absolute_lifetime.0 = k.session_absolute_lifetime.0.max(LONG_TTL);
    k.token_ttl.0 = k.token_ttl.0.max(LONG_TTL);
    m.ratelimit.failure_mode = cache::FailureMode::Closed;
    if let Some(rule) = s.ratelimit.resolved_rules().get(endpoint) {
        m.ratelimit.rules.insert(
            endpoint.to_string(),
            crate::scenario::RuleConfig {
                limit: rule.limit,
                window: crate::scenario::Dur(rule.window.max(LONG_TTL)),
                algorithm: rule.algorithm,
            },
        );
    }
    m
}

/// What else changed on the server during a phase: keys that expired or were evicted (never
/// ours: see [`LONG_TTL`]), and keys written or deleted by others (`DBSIZE` against ours).
struct Background {
    expired: u64,
    evicted: u64,
    others_net: f64,
}

impl Background {
    fn keys(&self) -> f64 {
        (self.expired + self.evicted) as f64 + self.others_net.abs()
    }

    fn describe(&self) -> String {
        format!(
            "{} keys expired, {} evicted, {:+.0} written or deleted by others",
            self.expired, self.evicted, self.others_net
        )
    }
}

/// `(steady used_memory, DBSIZE, expired_keys, evicted_keys)`.
async fn phase_mark(redis: &Redis) -> Result<(f64, f64, f64, f64)> {
    let (u, k) = snapshot(redis).await?;
    let stats = redis_admin::info(redis, "stats")
        .await
        .map_err(|e| Error::redis("INFO stats", "INFO", e))?;
    let n = |f: &str| stats.num(f).unwrap_or(0.0);
    Ok((u, k, n("expired_keys"), n("evicted_keys")))
}

/// Two clean samples of one kind agree: within [`AGREEMENT`] of each other.
fn agree(a: f64, b: f64) -> bool {
    (a - b).abs() <= AGREEMENT * a.max(b)
}

/// How far two clean samples of one kind may differ (relative) for their mean to be the result.
const AGREEMENT: f64 = 0.05;

/// Measures one kind: a warm-up batch, then `n` items on fresh indices until a phase is clean
/// (see the module docs). Returns its cost and its sample's main keys.
async fn measure_kind(
    redis: &Redis,
    w: &Writers,
    kind: usize,
    warm: usize,
    n: usize,
) -> Result<(KindCost, Vec<String>)> {
    w.write(kind, 0..warm).await?;
    let bound = (BACKGROUND_BOUND * n as f64).max(1.0);
    let mut last = String::new();
    let started = Instant::now();
    let mut tries = 0;
    // The last clean phase's cost: a result needs two clean phases in a row that agree. One clean
    // phase can still be wrong without any key of others changing: Redis shrinks a hash table
    // that expiries left mostly empty in its cron, and the memory that frees lands in whichever
    // phase is running (−19 % on token sizes after 60,000 counters expired).
    let mut previous: Option<KindCost> = None;
    for attempt in 0..ATTEMPTS {
        if started.elapsed() > ATTEMPTS_TIME {
            break;
        }
        tries += 1;
        if attempt > 0 {
            // Let a burst of expiries (a previous run's counters) pass.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let range = warm + attempt * n..warm + (attempt + 1) * n;
        let (ua, ka, ea, va) = phase_mark(redis).await?;
        let keys = w.write(kind, range.clone()).await?;
        let (ub, kb, eb, vb) = phase_mark(redis).await?;
        let expected = w.new_keys(kind, range);
        let bg = Background {
            expired: (eb - ea).max(0.0) as u64,
            evicted: (vb - va).max(0.0) as u64,
            others_net: 0.0,
        };
        let bg = Background {
            others_net: (kb - ka) - expected + (bg.expired + bg.evicted) as f64,
            ..bg
        };
        let cost = KindCost {
            bytes: ((ub - ua) - (tables(kb) - tables(ka))) / n as f64,
            keys: expected / n as f64,
        };
        if bg.keys() <= bound && cost.bytes > 0.0 {
            if let Some(p) = previous.filter(|p| agree(p.bytes, cost.bytes)) {
                let mean = KindCost {
                    bytes: (p.bytes + cost.bytes) / 2.0,
                    ..cost
                };
                return Ok((mean, keys));
            }
            last = match previous {
                Some(p) => format!(
                    "two clean samples disagreed: {:.1} and {:.1} B per {}",
                    p.bytes, cost.bytes, KINDS[kind]
                ),
                None => format!(
                    "one clean sample, {:.1} B per {}, with no clean one before it to agree with",
                    cost.bytes, KINDS[kind]
                ),
            };
            previous = Some(cost);
            continue;
        }
        previous = None;
        last = format!(
            "{}; {:.1} B per {} measured",
            bg.describe(),
            cost.bytes,
            KINDS[kind]
        );
    }
    Err(Error::Unmeasurable(format!(
        "others changed the server while loadgen measured {} sizes, in each of {tries} tries over {:.0} s (last: {last}; the bound is {bound:.0} keys per {n}-item sample): measure on a quiet server, or wait until the last run's keys have expired",
        KINDS[kind],
        started.elapsed().as_secs_f64()
    )))
}

/// Writes samples of each kind, measures, deletes them. Per kind, a warm-up batch first absorbs
/// one-time costs that are not per item (the script loaded, the connection's query buffer grown
/// to the pipelined size — together several percent of a 2000-item delta); then `n` items are
/// measured ([`measure_kind`]). Fails (with the reason) when a sample write fails — e.g. the
/// server is full — or others kept changing the server beyond the bound.
pub(crate) async fn measure(redis: &Redis, s: &Scenario, n: usize) -> Result<Measurement> {
    let warm = (n / 4).max(50);
    let total = warm + n * ATTEMPTS;
    let w = Writers::new(redis, s, total)?;
    let schema = workload::schema(&s.keyspace)?;
    // Fresh keys: whatever an interrupted measurement left under these ids goes first.
    w.clean_up(redis, total).await;
    let stats_before = redis_admin::info(redis, "stats")
        .await
        .map_err(|e| Error::redis("INFO stats", "INFO", e))?;
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
    let startup = num(redis, "memory", "used_memory_startup").await?;
    let mut kinds = [KindCost::default(); 3];
    let mut memory_usage_bytes = BTreeMap::new();
    let mut result = Ok(());
    for (kind, name) in KINDS.iter().enumerate() {
        match measure_kind(redis, &w, kind, warm, n).await {
            Ok((cost, keys)) => {
                kinds[kind] = cost;
                let sample = &keys[..keys.len().min(50)];
                memory_usage_bytes
                    .insert(*name, redis_admin::mean_memory_usage(redis, sample).await);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    w.clean_up(redis, total).await;
    result?;

    let stats_after = redis_admin::info(redis, "stats").await.unwrap_or_default();
    let delta = |f: &str| stats_after.increase_since(&stats_before, f);
    let count = |kind: &str| existing.get(kind).copied().unwrap_or(0) as f64;
    let store_keys: f64 = existing.values().sum::<u64>() as f64;
    let store_bytes = count("session") * kinds[0].bytes
        + count("token") * kinds[1].bytes
        + count("ratelimit") * kinds[2].bytes;
    let base = u0 - tables(k0) - store_bytes;
    Ok(Measurement {
        model: Model {
            // Never below the empty server: existing keys that expired between the SCAN and the
            // snapshot would otherwise be subtracted twice.
            base: base.max(startup),
            other_keys: (k0 - store_keys).max(0.0),
            kinds,
        },
        samples: n,
        memory_usage_bytes,
        store_keys_before: existing,
        expired_during: delta("expired_keys"),
        base_clamped: base < startup,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
