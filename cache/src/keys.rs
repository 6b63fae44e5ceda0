//! The key schema: the only place that turns ids, token hashes, IPs and endpoint names into Redis keys.
//!
//! Placeholders are in `<angle brackets>`; braces are literal (see below).
//!
//! | key | type | written by | TTL rule (every deadline is in Redis's clock) |
//! |---|---|---|---|
//! | `<prefix>:session:<secret>.<deadline>.{<user tag>}` | string: the session as JSON | [`SessionStore`](crate::SessionStore) | `min(idle, deadline − now)` at create; every `get` sets `min(now + idle, deadline)`; `update` keeps it |
//! | `<prefix>:user-sessions:{<user tag>}` | sorted set: member = session key, score = that session's absolute deadline (Unix ms) | `SessionStore` | expires at its highest score (the last moment any listed session can live); members past their deadline are pruned on every create and destroy; deleted by log-out-everywhere and by Redis when it empties |
//! | `<prefix>:token:<sha256(token) as hex>` | string: JSON claims, or the tombstone `!revoked` | [`TokenCache`](crate::TokenCache) | claims expire at the token's `exp`; a tombstone at `exp` + the skew allowance, or `max_token_lifetime` + the allowance when `exp` is unknown, never earlier than it already did |
//! | `<prefix>:ratelimit:<ip>:<endpoint>` | string counter (fixed window), hash of window number → count (sliding window), string arrival time in µs (GCRA) | [`RateLimiter`](crate::RateLimiter) | one window (fixed); until the current window's count stops mattering, ≤ 2 windows (sliding); until the bucket is full again, ≤ 1 window (GCRA) |
//!
//! **The braces are literal.** Redis Cluster hashes only the part of a key between the first `{` and
//! the next `}` (a *hash tag*) when one is present. A session key and its user's index carry the same
//! tag — the *user tag*, 22 characters of URL-safe base64 of the first 128 bits of SHA-256(user id) —
//! so a user's sessions and index always live in one slot, and "log out everywhere" and the index
//! updates are single scripts on a Cluster exactly as on one server. The user tag is part of the
//! session id (`<secret>.<deadline>.<user tag>`), so a store that only has the id (a cookie) can still
//! name the index. Token and rate-limit keys carry no tag: each operation on them touches one key.
//! Operators who shard by hand or read key names should know: a Cluster spreads users, not sessions.
//!
//! The user tag is a pseudonym, not a secret: it names no user in clear (the index key no longer
//! carries the user id), and 128 bits make it collision-free for any real user count; a deliberate
//! collision would need a SHA-256 second preimage.
//!
//! Keeping key construction in one place is what makes "no input can forge another key" checkable:
//! every component is validated here (session ids are a fixed alphabet and length, token hashes are
//! hex, IPs are parsed and re-printed canonically, endpoint names and user ids exclude `:`, `*`,
//! whitespace, braces and control characters), so a hostile value can never step into another key's
//! space, produce a glob pattern or choose its own hash tag.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Default key prefix, as in the guide.
pub const DEFAULT_PREFIX: &str = "authority";

/// Length of a user tag: URL-safe base64 of 16 bytes, unpadded.
pub(crate) const USER_TAG_LEN: usize = 22;

/// The hash tag shared by a user's sessions and index: URL-safe base64 of the first 128 bits of
/// SHA-256(user id). The user id is validated first, as everywhere else.
pub(crate) fn user_tag(user_id: &str) -> Result<String> {
    check_component("user_id", user_id, 256)?;
    let digest = Sha256::digest(user_id.as_bytes());
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// Builds every key the stores use, under one configurable prefix. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySchema {
    prefix: Arc<str>,
}

impl Default for KeySchema {
    fn default() -> Self {
        KeySchema {
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }
}

/// Characters that may appear in a key component chosen by a caller (user ids, endpoint names,
/// prefixes): printable ASCII without `:` (the separator), glob metacharacters, quotes or spaces.
fn is_safe_component_char(c: char) -> bool {
    c.is_ascii_graphic()
        && !matches!(
            c,
            ':' | '*' | '?' | '[' | ']' | '\\' | '"' | '\'' | '{' | '}'
        )
}

pub(crate) fn check_component(field: &'static str, value: &str, max_len: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > max_len {
        return Err(Error::Invalid {
            field,
            reason: format!("is {} bytes, expected at most {max_len}", value.len()),
        });
    }
    if !value.chars().all(is_safe_component_char) {
        return Err(Error::Invalid {
            field,
            reason: "expected printable ASCII without spaces, `:`, `*`, `?`, `[`, `]`, `{`, `}`, quotes or backslashes".into(),
        });
    }
    Ok(())
}

