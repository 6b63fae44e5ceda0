//! The one error type of the crate.
//!
//! Each variant names the process it is about (`what`, e.g.
//! `redis-server 127.0.0.1:40123`) and, where there is one, the fix: the
//! package to install, the log file to read (with its last lines inlined so a
//! failing CI job shows the cause without artifacts), or the setting to change.
//! Callers such as `chaos` match on variants to classify outcomes (a
//! [`Error::Timeout`] from a paused server is expected, an [`Error::Exited`] is
//! not), so the variants are stable; new ones may be added.
//!
//! No variant ever carries a password: commands are named by their first word
//! only, and log tails have configured secrets replaced by `***`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting, signalling or talking to a
/// local Redis process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required executable is not on `PATH`.
    #[error("{name} not found on PATH: {hint}")]
    BinaryMissing {
        /// The executable looked for, e.g. `redis-server`.
        name: String,
        /// How to install it.
        hint: String,
    },

    /// The configuration cannot work; the message says which field and why.
    #[error("invalid localredis configuration: {0}")]
    InvalidConfig(String),

    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The server could not bind its port because something else holds it.
    /// [`RedisServer::start`](crate::RedisServer::start) retries with a new
    /// port by itself when the config left `port` as `None`.
    #[error(
        "{what}: port {port} is already in use by another process; leave `port` as None so \
         localredis picks a free one, or free the port. Last log lines:\n{log_tail}"
    )]
    PortInUse {
        /// The process that failed to start.
        what: String,
        /// The port it wanted.
        port: u16,
        /// The last lines of its log.
        log_tail: String,
    },

    /// The process exited while starting (bad directive, missing TLS support…).
    #[error("{what} exited during start-up ({status}); see {log}. Last log lines:\n{log_tail}")]
    Exited {
        /// The process.
        what: String,
        /// Its exit status, as text.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// The process did not become ready in time; it has been killed.
    #[error(
        "{what} was not ready within {waited:?} ({detail}) and was killed; see {log}. \
         Last log lines:\n{log_tail}"
    )]
    StartTimeout {
        /// The process.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// What was still missing (the log line, or the last probe error).
        detail: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// A graceful stop took too long, so the process was killed instead; a
    /// final save may not have completed.
    #[error(
        "{what} did not exit within {waited:?} of SIGTERM and was killed with SIGKILL \
         (its final save, if any, may be incomplete)"
    )]
    StopTimeout {
        /// The process.
        what: String,
        /// How long we waited.
        waited: Duration,
    },

    /// The operation needs a live process (pause, resume, connect…).
    #[error("{what} is not running (killed, stopped or exited); call restart() first")]
    NotRunning {
        /// The process.
        what: String,
    },

    /// `kill(2)` failed.
    #[error("sending {signal} to {what} (pid {pid}) failed: {source}")]
    Signal {
        /// The process.
        what: String,
        /// The signal's name, e.g. `SIGSTOP`.
        signal: &'static str,
        /// Its pid.
        pid: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// No reply in time: the server is paused, overloaded or partitioned.
    /// For a fault-injection client this outcome is indeterminate.
    #[error(
        "{what}: no reply within {after:?} (is the server paused with SIGSTOP, or overloaded?)"
    )]
    Timeout {
        /// The command and server, e.g. `GET to 127.0.0.1:40123`.
        what: String,
        /// The timeout that expired.
        after: Duration,
    },

    /// Redis answered with an error reply (`-ERR …`, `-NOAUTH …`, `-LOADING …`).
    #[error("{what}: Redis replied with an error: {message}")]
    Redis {
        /// The command and server.
        what: String,
        /// The error reply, without the leading `-`.
        message: String,
    },

    /// The bytes on the socket were not valid RESP.
    #[error("{what}: malformed reply: {detail}")]
    Protocol {
        /// The command and server.
        what: String,
        /// What was wrong.
        detail: String,
    },

    /// A helper tool (`redis-cli --cluster create`) failed.
    #[error("{what} failed ({status}): {output}")]
    Tool {
        /// The tool invocation, without secrets.
        what: String,
        /// Its exit status, or `timed out`.
        status: String,
        /// Its combined output.
        output: String,
    },

    /// The cluster was created but not every node reported `cluster_state:ok`.
    #[error("cluster did not reach cluster_state:ok on every node within {waited:?}: {detail}")]
    ClusterNotReady {
        /// How long we waited.
        waited: Duration,
        /// Which node was not ok and what it said.
        detail: String,
    },

    /// Making or writing the TLS certificates failed.
    #[error("generating TLS certificates: {0}")]
    Tls(String),

    /// The built-in RESP client cannot talk TLS.
    #[error(
        "{what} serves TLS only; localredis's probe client speaks plain TCP. Connect with a \
         TLS client (e.g. the redis crate with the server's rediss:// url())"
    )]
    TlsUnsupported {
        /// The process.
        what: String,
    },
}

impl Error {
    /// Wrap an OS error with what was being attempted.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
