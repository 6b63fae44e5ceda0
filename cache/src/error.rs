//! One error type for the whole crate, written for the operator who reads it.
//!
//! Every variant says what failed and, where there is one, what to do about it. None of them carries a
//! password, a token or a session id: targets are printed through [`crate::url::RedisUrl`]'s redacting
//! `Display`, and store errors name the *kind* of key, never the key.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::url::UrlError;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `REDIS_URL` did not parse.
    #[error(transparent)]
    Url(#[from] UrlError),

    /// Nothing answered at the address (refused, unreachable, DNS, connect timeout).
    #[error(
        "cannot connect to Redis at {target}: {cause} (is redis-server running and listening there?)"
    )]
    Unreachable { target: String, cause: String },

    /// The server answered but refused the credentials.
    #[error(
        "authentication failed at {target}: {cause} (check the password, or the ACL user name and its password, in REDIS_URL)"
    )]
    Auth { target: String, cause: String },

    /// TLS handshake or certificate verification failed.
    #[error(
        "TLS handshake with {target} failed: {cause} (check that the server speaks TLS on that port, that its certificate is signed by a trusted CA and names the host in REDIS_URL)"
    )]
    Tls { target: String, cause: String },

    /// Sentinel could not name a reachable primary that reports `role:master`.
    #[error("no primary for Sentinel service `{service}`: {cause}")]
    NoPrimary { service: String, cause: String },

    /// A command failed after the connection was up. `indeterminate` is true when the command may have
    /// been applied (timeout, connection dropped mid-flight), false when it certainly was not.
    #[error("Redis command failed ({category}): {cause}")]
    Command {
        category: &'static str,
        cause: String,
        indeterminate: bool,
    },

    /// A store key held a value of another type or shape (e.g. WRONGTYPE, or JSON that does not parse).
    #[error("the {what} value in Redis is not what this store wrote: {cause}")]
    Corrupt { what: &'static str, cause: String },

    /// The session (or token) does not exist or has expired.
    #[error("{0} not found (expired, destroyed or never created)")]
    NotFound(&'static str),

    /// Caller input rejected before touching Redis.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// A value larger than the configured maximum.
    #[error("{what} is {size} bytes, over the configured maximum of {max} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
}

impl Error {
    /// True when the operation may or may not have been applied (Jepsen's "info" outcome).
    pub fn is_indeterminate(&self) -> bool {
        matches!(
            self,
            Error::Command {
                indeterminate: true,
                ..
            }
        )
    }

    /// True for errors that mean "Redis is not there / not usable right now" rather than bad input.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::NoPrimary { .. } | Error::Command { .. }
        )
    }

    /// Builds a connect-time error for `target`, sorting redis-rs errors into what an operator acts on.
    pub(crate) fn connecting(target: &str, e: RedisError) -> Error {
        let cause = describe(&e);
        let target = target.to_string();
        if is_auth_failure(&e, &cause) {
            return Error::Auth { target, cause };
        }
        let lower = cause.to_ascii_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("invalid peer")
        {
            return Error::Tls { target, cause };
        }
        if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() {
            return Error::Unreachable { target, cause };
        }
        Error::Command {
            category: "connect",
            cause,
            indeterminate: false,
        }
    }
}

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Self {
        // A key holding something this store did not write: WRONGTYPE from a command, or a script
        // failing on it ("value is not an integer", "attempt to compare nil"). Not an outage.
        let text = describe(&e);
        if e.code() == Some("WRONGTYPE")
            || (matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ResponseError))
                && (text.contains("script") || text.contains("not an integer")))
        {
            return Error::Corrupt {
                what: "key",
                cause: text,
            };
        }
        if is_auth_failure(&e, &text) {
            return Error::Auth {
                target: "the server".into(),
                cause: text,
            };
        }
        Error::Command {
            category: category(&e),
            cause: text,
            indeterminate: may_have_been_applied(&e),
        }
    }
}

/// Wrong password, unknown ACL user, or a command sent before AUTH.
fn is_auth_failure(e: &RedisError, text: &str) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        || text.contains("WRONGPASS")
}

/// A short operator-facing category for a redis-rs error.
pub(crate) fn category(e: &RedisError) -> &'static str {
    // An OOM refusal raised inside a Lua script arrives as an extension error, not as `-OOM`.
    if e.code() == Some("OOM") || e.to_string().contains("OOM command not allowed") {
        "out of memory"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() {
        "connection dropped"
    } else if e.is_io_error() {
        "io"
    } else {
        match e.kind() {
            ErrorKind::Server(ServerErrorKind::ReadOnly) => "read-only replica",
            ErrorKind::Server(_) => match e.code() {
                Some("OOM") => "out of memory",
                Some("NOREPLICAS") => "not enough replicas",
                Some("LOADING") => "loading dataset",
                Some("MASTERDOWN") => "primary down",
                _ => "server error",
            },
            _ => "client",
        }
    }
}

/// Timeouts and dropped connections leave the outcome unknown; refusals and server errors do not.
fn may_have_been_applied(e: &RedisError) -> bool {
    (e.is_timeout() || e.is_connection_dropped() || e.is_io_error()) && !e.is_connection_refusal()
}

fn describe(e: &RedisError) -> String {
    // redis-rs error texts hold server replies and OS errors, never the credentials we sent.
    e.to_string()
}
