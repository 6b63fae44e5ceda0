//! [`SessionStore`]: login sessions with an idle timeout and an absolute lifetime, and a per-user
//! index so that "log out everywhere" finds every session of a user. The keys, their types and TTL
//! rules are in [`crate::keys`].
//!
//! Every operation is one round trip:
//! - `create`: one `EVALSHA` that stores the session (`SET NX PX`), lists it in its user's index and
//!   prunes the index (below);
//! - `get`: `GETEX key PX <idle>`: the read and the idle refresh, on Redis's clock. When the
//!   refresh could pass the absolute deadline — the store's estimate of Redis's clock
//!   ([`crate::clock`]), widened by its error bound, is within one idle timeout of it, or the store
//!   has no estimate — `PEXPIREAT key <deadline> LT` is pipelined after it, capping the TTL there;
//!   a store without a reading younger than a minute also pipelines `TIME` to get one. Still one
//!   round trip. The pair is not a transaction, and need not be: every TTL the store sets is at
//!   most the deadline, so whatever runs between the two (another read, an update, a destroy)
//!   leaves the key expiring by the deadline once the cap has run. Measured against a bare `GET`:
//!   `GETEX` alone 1.04×, with the cap 1.14×, the pair in `MULTI`/`EXEC` 1.30×; the old
//!   `GETEX PXAT <now + idle>` was 1.04× but took `now` from this host's clock, which is what
//!   broke the idle timeout under skew.
//! - `update`: `SET XX KEEPTTL`, so an expired or destroyed session is reported as not found and is
//!   never brought back to life;
//! - `destroy`: one `EVALSHA` that deletes the session and its index entry;
//! - `destroy_all_for_user`: one `EVALSHA` that deletes every listed session and the index.
//!
//! **Log out everywhere is atomic.** The index is updated in the same script as the session it
//! lists, and log-out-everywhere reads the index and deletes what it lists in one script. Redis runs
//! scripts one at a time, so a login racing a logout runs wholly before it (listed, hence deleted) or
//! wholly after it (alive, and listed in the index the next logout reads): no session can slip
//! between the read and the delete, which is what a stolen-account response needs. On a Cluster the
//! same scripts work unchanged because a user's sessions and index share a hash tag (one slot).
//!
//! **The index is bounded by the sessions that can still be alive.** It is a sorted set of session
//! keys scored by their absolute deadline: `destroy` removes its entry, every create and destroy
//! drops entries past their deadline (`ZREMRANGEBYSCORE`), and the index expires at its highest
//! score, so it never outlives the last session it lists. (A session that dies of idleness keeps its
//! entry until its absolute deadline: finding it earlier would cost a lookup per entry per write.)
//!
//! **Every deadline is on Redis's clock.** The idle refresh is relative (`PX`), so Redis's own clock
//! applies it. The absolute deadline is part of the id (below), so it is fixed before the create
//! runs: the store proposes one from its estimate of Redis's clock ([`crate::clock`]) and the create
//! script refuses it, writing nothing, when it is off from Redis's `TIME` + lifetime by more than
//! [`SessionConfig::deadline_tolerance`] (lifetime / 10, within 100 ms..1 s); the store then
//! re-anchors on the time in the refusal and retries. So the absolute lifetime holds to within that
//! tolerance in Redis's clock whatever the application hosts' clocks say, the idle timeout holds
//! exactly, and no read ever deletes a live session (every TTL set is at most the deadline, so a key
//! that still exists is before it). `Session::created_ms` and `last_seen_ms` are in the same
//! estimated Redis clock (this host's clock until the store's first create or read). A step of
//! Redis's own clock, or a failover to a primary whose clock differs, is noticed by the next create
//! (Redis refuses its deadline) or by the first read a minute after the last reading; until then a
//! read far from a deadline may refresh a session up to the step past it.
//!
//! **Cost.** `create` measures 2.3–2.9× a bare `GET` in `cargo bench -p cache` on this project's
//! 2-core machine (15–30 µs round trips, interleaved medians), the same as the previous design
//! (`SET NX` + `SADD` + TTL upkeep in one script) measured beside it, and short of the 1.2× goal.
//! Measured beside a bare `GET` with the same value (1,000 users, medians of 30 interleaved rounds,
//! noisy to ±0.3×): a bare `SET NX PX` 1.1–1.2×; an `EVALSHA` doing only that `SET` 1.45–1.5×;
//! `SET` and `ZADD` with no TTL upkeep or pruning (not correct) 1.7–1.8×; this script 2.0–2.5×
//! (2.3–2.8× when it returned an array instead of one integer); the same writes as `MULTI`/`EXEC`
//! 1.9–2.3×,
//! but a transaction cannot check the deadline against `TIME` before writing, nor stop at a key of
//! the wrong type (its later commands still run). Writing the session value alone costs nearly the
//! whole budget; any index on top spends more.
//!
//! Ids are `<secret>.<deadline>.<user tag>`: 256 bits from the OS CSPRNG as URL-safe base64 (43
//! characters), the session's absolute deadline in Unix milliseconds, and the user tag that makes
//! the key's hash tag. Carrying the deadline in the id costs nothing in safety — changing it changes
//! the key, which then does not exist — and lets every read cap the TTL without reading first.
//! Carrying the tag lets `destroy` name the index from the id alone. An id from outside is parsed by
//! [`SessionId::parse`] before it gets near a key, so a hostile cookie cannot address another key.
//! Ids are secrets: [`SessionId`]'s `Debug` and `Display` never print them.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::{RedisError, Script, Value};
use serde::{Deserialize, Serialize};

