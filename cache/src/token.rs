//! [`TokenCache`]: validated access-token claims at `{prefix}:token:{sha256(token)}`, so a resource
//! server can check a bearer token with one `GET` instead of a database or introspection call.
//!
//! - The raw token is never stored, sent as a key, or logged: the key is the SHA-256 of the token, and
//!   [`TokenCache`]'s methods take the token only to hash it.
//! - `put` stores the claims with `TTL = exp − now` using `SET NX PX GET` (Redis ≥ 7.0): one round trip
//!   that also tells whether the token was already cached or revoked. A token that has already
//!   expired is refused.
//! - `get` is one `GET`. Claims whose `exp` has passed are not returned even if the key still exists
//!   (clock skew between this host and Redis, or a TTL rounded up).
//! - `revoke` is one `EVALSHA` that replaces the claims with a tombstone living at least as long as
//!   the token could. Because `put` is `SET NX`, a put racing a revoke can never bring the token back.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connection::Redis;
use crate::error::{Error, Result};
use crate::keys::KeySchema;
use crate::now_ms;

/// Stored in place of claims once a token is revoked. Not valid JSON, so it cannot be mistaken for claims.
const TOMBSTONE: &str = "!revoked";
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
    /// How long a revocation of a token we know nothing about blocks a later `put`.
    pub revoke_unknown_for: Duration,
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
            revoke_unknown_for: Duration::from_secs(24 * 60 * 60),
        }
    }

    fn key(&self, token: &str) -> Result<String> {
        check_token(token)?;
        Ok(self.keys.token(&token_hash(token)))
    }

    /// Caches `claims` for `token` until `claims.exp`.
    pub async fn put(&self, token: &str, claims: &Claims) -> Result<PutOutcome> {
        let key = self.key(token)?;
        let now = now_ms();
        let exp_ms = claims.exp.saturating_mul(1000);
        if exp_ms <= now {
            return Err(Error::Invalid {
                field: "claims.exp",
                reason: "the token has already expired; expired tokens are never cached".into(),
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
            .arg("PX")
            .arg(exp_ms - now)
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
                if claims.exp.saturating_mul(1000) <= now_ms() {
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
    /// otherwise it lives for `revoke_unknown_for` or the cached token's remaining TTL, whichever is
    /// longer. Returns whether claims were cached.
    pub async fn revoke(&self, token: &str, exp: Option<u64>) -> Result<bool> {
        let key = self.key(token)?;
        let now = now_ms();
        let lifetime = match exp {
            Some(exp) => exp.saturating_mul(1000).saturating_sub(now).max(1000),
            None => self.revoke_unknown_for.as_millis() as u64,
        };
        let mut conn = self.redis.clone();
        let was_cached: i64 = REVOKE
            .key(key)
            .arg(TOMBSTONE)
            .arg(lifetime)
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
