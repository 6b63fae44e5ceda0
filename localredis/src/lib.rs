//! Local Redis processes on demand: a `redis-server`, a replica, a Sentinel, a
//! cluster or a TLS server, each on a free `127.0.0.1` port in its own
//! temporary directory, supervised from Rust and gone when its handle drops.
//! [`SentinelGroup`] starts a whole Sentinel deployment ready to fail over, and
//! [`Proxy`] sits between a client and a process for the faults a signal
//! cannot make (slow answers, half-open connections, lost replies).
//!
//! # Why this crate exists
//!
//! Three parts of this workspace need a real Redis that they own:
//!
//! * the `cache` crate's integration tests, which must exercise AUTH, ACL users,
//!   replicas, Sentinel, Cluster and TLS against the real server, not a mock;
//! * `loadgen`, which starts a throwaway server when the user gives no
//!   `REDIS_URL`;
//! * `chaos`'s process backend, which injects faults by signal: `kill -9`
//!   ([`RedisServer::kill`]), a graceful `SIGTERM` ([`RedisServer::stop`]),
//!   `SIGSTOP`/`SIGCONT` ([`RedisServer::pause`], [`RedisServer::resume`]) and a
//!   restart on the same port and data directory ([`RedisServer::restart`]).
//!
//! Containers would do the same job with more moving parts (an engine, images,
//! a registry that is not always reachable) and cannot be `SIGSTOP`ped as
//! precisely. Plain child processes are fast (a server is ready in ~20 ms),
//! need only the `redis-server` binary, and give us the pid to signal.
//!
//! # Why it is built this way
//!
//! * **Blocking API.** Callers include plain `#[test]`s and tokio programs. A
//!   blocking API with short, bounded waits (start-up ≤ 10 s, polled every
//!   20 ms, never a bare `sleep`) works in both; async callers wrap it in
//!   `spawn_blocking`. The children still survive that: see `spawn.rs`.
//! * **No leaked processes.** Every child is killed when its handle drops, and
//!   on Linux also when this process dies (`PR_SET_PDEATHSIG`), so a panicking
//!   test or a `kill -9`ed harness leaves no Redis behind holding ports.
//! * **Few dependencies.** `std`, `libc` for signals, `tempfile` for the data
//!   directories, `thiserror`, and `rcgen` to make TLS certificates without an
//!   `openssl` binary. Readiness and the helpers talk to Redis through a
//!   small blocking RESP client ([`resp`]), not the `redis` crate, so this crate can
//!   test that crate's users without depending on what they depend on.
//! * **Errors a person can act on.** Every [`Error`] says what failed and what
//!   to do: which binary to install, which log file to read (with its last
//!   lines), whether a port was taken. Passwords never appear in errors or in
//!   `Debug` output.
//!
//! # Example
//!
//! ```no_run
//! use localredis::{Persistence, RedisServer, ServerConfig};
//!
//! # fn main() -> Result<(), localredis::Error> {
//! let mut server = RedisServer::start(
//!     ServerConfig::default()
//!         .password("s3cret")
//!         .persistence(Persistence::Rdb { save: "900 1".into() }),
//! )?;
//! server.command(&["SET", "k", "v"])?;
//! server.command(&["SAVE"])?;
//! server.kill()?; // SIGKILL, as a crash would
//! server.restart()?; // same port, same data directory
//! assert_eq!(server.command(&["GET", "k"])?.as_str(), Some("v"));
//! # Ok(()) }
//! ```
//!
//! The crate is Unix-only: it supervises processes with POSIX signals.

#[cfg(not(unix))]
compile_error!("localredis supervises processes with POSIX signals and supports Unix only");

mod cluster;
mod error;
mod host;
mod process;
mod proxy;
pub mod resp;
mod sentinel;
mod sentinel_group;
mod server;
mod spawn;
mod tls;

pub use cluster::Cluster;
pub use error::Error;
pub use host::{find_binary, free_port, require_binary_for_test};
pub use proxy::Proxy;
pub use sentinel::{Sentinel, SentinelConfig};
pub use sentinel_group::SentinelGroup;
pub use server::{Persistence, RedisServer, ServerConfig};
pub use tls::TlsFiles;

/// The lifecycle methods shared by [`RedisServer`] and [`Sentinel`].
///
/// Both wrap a `process::Supervisor` in a field named `process`; a macro keeps
/// one documented copy of the delegating methods instead of two.
macro_rules! lifecycle_methods {
    () => {
        /// The port it serves on (the TLS port for a TLS server).
        pub fn port(&self) -> u16 {
            self.process.port()
        }

        /// The pid of the child, or `None` once it is known to have exited
        /// (after [`kill`](Self::kill), [`stop`](Self::stop), or an exit seen
        /// by [`is_running`](Self::is_running)).
        pub fn pid(&self) -> Option<u32> {
            self.process.pid()
        }

        /// Its private directory: config file, log, RDB/AOF files. Removed on drop.
        pub fn dir(&self) -> &std::path::Path {
            self.process.dir()
        }

        /// The log file (stdout and stderr go there too, across restarts).
        pub fn log_path(&self) -> std::path::PathBuf {
            self.process.log_path()
        }

        /// `SIGKILL` and reap, as a crash would: nothing is saved. Succeeds if
        /// the process has already exited.
        pub fn kill(&mut self) -> Result<(), $crate::Error> {
            self.process.kill()
        }

        /// `SIGTERM` (then `SIGCONT`, in case it is paused) and reap: Redis
        /// shuts down cleanly and does its final save when persistence is on.
        /// Waits at most 10 s, then kills it and returns
        /// [`Error::StopTimeout`](crate::Error::StopTimeout). Succeeds if
        /// the process has already exited.
        pub fn stop(&mut self) -> Result<(), $crate::Error> {
            self.process.stop()
        }

        /// `SIGSTOP`: the process freezes; the kernel still completes TCP
        /// handshakes, so clients connect and then time out waiting for replies.
        pub fn pause(&self) -> Result<(), $crate::Error> {
            self.process.pause()
        }

        /// `SIGCONT`: undo [`pause`](Self::pause).
        pub fn resume(&self) -> Result<(), $crate::Error> {
            self.process.resume()
        }

        /// Start it again with the same config, port and directory (so with
        /// the same data if persistence is on) and wait until it is ready.
        /// A process that is still running is killed first.
        pub fn restart(&mut self) -> Result<(), $crate::Error> {
            self.process.restart()
        }

        /// Whether the child is still alive (reaps it if it has exited).
        /// A paused process counts as running.
        pub fn is_running(&mut self) -> bool {
            self.process.is_running()
        }

        /// A new plain-TCP RESP connection, already authenticated with the
        /// configured password, with 2 s timeouts.
        pub fn connect(&self) -> Result<$crate::resp::Connection, $crate::Error> {
            self.process.connect()
        }

        /// Run one command on a fresh [`connect`](Self::connect)ion.
        /// An error reply becomes [`Error::Redis`](crate::Error::Redis).
        pub fn command<S: AsRef<[u8]>>(
            &self,
            args: &[S],
        ) -> Result<$crate::resp::Reply, $crate::Error> {
            self.process.connect()?.command(args)
        }
    };
}
pub(crate) use lifecycle_methods;
