//! Why a command could not give its verdict, and the exit code each reason maps to.
//!
//! A verdict that went the wrong way (an SLO broke, a policy is UNSAFE) is not an error: commands
//! return it as their outcome, and [`crate::commands::Outcome`] maps it to 0 or 1. This type is for
//! everything that stopped them from judging at all. Each variant keeps the error it came from as
//! its `source()`, so callers decide by variant (and, for Redis, by [`cache::ErrorKind`]), never by
//! reading the message; the message is for the operator and says what to fix.
//!
//! Exit codes (also in the README):
//!
//! | code | meaning | variants |
//! |---|---|---|
//! | 1 | the run itself broke after it started (results could not be written, Redis failed mid-run) | [`Error::Redis`], [`Error::WriteResults`], [`Error::Broken`] |
//! | 2 | usage: a flag, the scenario, a results directory that cannot be created, inputs to compare | [`Error::Usage`], [`Error::Scenario`], [`Error::Url`], [`Error::Unwritable`] |
//! | 3 | no usable Redis or nothing measurable: unreachable, authentication, TLS, an ACL refusal anywhere, no server could be started; goose could not start its users; capacity refusing a measurement others disturbed; an `evict` policy `NOT TESTED` | [`Error::Target`], [`Error::ConnectTimeout`], [`Error::NoServer`], [`Error::NoPermission`], [`Error::Generator`], [`Error::Unmeasurable`], [`EXIT_NOT_TESTED`] |
//! | 130 | stopped by Ctrl-C (results so far are still written where possible) | [`Error::Interrupted`] |

use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::ScenarioError;