use crate::clock::{HostClock, ServerClock};
use crate::connection::Redis;
use crate::error::{Error, Result};
use crate::keys::{KeySchema, user_tag};

mod id;
pub use id::SessionId;

/// Format version of the stored value; bumped on incompatible changes.
pub const SESSION_FORMAT_VERSION: u32 = 1;

/// Longest timeout or lifetime accepted: Redis's expiry arithmetic must not overflow, and a session
/// living longer than this is a misconfiguration.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// A read asks Redis for its clock (one more command in its pipeline) when the store's estimate is
/// older than this, so a step of Redis's clock or a failover to a primary whose clock differs is
/// noticed within it even by a store that only reads.
const READ_RESYNC: Duration = Duration::from_secs(60);
/// Tries of `create` before giving up (a deadline refused by Redis, or an id already taken).
const CREATE_ATTEMPTS: usize = 3;

static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_create.lua")));
static DESTROY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_destroy.lua")));
static DESTROY_ALL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_destroy_all.lua")));

/// Outcomes of the create script (see `lua/session_create.lua`).
const STORED: u64 = 1;
const DEADLINE_REFUSED: u64 = 0;

/// The stored session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unix ms (Redis's clock) after which the session is gone, however active it is.
    pub absolute_expires_ms: u64,
    /// [`SESSION_FORMAT_VERSION`] at the time of writing.
    pub v: u32,
    pub user_id: String,
    /// Unix ms, the store's estimate of Redis's clock at creation.
    pub created_ms: u64,
    /// Last `create` or `update` (a `get` refreshes the idle timeout in Redis, not this field).
    pub last_seen_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Free-form application data: id/access token references, `authenticated`, MFA state...
    #[serde(default)]
    pub data: BTreeMap<String, serde_json::Value>,
}

/// What the application knows when a user signs in.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    pub user_id: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub data: BTreeMap<String, serde_json::Value>,
}

/// Timeouts and limits; defaults are the server's: 60 min idle, 24 h absolute, 16 KiB per value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    pub max_value_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(60 * 60),
            absolute_lifetime: Duration::from_secs(24 * 60 * 60),
            max_value_bytes: 16 * 1024,
        }
    }
}