impl KeySchema {
    /// A schema with another prefix (e.g. one per tenant or per test run).
    pub fn new(prefix: &str) -> Result<KeySchema> {
        check_component("key prefix", prefix, 64)?;
        Ok(KeySchema {
            prefix: Arc::from(prefix),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `SCAN MATCH` pattern covering every key of this schema.
    pub fn pattern_all(&self) -> String {
        format!("{}:*", self.prefix)
    }

    /// `SCAN MATCH` pattern for one kind: `session`, `user-sessions`, `token`, `ratelimit`.
    pub fn pattern(&self, kind: &str) -> String {
        format!("{}:{kind}:*", self.prefix)
    }

    /// The key of a session; pass `SessionId::expose()` (validated ids only reach Redis through the
    /// store). The id's last `.`-separated part, the user tag, becomes the key's hash tag.
    pub fn session(&self, id: &str) -> String {
        match id.rsplit_once('.') {
            Some((head, tag)) => format!("{}:session:{head}.{{{tag}}}", self.prefix),
            None => format!("{}:session:{id}", self.prefix),
        }
    }

    /// The key of the index of `user_id`'s sessions (a sorted set, see the module docs).
    pub fn user_sessions(&self, user_id: &str) -> Result<String> {
        Ok(self.user_sessions_by_tag(&user_tag(user_id)?))
    }

    /// The index key for a user tag taken from a session id.
    pub(crate) fn user_sessions_by_tag(&self, tag: &str) -> String {
        format!("{}:user-sessions:{{{tag}}}", self.prefix)
    }

    /// `hash_hex` is a lowercase SHA-256 hex digest computed by the token cache.
    pub(crate) fn token(&self, hash_hex: &str) -> String {
        format!("{}:token:{hash_hex}", self.prefix)
    }

    /// `ip` must come from [`crate::ratelimit::normalize_ip`]; the endpoint is validated here.
    pub(crate) fn ratelimit(&self, ip: &str, endpoint: &str) -> Result<String> {
        check_component("endpoint", endpoint, 64)?;
        Ok(format!("{}:ratelimit:{ip}:{endpoint}", self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_matches_the_guide() {
        let k = KeySchema::default();
        assert_eq!(k.session("abc"), "authority:session:abc");
        assert_eq!(
            k.session("s3cr3t.17.TaG"),
            "authority:session:s3cr3t.17.{TaG}"
        );
        assert_eq!(k.token("ff"), "authority:token:ff");
        assert_eq!(
            k.ratelimit("10.0.0.1", "signin").unwrap(),
            "authority:ratelimit:10.0.0.1:signin"
        );
        assert_eq!(k.pattern_all(), "authority:*");
    }

    #[test]
    fn a_users_sessions_and_index_share_one_hash_tag() {
        let k = KeySchema::default();
        let tag = user_tag("alice@example.com").unwrap();
        assert_eq!(tag.len(), USER_TAG_LEN);
        assert!(
            tag.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(tag, user_tag("bob@example.com").unwrap());
        let index = k.user_sessions("alice@example.com").unwrap();
        assert_eq!(index, format!("authority:user-sessions:{{{tag}}}"));
        let session = k.session(&format!("secret.1700000000000.{tag}"));
        let hash_tag = |key: &str| {
            let open = key.find('{').unwrap();
            let close = open + key[open..].find('}').unwrap();
            key[open + 1..close].to_string()
        };
        assert_eq!(hash_tag(&index), hash_tag(&session));
        assert!(
            !index.contains("alice"),
            "the index key names no user: {index}"
        );
    }

    #[test]
    fn hostile_components_are_refused() {
        let k = KeySchema::default();
        for bad in [
            "",
            "sign:in",
            "a b",
            "a\r\nDEL x",
            "*",
            "x?",
            "[a]",
            "{tag}",
            "é",
            &"x".repeat(65),
        ] {
            assert!(k.ratelimit("1.2.3.4", bad).is_err(), "{bad:?}");
        }
        assert!(k.user_sessions("user:1").is_err());
        assert!(KeySchema::new("auth ority").is_err());
        assert_eq!(
            KeySchema::new("tenant-7").unwrap().session("x"),
            "tenant-7:session:x"
        );
    }
}