/// Exit code: every SLO, invariant and verdict held.
pub const EXIT_PASS: i32 = 0;
/// Exit code: a verdict failed (or the run broke after it started).
pub const EXIT_FAIL: i32 = 1;
/// Exit code: usage or scenario error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: no usable Redis.
pub const EXIT_TARGET: i32 = 3;
/// Exit code: a verdict that could not be reached (`evict`'s `NOT TESTED`): the same "could not
/// measure" code as a target that cannot be used.
pub const EXIT_NOT_TESTED: i32 = EXIT_TARGET;
/// Exit code: stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Result alias for loadgen.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag (or a combination of flags) is wrong; the message names it and the expected form.
    #[error("{0}")]
    Usage(String),

    /// The scenario file (or an override of it) is wrong: one line per problem, `place: message`.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scenario(Vec<ScenarioError>),

    /// The Redis URL did not parse. `origin` is `--redis-url` or `REDIS_URL`.
    #[error("{origin}: {source}")]
    Url {
        origin: &'static str,
        #[source]
        source: cache::url::UrlError,
    },

    /// A directory or file given on the command line cannot be created or written.
    #[error("{flag} {}: cannot {what}: {source} (expected a directory loadgen can create and write)", path.display())]
    Unwritable {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// Connecting to the target failed (refused, authentication, TLS...).
    #[error("{source}")]
    Target {
        #[source]
        source: cache::Error,
    },

    /// Nothing answered within the connect bound.
    #[error(
        "cannot connect to Redis at {url}: no answer within {} s (is the address right and reachable?)",
        after.as_secs()
    )]
    ConnectTimeout { url: String, after: Duration },

    /// No throwaway redis-server could be started.
    #[error(
        "no REDIS_URL or --redis-url given, and a throwaway redis-server could not be started: {source}"
    )]
    NoServer {
        #[source]
        source: localredis::Error,
    },

    /// The ACL user may not run a command loadgen needs. `command` is what an ACL rule would have
    /// to add, already quoted ([`cache::acl::denied`]).
    #[error(
        "the ACL user lacks {command} ({what}); `loadgen doctor` prints the ACL rule each loadgen command needs"
    )]
    NoPermission {
        command: String,
        what: String,
        /// The refusal itself; `None` when only its message was kept (an operation during the load).
        #[source]
        source: Option<cache::Error>,
    },

    /// Redis failed in a way that stops the command (seeding failed, INFO failed...).
    #[error("{what}: {source}")]
    Redis {
        what: String,
        #[source]
        source: cache::Error,
    },

    /// The results could not be written after the run.
    #[error("writing results to {}: {source}", path.display())]
    WriteResults {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// goose stopped before any operation ran (e.g. it could not build its users' HTTP client: a
    /// container without CA certificates). Nothing was measured, so there is no verdict.
    #[error("goose could not run the load, nothing was measured: {0}")]
    Generator(String),

    /// The target could not be measured as asked (keys evicted, or others' keys written or
    /// expired beyond the bound, while measuring key sizes...).
    #[error("{0}")]
    Unmeasurable(String),

    /// Something that should not happen did (goose kept the workload, the runtime did not start).
    #[error("{0}")]
    Broken(String),

    /// Ctrl-C before anything could be judged.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The process exit code for this error (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Scenario(_) | Error::Url { .. } | Error::Unwritable { .. } => {
                EXIT_USAGE
            }
            Error::Target { .. }
            | Error::ConnectTimeout { .. }
            | Error::NoServer { .. }
            | Error::NoPermission { .. }
            | Error::Generator(_)
            | Error::Unmeasurable(_) => EXIT_TARGET,
            Error::Redis { .. } | Error::WriteResults { .. } | Error::Broken(_) => EXIT_FAIL,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// A usage error with this message.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// Redis refused or failed `what`: a permission refusal becomes [`Error::NoPermission`] (exit 3,
    /// the ACL must change) naming the command Redis refused (`command`, the one sent, when Redis
    /// did not say), anything else [`Error::Redis`].
    pub fn redis(what: impl Into<String>, command: &str, source: cache::Error) -> Error {
        let what = what.into();
        match cache::acl::denied(&source) {
            Some(denied) => Error::NoPermission {
                command: if denied == cache::acl::UNNAMED && !command.is_empty() {
                    format!("`{command}`")
                } else {
                    denied
                },
                what,
                source: Some(source),
            },
            None => Error::Redis { what, source },
        }
    }

    /// `count` operations of the load were refused by the ACL; `example` is one refusal's message.
    pub fn refused_during_load(count: u64, example: &str) -> Error {
        Error::NoPermission {
            command: cache::acl::denied_in(example),
            what: format!("{count} operations of the load were refused"),
            source: None,
        }
    }

    /// Seeding the keyspace on `target` failed (the session create is a script: `EVALSHA`).
    pub fn seeding(target: &cache::RedisUrl, source: cache::Error) -> Error {
        Error::redis(
            format!("seeding the keyspace failed (target {target})"),
            "EVALSHA",
            source,
        )
    }

    /// Writing `path` failed after the run.
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::WriteResults {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_failure_has_its_documented_exit_code() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(Error::usage("--rate").exit_code(), 2);
        assert_eq!(Error::Scenario(vec![]).exit_code(), 2);
        assert_eq!(
            Error::ConnectTimeout {
                url: "redis://h".into(),
                after: Duration::from_secs(5)
            }
            .exit_code(),
            3
        );
        assert_eq!(Error::write("results/x", io()).exit_code(), 1);
        assert_eq!(Error::Unmeasurable("busy".into()).exit_code(), 3);
        assert_eq!(Error::Interrupted.exit_code(), 130);
        let noperm = cache::Error::from(redis::make_extension_error(
            "NOPERM".into(),
            Some("this user has no permissions to run the 'evalsha' command".into()),
        ));
        let e = Error::redis("seeding", "EVALSHA", noperm);
        assert!(matches!(e, Error::NoPermission { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 3);
        let message = e.to_string();
        assert!(message.contains("lacks `EVALSHA`"), "{message}");
        let e = Error::refused_during_load(
            7,
            "NOPERM this user has no permissions to run the 'getex' command",
        );
        assert!(e.to_string().contains("lacks `GETEX`"), "{e}");
        assert_eq!(e.exit_code(), 3);
    }
}
