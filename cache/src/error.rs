//! One error type for the whole crate, written for the operator who reads it and typed for the
//! program that handles it.
//!
//! Every variant says what failed and, where there is one, what to do about it. None of them carries a
//! password, a token or a session id: targets are printed through [`crate::url::RedisUrl`]'s redacting
//! `Display`, and store errors name the *kind* of key, never the key.
//!
//! Callers decide with [`Error::kind`] — out of memory, missing permission, no primary, timeout… —
//! never by searching the message text: the texts are for people and may change. Errors that come
//! from redis-rs keep the [`redis::RedisError`] as their `source()`.
//!
//! Sorting a reply into an [`ErrorKind`] happens in exactly one place, [`classify`]. Redis names most
//! failures with the first word of the error reply (`OOM`, `NOPERM`, `READONLY`…), and redis-rs hands
//! that word back as [`RedisError::code`]; the one failure Redis reports without a code of its own —
//! an ACL refusal raised inside a Lua script, which arrives as a generic `ERR` — is recognised there
//! by the fixed sentence Redis uses for it.

use redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};

use crate::url::UrlError;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error code [`crate::Redis`] gives a command it never sent because no primary was available
/// (Sentinel could not name one). Not a code Redis itself uses.
pub(crate) const NO_PRIMARY_CODE: &str = "NOPRIMARY";

/// What went wrong, in the terms an operator acts on. Stable: callers match on it, reports group by
/// its [`ErrorKind::as_str`] name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The `REDIS_URL` did not parse.
    Url,
    /// Nothing answered at the address (refused, unreachable, DNS, connect timeout).
    Unreachable,
    /// The server refused the credentials.
    Auth,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// No primary to send to (Sentinel named none that answers as master); the command was not sent.
    NoPrimary,
    /// `OOM`: the server is at `maxmemory` and the policy refuses the write.
    OutOfMemory,
    /// `NOPERM`: the ACL user may not run the command (or a command the script calls), or touch the key.
    NoPermission,
    /// `NOREPLICAS`: `min-replicas-to-write` is not met.
    NoReplicas,
    /// `READONLY`: the node is a replica (a demoted primary).
    ReadOnly,
    /// `LOADING`: the server is still loading its dataset.
    Loading,
    /// `MASTERDOWN`: a replica that lost its primary refuses to serve.
    MasterDown,
    /// Cluster redirection or state: `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `CROSSSLOT`.
    Cluster,
    /// No reply within the response timeout; the command may have been applied.
    Timeout,
    /// The connection broke (reset, closed, refused on reconnect, other I/O).
    ConnectionDropped,
    /// A Lua script failed for a reason other than the above.
    Script,
    /// A store key held a value of another type or shape.
    Corrupt,
    /// The session or token does not exist (expired, destroyed, never created).
    NotFound,
    /// Caller input rejected before touching Redis.
    Invalid,
    /// A value over the configured maximum.
    TooLarge,
    /// Any other server or client error.
    Other,
}

