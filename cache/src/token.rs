//! [`TokenCache`]: validated access-token claims at `<prefix>:token:<sha256(token)>`, so a resource
//! server can check a bearer token with one `GET` instead of a database or introspection call.
//!
//! - The raw token is never stored, sent as a key, or logged: the key is the SHA-256 of the token, and
//!   [`TokenCache`]'s methods take the token only to hash it.
//! - `put` stores the claims until `exp` using `SET NX PXAT <exp> GET` (Redis ≥ 7.0): one round
//!   trip that also tells whether the token was already cached or revoked. The expiry is the token's
//!   own `exp`, which Redis applies with its clock: no host clock is involved. A token that has
//!   already expired by this host's clock is refused, and so is one whose `exp` is further away than
//!   [`TokenCache::max_token_lifetime`] (a misconfigured authorization server, or forged claims).
//! - `get` is one `GET`. Claims whose `exp` has passed by this host's clock are not returned even if
//!   the key still exists (this host's clock is behind Redis's).
//! - `revoke` is one `EVALSHA` that replaces the claims with a tombstone. Because `put` is `SET NX`,
//!   a put racing a revoke can never bring the token back, as long as the tombstone outlives every
//!   moment the token could be accepted. So it lives, on Redis's clock, until `exp` +
//!   [`TokenCache::skew_allowance`] when the token's `exp` is known (the allowance covers the skew
//!   between the clock that wrote `exp` and Redis's, and the leeway validators grant past `exp`), or
//!   for `max_token_lifetime` + the allowance when it is not (a token alive now was issued no earlier
//!   than now, so it ends before that); and never less than the key already had to live. The
//!   revoking host's clock plays no part: an instance whose clock is ahead cannot shorten a
//!   tombstone. The guarantee for unknown `exp` rests on `max_token_lifetime` being at least the
//!   longest access-token lifetime the authorization server issues; `put` enforces it on every token
//!   it sees.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::HostClock;
use crate::connection::Redis;
use crate::error::{Error, Result};
use crate::keys::KeySchema;

/// Stored in place of claims once a token is revoked. Not valid JSON, so it cannot be mistaken for claims.
const TOMBSTONE: &str = "!revoked";
/// Latest `exp` taken at face value (9999-12-31T23:59:59Z).
const MAX_EXP_SECS: u64 = 253_402_300_799;
/// Longest token we accept (JWTs with many claims stay far below this).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

static REVOKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/token_revoke.lua")));

/// What the authorization server knows about an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Result of [`TokenCache::put`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The same token was already cached (its claims are left as they were).
    AlreadyCached,
    /// The token was revoked; it stays revoked.
    Revoked,
}

/// Result of [`TokenCache::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    Valid(Claims),
    Revoked,
    /// Not cached (never put, expired, or evicted): ask the authorization server.
    Unknown,
}

/// Token claims in Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TokenCache {
    redis: Redis,
    keys: KeySchema,
    clock: HostClock,
    /// The longest lifetime of any access token the authorization server issues (default 24 h).
    /// `put` refuses claims expiring further out; a revocation without a known `exp` lasts this long
    /// plus the skew allowance.
    pub max_token_lifetime: Duration,
    /// How long past `exp` a revoked token's tombstone stays (default 5 min): the clock skew between
    /// the authorization server and Redis, plus the leeway validators grant past `exp`.
    pub skew_allowance: Duration,
}

/// Lowercase hex SHA-256 of the token: the only form in which a token reaches Redis.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_token(token: &str) -> Result<()> {
    if token.is_empty() {
        return Err(Error::Invalid {
            field: "token",
            reason: "must not be empty".into(),
        });
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            what: "token",
            size: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(())
}

impl TokenCache {
    pub fn new(redis: Redis, keys: KeySchema) -> TokenCache {
        TokenCache {
            redis,
            keys,
            clock: HostClock::system(),
            max_token_lifetime: Duration::from_secs(24 * 60 * 60),
            skew_allowance: Duration::from_secs(5 * 60),
        }
    }

    /// The same cache reading `clock` as this host's wall clock (tests inject a skewed one).
    pub fn with_host_clock(mut self, clock: HostClock) -> TokenCache {
        self.clock = clock;
        self
    }

