//! [`SessionStore`]: login sessions at `{prefix}:session:{id}` with an idle timeout and an absolute
//! lifetime, plus a per-user index so "log out everywhere" can find every session of a user.
//!
//! Every operation is one round trip:
//! - `create`: one `EVALSHA` that does `SET NX PX` and adds the id to the user's index (on a Cluster
//!   the index lives in another slot, so there it is a `SET NX PX` followed by a one-key script);
//! - `get`: one `GETEX key PXAT min(now + idle, absolute deadline)`: the read and the idle refresh in
//!   one native command, never pushing the key's life past the absolute deadline. The deadline is
//!   part of the id (below), so it is known before the read. (A Lua script reading the deadline from
//!   the value did the same in one round trip but cost ~1.3× a bare `GET` on the server; `GETEX`
//!   costs the same as `GET`.)
//! - `update`: `SET XX KEEPTTL`, so an expired or destroyed session is reported as not found and is
//!   never brought back to life;
//! - `destroy`: `DEL`.
//!
//! Ids are `<secret>.<deadline>`: 256 bits from the OS CSPRNG as URL-safe base64 (43 characters), a
//! dot, and the session's absolute deadline in Unix milliseconds. Carrying the deadline in the id
//! costs nothing in safety — changing it changes the key, which then does not exist — and lets every
//! read cap the TTL without reading first. An id from outside is parsed by [`SessionId::parse`]
//! before it gets near a key, so a hostile cookie cannot address another key. Ids are secrets:
//! [`SessionId`]'s `Debug` and `Display` never print them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use redis::Script;
use serde::{Deserialize, Serialize};

use crate::connection::Redis;
use crate::error::{Error, Result};
use crate::keys::KeySchema;
use crate::now_ms;

/// Format version of the stored value; bumped on incompatible changes.
pub const SESSION_FORMAT_VERSION: u32 = 1;

const ID_BYTES: usize = 32;
const SECRET_LEN: usize = 43; // base64url without padding of 32 bytes
/// Longest id: secret, dot, and a deadline of up to 13 digits (Unix ms until the year 2286).
const MAX_ID_LEN: usize = SECRET_LEN + 1 + 13;

static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_create.lua")));
static INDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_index.lua")));

/// A session id: 256 random bits (URL-safe base64) and the absolute deadline. Never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId {
    text: String,
    deadline_ms: u64,
}

fn invalid_id(reason: String) -> Error {
    Error::Invalid {
        field: "session id",
        reason,
    }
}

impl SessionId {
    /// A fresh id from the operating system's CSPRNG for a session that ends at `deadline_ms`.
    pub fn generate(deadline_ms: u64) -> Result<SessionId> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| invalid_id(format!("the OS random number generator failed: {e}")))?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(SessionId {
            text: format!("{secret}.{deadline_ms}"),
            deadline_ms,
        })
    }

    /// Validates an id that came from outside (a cookie, a header): 43 characters of
    /// `A-Z a-z 0-9 - _`, a `.`, and 1 to 13 digits. The error never repeats the input.
    pub fn parse(s: &str) -> Result<SessionId> {
        if s.len() > MAX_ID_LEN {
            return Err(invalid_id(format!(
                "expected at most {MAX_ID_LEN} characters, got {}",
                s.len()
            )));
        }
        let Some((secret, deadline)) = s.split_once('.') else {
            return Err(invalid_id(
                "expected <43 characters>.<deadline digits>".into(),
            ));
        };
        if secret.len() != SECRET_LEN
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid_id(format!(
                "expected {SECRET_LEN} characters of A-Z, a-z, 0-9, `-`, `_` before the `.`"
            )));
        }
        if deadline.is_empty()
            || deadline.len() > 13
            || !deadline.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid_id("expected 1 to 13 digits after the `.`".into()));
        }
        let deadline_ms = deadline
            .parse()
            .map_err(|_| invalid_id("expected 1 to 13 digits after the `.`".into()))?;
        Ok(SessionId {
            text: s.to_string(),
            deadline_ms,
        })
    }

    /// Unix ms after which this session is gone however active it is.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The id itself, to put in a cookie. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(***)")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The stored session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unix ms after which the session is gone, however active it is.
    pub absolute_expires_ms: u64,
    /// [`SESSION_FORMAT_VERSION`] at the time of writing.
    pub v: u32,
    pub user_id: String,
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