impl SessionConfig {
    /// How far a session's absolute deadline may be from (Redis's clock at creation + the absolute
    /// lifetime): a tenth of the lifetime, at least 100 ms and at most 1 s. The create script
    /// refuses a deadline further off.
    pub fn deadline_tolerance(&self) -> Duration {
        (self.absolute_lifetime / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// Sessions in Redis. Cheap to clone; clones share the estimate of Redis's clock.
#[derive(Clone, Debug)]
pub struct SessionStore {
    redis: Redis,
    keys: KeySchema,
    config: SessionConfig,
    clock: Arc<ServerClock>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl SessionStore {
    pub fn new(redis: Redis, keys: KeySchema, config: SessionConfig) -> Result<SessionStore> {
        let timeouts = [config.idle_timeout, config.absolute_lifetime];
        if timeouts
            .iter()
            .any(|t| *t < Duration::from_millis(1) || *t > MAX_TIMEOUT)
        {
            return Err(Error::Invalid {
                field: "session timeouts",
                reason: "idle timeout and absolute lifetime must be from 1 ms to 10 years".into(),
            });
        }
        Ok(SessionStore {
            redis,
            keys,
            config,
            clock: Arc::new(ServerClock::new(HostClock::system())),
        })
    }

    /// The same store reading `clock` as this host's wall clock: a test injects a skewed clock to
    /// show that no promise depends on it (see [`crate::clock`]).
    pub fn with_host_clock(mut self, clock: HostClock) -> SessionStore {
        self.clock = Arc::new(ServerClock::new(clock));
        self
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn encode(&self, session: &Session) -> Result<String> {
        let json = serde_json::to_string(session).map_err(|e| Error::Invalid {
            field: "session data",
            reason: e.to_string(),
        })?;
        if json.len() > self.config.max_value_bytes {
            return Err(Error::TooLarge {
                what: "session value",
                size: json.len(),
                max: self.config.max_value_bytes,
            });
        }
        Ok(json)
    }

    /// Stores a new session and returns its fresh id. One round trip, except when Redis refuses the
    /// proposed deadline (the first create after start if this host's clock is off, or after a
    /// clock step on Redis's side) or, astronomically rarely, the id exists: then it retries.
    pub async fn create(&self, new: NewSession) -> Result<(SessionId, Session)> {
        let tag = user_tag(&new.user_id)?;
        let index = self.keys.user_sessions_by_tag(&tag);
        let lifetime = ms(self.config.absolute_lifetime);
        let mut session = Session {
            absolute_expires_ms: 0,
            v: SESSION_FORMAT_VERSION,
            user_id: new.user_id,
            created_ms: 0,
            last_seen_ms: 0,
            client_ip: new.client_ip,
            user_agent: new.user_agent,
            data: new.data,
        };
        let mut conn = self.redis.clone();
        let mut refused = false;
        for _ in 0..CREATE_ATTEMPTS {
            let now = self.clock.now_ms();
            session.created_ms = now;
            session.last_seen_ms = now;
            session.absolute_expires_ms = now + lifetime;
            let value = self.encode(&session)?;
            let id = SessionId::for_user_tag(&tag, session.absolute_expires_ms)?;
            let sent = Instant::now();
            let reply: u64 = CREATE
                .key(self.keys.session(id.expose()))
                .key(&index)
                .arg(value)
                .arg(ms(self.config.idle_timeout))
                .arg(session.absolute_expires_ms)
                .arg(lifetime)
                .arg(ms(self.config.deadline_tolerance()))
                .invoke_async(&mut conn)
                .await?;
            let (redis_ms, outcome) = (reply / 4, reply % 4);
            refused = outcome == DEADLINE_REFUSED;
            self.clock.observe(redis_ms, sent, Instant::now(), refused);
            if outcome == STORED {
                return Ok((id, session));
            }
        }
        Err(Error::Invalid {
            field: "session id",
            reason: if refused {
                "Redis refused the session deadline three times in a row: its clock is moving \
                 by more than the deadline tolerance between requests"
                    .into()
            } else {
                "three random ids in a row already existed: the OS random source is broken".into()
            },
        })
    }

    /// The session, with its idle timeout refreshed (capped at the absolute deadline), or `None`
    /// when it expired (idle or absolute) or was destroyed.
    pub async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        let key = self.keys.session(id.expose());
        let idle = ms(self.config.idle_timeout);
        let estimate = self.clock.estimate(READ_RESYNC);
        // Far from the deadline even if the estimate is off by its whole error bound: a refresh
        // to now + idle cannot pass the deadline, so no cap is needed.
        let far = estimate.is_some_and(|e| id.deadline_ms() > e.now_ms + e.uncertainty_ms + idle);
        // `ignore_errors` keeps a failed command's error in its slot (a key of another type makes
        // GETEX fail), so it is reported as what it is rather than as a pipeline failure.
        let mut pipe = redis::pipe();
        pipe.ignore_errors()
            .cmd("GETEX")
            .arg(&key)
            .arg("PX")
            .arg(idle);
        if !far {
            pipe.cmd("PEXPIREAT")
                .arg(&key)
                .arg(id.deadline_ms())
                .arg("LT");
        }
        if estimate.is_none() {
            pipe.cmd("TIME");
        }
        let mut conn = self.redis.clone();
        let sent = Instant::now();
        let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        if estimate.is_none()
            && let Some(time) = replies.pop()
            && let Ok((secs, micros)) = redis::from_redis_value::<(u64, u64)>(time)
        {
            // Forced: this reading is here to renew the anchor.
            let redis_ms = secs * 1000 + micros / 1000;
            self.clock.observe(redis_ms, sent, Instant::now(), true);
        }
        let raw: Option<String> = match replies.into_iter().next() {
            Some(Value::ServerError(e)) => return Err(RedisError::from(e).into()),
            Some(reply) => redis::from_redis_value(reply).map_err(RedisError::from)?,
            None => None,
        };
        raw.as_deref().map(decode).transpose()
    }

    /// Replaces the stored value, keeping its TTL. `NotFound` if the session has expired or was
    /// destroyed: an update never resurrects a session. The value must stay the same user's.
    pub async fn update(&self, id: &SessionId, session: &Session) -> Result<()> {
        if user_tag(&session.user_id)? != id.user_tag() {
            return Err(Error::Invalid {
                field: "session.user_id",
                reason: "a session cannot be moved to another user; create a new one".into(),
            });
        }
        // No deadline check here: `SET XX` finds no key once the session is past its deadline,
        // which Redis judges on its own clock.
        let mut session = session.clone();
        session.last_seen_ms = self.clock.now_ms();
        session.v = SESSION_FORMAT_VERSION;
        let value = self.encode(&session)?;
        let mut conn = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.session(id.expose()))
            .arg(value)
            .arg("XX")
            .arg("KEEPTTL")
            .query_async(&mut conn)
            .await?;
        match set {
            Some(_) => Ok(()),
            None => Err(Error::NotFound("session")),
        }
    }

    /// Deletes one session and its entry in the user's index. Returns whether it existed.
    pub async fn destroy(&self, id: &SessionId) -> Result<bool> {
        let mut conn = self.redis.clone();
        let n: i64 = DESTROY
            .key(self.keys.session(id.expose()))
            .key(self.keys.user_sessions_by_tag(id.user_tag()))
            .invoke_async(&mut conn)
            .await?;
        Ok(n > 0)
    }

    /// "Log out everywhere": deletes every session of `user_id` and its index, atomically (see the
    /// module docs). Returns how many sessions existed.
    pub async fn destroy_all_for_user(&self, user_id: &str) -> Result<usize> {
        let tag = user_tag(user_id)?;
        let mut conn = self.redis.clone();
        let n: i64 = DESTROY_ALL
            .key(self.keys.user_sessions_by_tag(&tag))
            .arg(self.keys.session(""))
            .arg(format!(".{{{tag}}}"))
            .invoke_async(&mut conn)
            .await?;
        Ok(n.max(0) as usize)
    }
}

fn decode(raw: &str) -> Result<Session> {
    let session: Session = serde_json::from_str(raw).map_err(|e| Error::Corrupt {
        what: "session",
        cause: e.to_string(),
    })?;
    if session.v > SESSION_FORMAT_VERSION {
        return Err(Error::Corrupt {
            what: "session",
            cause: format!(
                "format version {} is newer than this build understands ({SESSION_FORMAT_VERSION})",
                session.v
            ),
        });
    }
    Ok(session)
}