    fn key(&self, token: &str) -> Result<String> {
        check_token(token)?;
        Ok(self.keys.token(&token_hash(token)))
    }

    /// Caches `claims` for `token` until `claims.exp`.
    pub async fn put(&self, token: &str, claims: &Claims) -> Result<PutOutcome> {
        let key = self.key(token)?;
        let now = self.clock.now_ms();
        let exp_ms = claims.exp.saturating_mul(1000);
        if exp_ms <= now {
            return Err(Error::Invalid {
                field: "claims.exp",
                reason: "the token has already expired; expired tokens are never cached".into(),
            });
        }
        let longest = self.max_token_lifetime + self.skew_allowance;
        if exp_ms - now > longest.as_millis() as u64 {
            return Err(Error::Invalid {
                field: "claims.exp",
                reason: format!(
                    "the token expires in {} s, later than max_token_lifetime + skew_allowance \
                     ({} s) allows: raise TokenCache::max_token_lifetime to the longest lifetime \
                     your authorization server issues, or a revocation may not outlive the token",
                    (exp_ms - now) / 1000,
                    longest.as_secs()
                ),
            });
        }
        let value = serde_json::to_string(claims).map_err(|e| Error::Invalid {
            field: "claims",
            reason: e.to_string(),
        })?;
        let mut conn = self.redis.clone();
        let previous: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("NX")
            .arg("PXAT")
            .arg(exp_ms)
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(match previous.as_deref() {
            None => PutOutcome::Stored,
            Some(TOMBSTONE) => PutOutcome::Revoked,
            Some(_) => PutOutcome::AlreadyCached,
        })
    }

    /// Valid claims, revoked, or unknown — one `GET`.
    pub async fn lookup(&self, token: &str) -> Result<TokenStatus> {
        let key = self.key(token)?;
        let mut conn = self.redis.clone();
        let raw: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        match raw.as_deref() {
            None => Ok(TokenStatus::Unknown),
            Some(TOMBSTONE) => Ok(TokenStatus::Revoked),
            Some(raw) => {
                let claims: Claims = serde_json::from_str(raw).map_err(|e| Error::Corrupt {
                    what: "token claims",
                    cause: e.to_string(),
                })?;
                if claims.exp.saturating_mul(1000) <= self.clock.now_ms() {
                    Ok(TokenStatus::Unknown)
                } else {
                    Ok(TokenStatus::Valid(claims))
                }
            }
        }
    }

    /// The claims if the token is cached, unexpired and not revoked.
    pub async fn get(&self, token: &str) -> Result<Option<Claims>> {
        Ok(match self.lookup(token).await? {
            TokenStatus::Valid(c) => Some(c),
            _ => None,
        })
    }

    /// Revokes `token`. `exp` (Unix seconds), when known, bounds how long the tombstone must live;
    /// see the module docs for how long it does. Returns whether claims were cached.
    pub async fn revoke(&self, token: &str, exp: Option<u64>) -> Result<bool> {
        let key = self.key(token)?;
        let allowance = self.skew_allowance.as_millis() as u64;
        // Clamped to the year 9999: beyond any real `exp`, and within Lua's exact integers.
        let known_until = exp.map_or(String::new(), |exp| {
            (exp.min(MAX_EXP_SECS) * 1000 + allowance).to_string()
        });
        let unknown_for = (self.max_token_lifetime + self.skew_allowance).as_millis() as u64;
        let mut conn = self.redis.clone();
        let was_cached: i64 = REVOKE
            .key(key)
            .arg(TOMBSTONE)
            .arg(known_until)
            .arg(unknown_for)
            .invoke_async(&mut conn)
            .await?;
        Ok(was_cached == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_the_hash_never_the_token() {
        let k = KeySchema::default();
        let token = "eyJhbGciOi.secret.sig";
        let key = k.token(&token_hash(token));
        assert!(!key.contains(token));
        assert_eq!(key.len(), "authority:token:".len() + 64);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn empty_and_huge_tokens_are_refused() {
        assert!(check_token("").is_err());
        assert!(matches!(
            check_token(&"x".repeat(MAX_TOKEN_BYTES + 1)),
            Err(Error::TooLarge { .. })
        ));
    }
}
