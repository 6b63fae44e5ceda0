//! The key schema: the only place that turns ids, token hashes, IPs and endpoint names into Redis keys.
//!
//! ```text
//! {prefix}:session:{session_id}              SessionStore, one JSON value, TTL = idle timeout
//! {prefix}:user-sessions:{user_id}           SessionStore, SET of a user's session ids, TTL = lifetime
//! {prefix}:token:{sha256(token) as hex}      TokenCache, JSON claims or a revocation tombstone
//! {prefix}:ratelimit:{ip}:{endpoint}         RateLimiter, counter / window hash / GCRA arrival time
//! ```
//!
//! Keeping key construction in one place is what makes "no input can forge another key" checkable:
//! every component is validated here (session ids are a fixed alphabet and length, token hashes are
//! hex, IPs are parsed and re-printed canonically, endpoint names and user ids exclude `:`, `*`,
//! whitespace and control characters), so a hostile value can never step into another key's space
//! or produce a glob pattern.

use std::sync::Arc;

use crate::error::{Error, Result};

/// Default key prefix, as in the guide.
pub const DEFAULT_PREFIX: &str = "authority";

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

    /// The key of a session; pass `SessionId::expose()` (validated ids only reach Redis through the store).
    pub fn session(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }

    pub(crate) fn user_sessions(&self, user_id: &str) -> Result<String> {
        check_component("user_id", user_id, 256)?;
        Ok(format!("{}:user-sessions:{user_id}", self.prefix))
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
        assert_eq!(k.token("ff"), "authority:token:ff");
        assert_eq!(
            k.ratelimit("10.0.0.1", "signin").unwrap(),
            "authority:ratelimit:10.0.0.1:signin"
        );
        assert_eq!(k.pattern_all(), "authority:*");
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
