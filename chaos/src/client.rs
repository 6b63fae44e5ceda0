//! client: the system under test as the OAuth server uses it — the real `cache` stores over one
//! `cache::Redis` handle — and the classification of each call into ok / fail / indeterminate.
//!
//! Each generator worker owns one [`Client`] (its own handle, hence its own connection and its
//! own view of which node is primary), like one instance of the OAuth server would.
//!
//! Durable writes (`wait_replicas > 0`): after a write is acknowledged, `WAIT n timeout` asks the
//! primary how many replicas have it. `WAIT` answers for the *connection* it runs on: on a fresh
//! connection it returns at once with every replica counted (verified with redis-cli: `WAIT 1 300`
//! returned 1 with the replica stopped, 0 on the write's own connection). So the write counts as
//! `ok` only if `WAIT` provably ran on the write's connection: `CLIENT ID` is read before the
//! write ([`Client::mark`]) and again in one pipeline with the `WAIT` (a pipeline goes out on one
//! connection and is never re-sent); same id on the same node with no primary change in between
//! means the same connection, hence the write's. Anything else — a reconnect, a switch, a failed
//! `CLIENT ID` — makes the outcome indeterminate, never ok.

use std::collections::BTreeMap;
use std::time::Duration;

use cache::{
    Claims, ConnectOptions, FailureMode, IpPolicy, KeySchema, RateLimiter, Redis, RedisUrl, Rule,
    SessionConfig, SessionStore, TokenCache,
};

use crate::experiment::WorkloadSpec;
use crate::history::Outcome;

/// The endpoint the workload rate-limits, with a limit high enough never to refuse it: the
/// experiment checks the counter's TTL and window, not the decision.
pub const ENDPOINT: &str = "token";
/// The limiter window; counters must never live longer than this.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The stores of one worker.
#[derive(Clone)]
pub struct Client {
    pub redis: Redis,
    pub sessions: SessionStore,
    pub short_sessions: SessionStore,
    pub tokens: TokenCache,
    pub limiter: RateLimiter,
    wait_replicas: u32,
    wait_timeout: Duration,
}

/// How a worker's handle connects: the experiment's response timeout, and Sentinel's
/// `+switch-master` followed as an application would.
pub fn connect_options(w: &WorkloadSpec) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        response_timeout: w.response_timeout,
        tls_ca_pem: None,
        watch_switch_master: true,
    }
}

fn store_config(ttl: Duration) -> SessionConfig {
    // idle == absolute, so a session expires exactly `ttl` after creation however often it is
    // read: the TTL checks can then predict its expiry.
    SessionConfig {
        idle_timeout: ttl,
        absolute_lifetime: ttl,
        ..SessionConfig::default()
    }
}

impl Client {
    /// A worker's stores over a fresh handle to `url`. An error means the experiment cannot start.
    pub async fn connect(url: &RedisUrl, w: &WorkloadSpec) -> Result<Client, cache::Error> {
        let redis = Redis::connect(url, &connect_options(w)).await?;
        let keys = KeySchema::default();
        let rules = BTreeMap::from([(
            ENDPOINT.to_string(),
            Rule {
                limit: 1_000_000,
                window: RATE_WINDOW,
                algorithm: cache::Algorithm::FixedWindow,
            },
        )]);
        Ok(Client {
            sessions: SessionStore::new(redis.clone(), keys.clone(), store_config(w.session_ttl))?,
            short_sessions: SessionStore::new(
                redis.clone(),
                keys.clone(),
                store_config(w.short_session_ttl),
            )?,
            tokens: TokenCache::new(redis.clone(), keys.clone()),
            limiter: RateLimiter::new(
                redis.clone(),
                keys,
                rules,
                FailureMode::Open,
                IpPolicy::default(),
            )?,
            redis,
            wait_replicas: w.wait_replicas,
            wait_timeout: w.wait_timeout,
        })
    }

    /// Port of the primary this handle uses right now (Sentinel), or `None` (standalone).
    pub fn node_port(&self) -> Option<u16> {
        self.redis.current_primary().map(|n| n.port)
    }

    /// How many primary moves the handle has seen; compared around a durable write.
    pub fn primary_changes(&self) -> u64 {
        self.redis.primary_changes()
    }

    /// Before a write, with durable writes on: the connection the handle uses now, as (node,
    /// `CLIENT ID`); `None` without `WAIT` or if it cannot be read.
    pub async fn mark(&self) -> Option<(Option<u16>, i64)> {
        if self.wait_replicas == 0 {
            return None;
        }
        let mut conn = self.redis.clone();
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some((self.node_port(), id))
    }

    /// The outcome of a write the store acknowledged, after `WAIT` if configured.
    /// `changes_before` is [`primary_changes`](Self::primary_changes) and `mark` is
    /// [`mark`](Self::mark), both taken before the write.
    pub async fn confirm_write(
        &self,
        changes_before: u64,
        mark: Option<(Option<u16>, i64)>,
    ) -> (Outcome, Option<String>) {
        if self.wait_replicas == 0 {
            return (Outcome::Ok, None);
        }
        let Some((node_before, id_before)) = mark else {
            return (
                Outcome::Indeterminate,
                Some("WAIT not trusted: the write's connection could not be identified".into()),
            );
        };
        let mut conn = self.redis.clone();
        let answer: Result<(i64, i64), _> = redis::pipe()
            .cmd("CLIENT")
            .arg("ID")
            .cmd("WAIT")
            .arg(self.wait_replicas)
            .arg(self.wait_timeout.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        let moved = self.primary_changes() != changes_before || self.node_port() != node_before;
        match answer {
            Ok((id, n)) if id == id_before && !moved && n >= i64::from(self.wait_replicas) => {
                (Outcome::Ok, None)
            }
            Ok((id, n)) if id != id_before || moved => (
                Outcome::Indeterminate,
                Some(format!(
                    "WAIT answered {n} on another connection than the write's"
                )),
            ),
            Ok((_, n)) => (
                Outcome::Indeterminate,
                Some(format!("WAIT: only {n} of {} replicas", self.wait_replicas)),
            ),
            Err(e) => (Outcome::Indeterminate, Some(format!("WAIT failed: {e}"))),
        }
    }

    /// `PTTL` of this client IP's counter for [`ENDPOINT`], read with a command of its own.
    pub async fn counter_pttl(&self, ip: &str) -> Option<i64> {
        let key = format!(
            "{}:ratelimit:{ip}:{ENDPOINT}",
            KeySchema::default().prefix()
        );
        let mut conn = self.redis.clone();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .ok()
    }

    /// Claims for a synthetic token valid for `ttl`.
    pub fn claims(user: &str, ttl: Duration) -> Claims {
        Claims {
            user_id: user.into(),
            client_id: "chaos".into(),
            scope: "openid".into(),
            exp: expiry_in(ttl),
        }
    }
}

/// Unix time, in seconds, `ttl` from now: a synthetic token's `exp`.
pub fn expiry_in(ttl: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + ttl).as_secs()
}