/// Sessions in Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionStore {
    redis: Redis,
    keys: KeySchema,
    config: SessionConfig,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl SessionStore {
    pub fn new(redis: Redis, keys: KeySchema, config: SessionConfig) -> Result<SessionStore> {
        if config.idle_timeout < Duration::from_millis(1)
            || config.absolute_lifetime < Duration::from_millis(1)
        {
            return Err(Error::Invalid {
                field: "session timeouts",
                reason: "idle timeout and absolute lifetime must be at least 1 ms".into(),
            });
        }
        Ok(SessionStore {
            redis,
            keys,
            config,
        })
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

    /// Stores a new session and returns its fresh id. Retries with a new id on the (astronomically
    /// unlikely) collision.
    pub async fn create(&self, new: NewSession) -> Result<(SessionId, Session)> {
        let user_key = self.keys.user_sessions(&new.user_id)?;
        let now = now_ms();
        let session = Session {
            absolute_expires_ms: now + ms(self.config.absolute_lifetime),
            v: SESSION_FORMAT_VERSION,
            user_id: new.user_id,
            created_ms: now,
            last_seen_ms: now,
            client_ip: new.client_ip,
            user_agent: new.user_agent,
            data: new.data,
        };
        let value = self.encode(&session)?;
        let ttl = ms(self.config.idle_timeout.min(self.config.absolute_lifetime));
        let index_ttl = ms(self.config.absolute_lifetime);
        let mut conn = self.redis.clone();
        for _ in 0..3 {
            let id = SessionId::generate(session.absolute_expires_ms)?;
            let key = self.keys.session(id.expose());
            let stored: bool = if self.redis.is_cluster() {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await?;
                if set.is_some() {
                    let _: i64 = INDEX
                        .key(&user_key)
                        .arg(id.expose())
                        .arg(index_ttl)
                        .invoke_async(&mut conn)
                        .await?;
                }
                set.is_some()
            } else {
                CREATE
                    .key(&key)
                    .key(&user_key)
                    .arg(&value)
                    .arg(ttl)
                    .arg(id.expose())
                    .arg(index_ttl)
                    .invoke_async::<i64>(&mut conn)
                    .await?
                    == 1
            };
            if stored {
                return Ok((id, session));
            }
        }
        Err(Error::Invalid {
            field: "session id",
            reason: "three random ids in a row already existed: the OS random source is broken"
                .into(),
        })
    }

    /// The session, with its idle timeout refreshed, or `None` when it expired (idle or absolute) or
    /// was destroyed.
    pub async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        let now = now_ms();
        let expire_at = (now + ms(self.config.idle_timeout)).min(id.deadline_ms());
        if expire_at <= now {
            // Past the absolute deadline: every TTL this store sets ends there, so the key is gone.
            return Ok(None);
        }
        let mut conn = self.redis.clone();
        let raw: Option<String> = redis::cmd("GETEX")
            .arg(self.keys.session(id.expose()))
            .arg("PXAT")
            .arg(expire_at)
            .query_async(&mut conn)
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let session = decode(&raw)?;
        // Redis enforces the deadline already; this guards against a server clock behind ours.
        if session.absolute_expires_ms <= now_ms() {
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Replaces the stored value, keeping its TTL. `NotFound` if the session has expired or was
    /// destroyed: an update never resurrects a session.
    pub async fn update(&self, id: &SessionId, session: &Session) -> Result<()> {
        if session.absolute_expires_ms <= now_ms() {
            return Err(Error::NotFound("session"));
        }
        let mut session = session.clone();
        session.last_seen_ms = now_ms();
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

    /// Deletes one session. Returns whether it existed. Its id stays in the user's index until that
    /// index expires or `destroy_all_for_user` runs; a dangling id there is harmless.
    pub async fn destroy(&self, id: &SessionId) -> Result<bool> {
        let mut conn = self.redis.clone();
        let n: i64 = redis::cmd("DEL")
            .arg(self.keys.session(id.expose()))
            .query_async(&mut conn)
            .await?;
        Ok(n > 0)
    }

    /// "Log out everywhere": deletes every session of `user_id` and its index. Two round trips
    /// (read the index, delete all), so a session created concurrently may survive; it is not in the
    /// index snapshot we read. Returns how many sessions existed.
    pub async fn destroy_all_for_user(&self, user_id: &str) -> Result<usize> {
        let index = self.keys.user_sessions(user_id)?;
        let mut conn = self.redis.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&index)
            .query_async(&mut conn)
            .await?;
        // Only ids this store could have written become keys.
        let keys: Vec<String> = ids
            .iter()
            .filter_map(|id| SessionId::parse(id).ok())
            .map(|id| self.keys.session(id.expose()))
            .collect();
        let mut deleted = 0usize;
        if !keys.is_empty() {
            let n: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            deleted = n.max(0) as usize;
        }
        let _: i64 = redis::cmd("DEL").arg(&index).query_async(&mut conn).await?;
        Ok(deleted)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_256_bit_url_safe_distinct_and_carry_the_deadline() {
        let a = SessionId::generate(1_700_000_000_123).unwrap();
        let b = SessionId::generate(1_700_000_000_123).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SECRET_LEN + 14);
        assert!(a.expose().ends_with(".1700000000123"));
        let parsed = SessionId::parse(a.expose()).unwrap();
        assert_eq!(parsed, a);
        assert_eq!(parsed.deadline_ms(), 1_700_000_000_123);
        assert_eq!(format!("{a:?} {a}"), "SessionId(***) ***");
    }

    #[test]
    fn hostile_ids_are_refused_without_echo() {
        let secret = "a".repeat(SECRET_LEN);
        let cases = [
            String::new(),
            "short".into(),
            secret.clone(),
            format!("{secret}."),
            format!("{secret}.12a"),
            format!("{secret}.12345678901234"),
            format!("{}:x.1", "a".repeat(41)),
            format!("{}\r\n.1", "a".repeat(41)),
            format!("{}*.1", "a".repeat(42)),
            format!("{secret}.1:authority:token:x"),
            format!("{secret}.1.2"),
        ];
        for bad in &cases {
            let err = SessionId::parse(bad).unwrap_err().to_string();
            assert!(bad.len() < 6 || !err.contains(bad.as_str()), "{err}");
        }
    }
}