impl ErrorKind {
    /// The stable snake_case name used in reports and JSON (`no_primary`, `oom`, `noperm`…).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Url => "url",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::NoPrimary => "no_primary",
            ErrorKind::OutOfMemory => "oom",
            ErrorKind::NoPermission => "noperm",
            ErrorKind::NoReplicas => "noreplicas",
            ErrorKind::ReadOnly => "readonly",
            ErrorKind::Loading => "loading",
            ErrorKind::MasterDown => "masterdown",
            ErrorKind::Cluster => "cluster",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectionDropped => "connection_dropped",
            ErrorKind::Script => "script",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Other => "other",
        }
    }

    /// A few words for a person (`out of memory`, `no permission`…).
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::Url => "invalid REDIS_URL",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Tls => "TLS failed",
            ErrorKind::NoPrimary => "no primary",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::NoPermission => "no permission",
            ErrorKind::NoReplicas => "not enough replicas",
            ErrorKind::ReadOnly => "read-only replica",
            ErrorKind::Loading => "loading dataset",
            ErrorKind::MasterDown => "primary down",
            ErrorKind::Cluster => "cluster redirect or down",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ConnectionDropped => "connection dropped",
            ErrorKind::Script => "script error",
            ErrorKind::Corrupt => "unexpected value",
            ErrorKind::NotFound => "not found",
            ErrorKind::Invalid => "invalid input",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Other => "server error",
        }
    }

    /// "Redis is not there / not usable right now", as opposed to bad input or a refusal by policy.
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable
                | ErrorKind::NoPrimary
                | ErrorKind::ReadOnly
                | ErrorKind::Loading
                | ErrorKind::MasterDown
                | ErrorKind::Cluster
                | ErrorKind::Timeout
                | ErrorKind::ConnectionDropped
        )
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `REDIS_URL` did not parse.
    #[error(transparent)]
    Url(#[from] UrlError),

    /// Nothing answered at the address (refused, unreachable, DNS, connect timeout).
    #[error(
        "cannot connect to Redis at {target}: {source} (is redis-server running and listening there?)"
    )]
    Unreachable {
        target: String,
        #[source]
        source: RedisError,
    },

    /// The server answered but refused the credentials.
    #[error(
        "authentication failed at {target}: {source} (check the password, or the ACL user name and its password, in REDIS_URL)"
    )]
    Auth {
        target: String,
        #[source]
        source: RedisError,
    },

    /// TLS handshake or certificate verification failed.
    #[error(
        "TLS handshake with {target} failed: {source} (check that the server speaks TLS on that port, that its certificate is signed by a trusted CA and names the host in REDIS_URL)"
    )]
    Tls {
        target: String,
        #[source]
        source: RedisError,
    },

    /// Sentinel could not name a reachable primary that reports `role:master`.
    #[error("no primary for Sentinel service `{service}`: {cause}")]
    NoPrimary { service: String, cause: String },

    /// A command failed after the connection was up. `indeterminate` is true when the command may have
    /// been applied (timeout, connection dropped mid-flight), false when it certainly was not.
    #[error("Redis command failed ({}): {source}", kind.describe())]
    Command {
        kind: ErrorKind,
        #[source]
        source: RedisError,
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
    /// What went wrong, to match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Url(_) => ErrorKind::Url,
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Auth { .. } => ErrorKind::Auth,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::NoPrimary { .. } => ErrorKind::NoPrimary,
            Error::Command { kind, .. } => *kind,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
        }
    }

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

    /// True for errors that mean "Redis is not there / not usable right now" rather than bad input
    /// or a refusal by policy (OOM, NOPERM, NOREPLICAS are answers, not absences).
    pub fn is_unavailable(&self) -> bool {
        self.kind().is_unavailable()
    }

    /// The `redis-rs` error underneath, when there is one.
    pub fn redis_error(&self) -> Option<&RedisError> {
        match self {
            Error::Unreachable { source, .. }
            | Error::Auth { source, .. }
            | Error::Tls { source, .. }
            | Error::Command { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Builds a connect-time error for `target`, sorting redis-rs errors into what an operator acts on.
    pub(crate) fn connecting(target: &str, e: RedisError) -> Error {
        let target = target.to_string();
        match classify(&e) {
            ErrorKind::Auth => Error::Auth { target, source: e },
            ErrorKind::Tls => Error::Tls { target, source: e },
            ErrorKind::Unreachable | ErrorKind::Timeout | ErrorKind::ConnectionDropped => {
                Error::Unreachable { target, source: e }
            }
            kind => Error::Command {
                kind,
                source: e,
                indeterminate: false,
            },
        }
    }

    /// The same failure seen while proving a new connection to `target`: a command error that means
    /// "not there" becomes [`Error::Unreachable`], an authentication refusal names the target.
    pub(crate) fn at_connect(self, target: &str) -> Error {
        match self {
            Error::Command { kind, source, .. } if kind.is_unavailable() => Error::Unreachable {
                target: target.to_string(),
                source,
            },
            Error::Auth { source, .. } => Error::Auth {
                target: target.to_string(),
                source,
            },
            other => other,
        }
    }
}

impl From<RedisError> for Error {
    fn from(e: RedisError) -> Self {
        match classify(&e) {
            // A key holding something this store did not write: WRONGTYPE from a command, or a
            // script failing on it ("value is not an integer", "attempt to compare nil"). Not an outage.
            ErrorKind::Corrupt => Error::Corrupt {
                what: "key",
                cause: e.to_string(),
            },
            ErrorKind::Auth => Error::Auth {
                target: "the server".into(),
                source: e,
            },
            kind => Error::Command {
                kind,
                indeterminate: may_have_been_applied(&e),
                source: e,
            },
        }
    }
}

/// The sentence Redis 7 uses for an ACL refusal raised inside a script (it carries no code of its own).
const SCRIPT_NOPERM: &str = "The user executing the script can't run this command";

/// The one place where a redis-rs error becomes an [`ErrorKind`].
pub(crate) fn classify(e: &RedisError) -> ErrorKind {
    let detail = e.detail().unwrap_or("");
    match e.kind() {
        RedisKind::AuthenticationFailed => return ErrorKind::Auth,
        RedisKind::Server(kind) => {
            return match kind {
                ServerErrorKind::NoPerm => ErrorKind::NoPermission,
                ServerErrorKind::ReadOnly => ErrorKind::ReadOnly,
                ServerErrorKind::BusyLoading => ErrorKind::Loading,
                ServerErrorKind::MasterDown => ErrorKind::MasterDown,
                ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::CrossSlot => ErrorKind::Cluster,
                ServerErrorKind::NoScript | ServerErrorKind::ExecAbort => ErrorKind::Script,
                ServerErrorKind::ResponseError if detail.starts_with(SCRIPT_NOPERM) => {
                    ErrorKind::NoPermission
                }
                // A script failing on a value it did not expect: the key was not written by us.
                ServerErrorKind::ResponseError
                    if detail.contains("script:")
                        && (detail.contains("not an integer")
                            || detail.contains("attempt to")
                            || detail.contains("WRONGTYPE")) =>
                {
                    ErrorKind::Corrupt
                }
                ServerErrorKind::ResponseError if detail.contains("script:") => ErrorKind::Script,
                _ => ErrorKind::Other,
            };
        }
        _ => {}
    }
    // Codes redis-rs does not know arrive as extension errors with the code kept verbatim.
    match e.code() {
        Some("OOM") => return ErrorKind::OutOfMemory,
        Some("NOREPLICAS") => return ErrorKind::NoReplicas,
        Some("NOPERM") => return ErrorKind::NoPermission,
        Some("WRONGTYPE") => return ErrorKind::Corrupt,
        Some("WRONGPASS" | "NOAUTH") => return ErrorKind::Auth,
        Some(NO_PRIMARY_CODE) => return ErrorKind::NoPrimary,
        Some("BUSY") => return ErrorKind::Script,
        Some(_) => return ErrorKind::Other,
        None => {}
    }
    if is_tls_failure(e) {
        ErrorKind::Tls
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connection_refusal() {
        ErrorKind::Unreachable
    } else if e.is_connection_dropped() || e.is_io_error() {
        ErrorKind::ConnectionDropped
    } else {
        ErrorKind::Other
    }
}

/// rustls reports certificate and handshake failures as an `io::Error` wrapping its own error, which
/// redis-rs keeps behind an `Arc`. `io::Error::source` skips the wrapped error, so look inside.
fn is_tls_failure(e: &RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let io = s
            .downcast_ref::<std::io::Error>()
            .or_else(|| s.downcast_ref::<Shared>()?.downcast_ref::<std::io::Error>());
        if s.downcast_ref::<rustls::Error>().is_some()
            || io
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Timeouts and dropped connections leave the outcome unknown; refusals and server errors do not.
fn may_have_been_applied(e: &RedisError) -> bool {
    (e.is_timeout() || e.is_connection_dropped() || e.is_io_error()) && !e.is_connection_refusal()
}

/// The error a handle returns for a command it never sent because there was no primary to send it
/// to. [`classify`] sorts it as [`ErrorKind::NoPrimary`], not indeterminate.
pub(crate) fn no_primary_error(cause: String) -> RedisError {
    redis::make_extension_error(NO_PRIMARY_CODE.to_string(), Some(cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_string(), Some(detail.to_string()))
    }

    #[test]
    fn extension_codes_are_classified_by_code() {
        assert_eq!(
            classify(&server(
                "OOM",
                "command not allowed when used memory > 'maxmemory'."
            )),
            ErrorKind::OutOfMemory
        );
        assert_eq!(
            classify(&server("NOREPLICAS", "Not enough good replicas to write.")),
            ErrorKind::NoReplicas
        );
        let np = Error::from(no_primary_error("no sentinel answered".into()));
        assert_eq!(np.kind(), ErrorKind::NoPrimary);
        assert!(
            !np.is_indeterminate(),
            "a command never sent is not indeterminate"
        );
    }

    #[test]
    fn io_errors_split_into_timeout_refused_and_dropped() {
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let e = Error::from(timeout);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_indeterminate());
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = Error::from(refused);
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(!e.is_indeterminate());
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(Error::from(reset).kind(), ErrorKind::ConnectionDropped);
    }

    #[test]
    fn the_source_is_kept() {
        use std::error::Error as _;
        let e = Error::from(server("OOM", "command not allowed"));
        assert!(e.source().is_some());
        let message = e.to_string();
        assert!(message.contains("out of memory"), "{message}");
    }
}
