//! [`SessionId`]: the session id a cookie carries, `<secret>.<deadline>.<user tag>`, and the
//! parser that stands between a cookie and a key (see the [`super`] module docs for why each part
//! is there).

use std::fmt;

use base64::Engine;

use crate::error::{Error, Result};
use crate::keys::USER_TAG_LEN;

const ID_BYTES: usize = 32;
const SECRET_LEN: usize = 43; // base64url without padding of 32 bytes
/// Longest id: secret, dot, a deadline of up to 13 digits (Unix ms until the year 2286), dot, tag.
const MAX_ID_LEN: usize = SECRET_LEN + 1 + 13 + 1 + USER_TAG_LEN;

/// A session id: 256 random bits (URL-safe base64), the absolute deadline and the user tag. Never
/// printed.
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

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SessionId {
    /// A fresh id from the operating system's CSPRNG for a session that ends at `deadline_ms`,
    /// bound to no user (a random user tag): for tests and tools that need a well-formed id. The
    /// store makes its own ids, bound to the session's user.
    pub fn generate(deadline_ms: u64) -> Result<SessionId> {
        let mut tag = [0u8; 16];
        getrandom::fill(&mut tag)
            .map_err(|e| invalid_id(format!("the OS random number generator failed: {e}")))?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag);
        SessionId::for_user_tag(&tag, deadline_ms)
    }

    pub(super) fn for_user_tag(tag: &str, deadline_ms: u64) -> Result<SessionId> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| invalid_id(format!("the OS random number generator failed: {e}")))?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(SessionId {
            text: format!("{secret}.{deadline_ms}.{tag}"),
            deadline_ms,
        })
    }

    /// Validates an id that came from outside (a cookie, a header): 43 characters of
    /// `A-Z a-z 0-9 - _`, a `.`, 1 to 13 digits, a `.`, and 22 characters of the same alphabet.
    /// The error never repeats the input.
    pub fn parse(s: &str) -> Result<SessionId> {
        const SHAPE: &str = "expected <43 characters>.<deadline digits>.<22 characters>";
        if s.len() > MAX_ID_LEN {
            return Err(invalid_id(format!(
                "expected at most {MAX_ID_LEN} characters, got {}",
                s.len()
            )));
        }
        let mut parts = s.split('.');
        let (Some(secret), Some(deadline), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid_id(SHAPE.into()));
        };
        if secret.len() != SECRET_LEN || !is_base64url(secret) {
            return Err(invalid_id(format!(
                "expected {SECRET_LEN} characters of A-Z, a-z, 0-9, `-`, `_` before the first `.`"
            )));
        }
        if deadline.is_empty()
            || deadline.len() > 13
            || !deadline.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid_id(
                "expected 1 to 13 digits between the two `.`".into(),
            ));
        }
        if tag.len() != USER_TAG_LEN || !is_base64url(tag) {
            return Err(invalid_id(format!(
                "expected {USER_TAG_LEN} characters of A-Z, a-z, 0-9, `-`, `_` after the last `.`"
            )));
        }
        let deadline_ms = deadline
            .parse()
            .map_err(|_| invalid_id("expected 1 to 13 digits between the two `.`".into()))?;
        Ok(SessionId {
            text: s.to_string(),
            deadline_ms,
        })
    }

    /// Unix ms (Redis's clock) after which this session is gone however active it is.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The id itself, to put in a cookie. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The user tag: the hash tag of the session's key and its user's index.
    pub(super) fn user_tag(&self) -> &str {
        self.text.rsplit_once('.').map_or("", |(_, tag)| tag)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_256_bit_url_safe_distinct_and_carry_the_deadline() {
        let tag = crate::keys::user_tag("alice").unwrap();
        let a = SessionId::for_user_tag(&tag, 1_700_000_000_123).unwrap();
        let b = SessionId::for_user_tag(&tag, 1_700_000_000_123).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), MAX_ID_LEN);
        assert!(a.expose().ends_with(&format!(".1700000000123.{tag}")));
        assert_eq!(a.user_tag(), tag);
        let unbound = SessionId::generate(1).unwrap();
        assert!(SessionId::parse(unbound.expose()).is_ok());
        assert_ne!(unbound.user_tag(), tag);
        let parsed = SessionId::parse(a.expose()).unwrap();
        assert_eq!(parsed, a);
        assert_eq!(parsed.deadline_ms(), 1_700_000_000_123);
        assert_eq!(format!("{a:?} {a}"), "SessionId(***) ***");
    }

    #[test]
    fn hostile_ids_are_refused_without_echo() {
        let secret = "a".repeat(SECRET_LEN);
        let tag = "t".repeat(USER_TAG_LEN);
        let cases = [
            String::new(),
            "short".into(),
            secret.clone(),
            format!("{secret}."),
            format!("{secret}.1"),
            format!("{secret}.12a.{tag}"),
            format!("{secret}.12345678901234.{tag}"),
            format!("{}:x.1.{tag}", "a".repeat(41)),
            format!("{}\r\n.1.{tag}", "a".repeat(41)),
            format!("{}*.1.{tag}", "a".repeat(42)),
            format!("{secret}.1.{tag}:authority:token:x"),
            format!("{secret}.1.{}}}", "t".repeat(USER_TAG_LEN - 1)),
            format!("{secret}.1.{{{}", "t".repeat(USER_TAG_LEN - 1)),
            format!("{secret}.1.{tag}.2"),
            format!("{secret}.1.{}", "t".repeat(USER_TAG_LEN + 1)),
        ];
        for bad in &cases {
            let err = SessionId::parse(bad).unwrap_err().to_string();
            assert!(bad.len() < 6 || !err.contains(bad.as_str()), "{err}");
        }
        assert!(SessionId::parse(&format!("{secret}.1.{tag}")).is_ok());
    }
}
