//! One supervised child: spawn, wait until ready, signal, reap, restart.
//!
//! [`RedisServer`](crate::RedisServer) and [`Sentinel`](crate::Sentinel) differ
//! only in the config they write and how readiness shows; everything about the
//! process itself lives here once.
//!
//! # Readiness
//!
//! "Ready" is decided by polling every 20 ms until a 10 s deadline, never by
//! sleeping a guessed amount. A server is ready when its log shows `Ready to
//! accept connections` *written after this spawn* (the log is appended to
//! across restarts, so we remember where this run's output starts) and then a
//! probe succeeds: `AUTH` + `PING` answered with `PONG`, or for a TLS server,
//! which our plain client cannot speak, a TCP connect. Redis listens *before*
//! it loads its RDB/AOF and meanwhile answers everything, `PING` included,
//! with `-LOADING` (7.0.15: ~2 s for 3 M small keys); a TCP connect succeeds
//! then too, so for TLS the log line is what keeps a restart after a crash
//! from being "ready" with its data still missing. The 10 s deadline thus also
//! bounds how big a dataset a restart can load. Sentinel never logs that line,
//! so it is ready when `PING` answers.
//!
//! If the child exits while we wait, its log tail becomes the error; a bind
//! failure is reported as [`Error::PortInUse`] so callers can retry on a new port.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::Error;
use crate::resp::{Connection, Reply};

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READY_LINE: &str = "Ready to accept connections";
const LOG_TAIL_LINES: usize = 25;

/// How a freshly spawned process shows it is ready (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Readiness {
    /// `Ready to accept connections` in the log, then `PING` answers.
    ServerPing,
    /// `Ready to accept connections` in the log, then the TLS port accepts TCP.
    ServerTls,
    /// `PING` answers (Sentinel).
    Ping,
}

/// Everything needed to (re)start one process.
pub(crate) struct Spec {
    /// Human name used in errors, e.g. `redis-server 127.0.0.1:40123`.
    pub what: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub dir: TempDir,
    pub log_name: &'static str,
    pub port: u16,
    /// Password for the probe's and [`Supervisor::connect`]'s `AUTH`.
    pub password: Option<String>,
    /// Strings replaced by `***` in log tails quoted in errors.
    pub secrets: Vec<String>,
    pub readiness: Readiness,
}

/// A new temporary directory named `localredis-{kind}-…` holding `file_name`
/// with the text `render` makes for that directory.
pub(crate) fn dir_with_config(
    kind: &str,
    file_name: &str,
    render: impl FnOnce(&Path) -> String,
) -> Result<(TempDir, PathBuf), Error> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("localredis-{kind}-"))
        .tempdir()
        .map_err(|e| Error::io("creating a temporary directory", e))?;
    let path = dir.path().join(file_name);
    fs::write(&path, render(dir.path()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok((dir, path))
}

/// A child process plus what is needed to restart it.
pub(crate) struct Supervisor {
    spec: Spec,
    child: Option<Child>,
}

impl Supervisor {
    /// Spawn and wait until ready; on failure the child is killed and the
    /// directory removed (by drop).
    pub(crate) fn launch(spec: Spec) -> Result<Self, Error> {
        let mut sup = Supervisor { spec, child: None };
        sup.spawn_and_wait()?;
        Ok(sup)
    }

    pub(crate) fn port(&self) -> u16 {
        self.spec.port
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn dir(&self) -> &Path {
        self.spec.dir.path()
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.spec.dir.path().join(self.spec.log_name)
    }

    pub(crate) fn kill(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std's kill() sends SIGKILL, which also ends a SIGSTOPped process.
        if let Err(source) = child.kill() {
            // InvalidInput means it already exited and was reaped; fine.
            if source.kind() != std::io::ErrorKind::InvalidInput {
                let pid = child.id();
                self.child = Some(child);
                return Err(self.signal_error("SIGKILL", pid, source));
            }
        }
        child
            .wait()
            .map_err(|e| Error::io(format!("reaping {}", self.spec.what), e))?;
        Ok(())
    }

    pub(crate) fn stop(&mut self) -> Result<(), Error> {
        if !self.is_running() {
            return Ok(());
        }
        // SIGTERM stays pending on a stopped process; SIGCONT lets it act on it.
        self.signal(libc::SIGTERM, "SIGTERM")?;
        self.signal(libc::SIGCONT, "SIGCONT")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return Ok(());
            }
            thread::sleep(POLL_INTERVAL);
        }
        self.kill()?;
        Err(Error::StopTimeout {
            what: self.spec.what.clone(),
            waited: STOP_TIMEOUT,
        })
    }

    pub(crate) fn pause(&self) -> Result<(), Error> {
        self.signal(libc::SIGSTOP, "SIGSTOP")
    }

    pub(crate) fn resume(&self) -> Result<(), Error> {
        self.signal(libc::SIGCONT, "SIGCONT")
    }

    pub(crate) fn restart(&mut self) -> Result<(), Error> {
        self.kill()?;
        self.spawn_and_wait()
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            // Exited (now reaped) or no longer ours to wait for.
            Some(Ok(Some(_)) | Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// An authenticated plain-TCP connection with [`CONNECT_TIMEOUT`].
    pub(crate) fn connect(&self) -> Result<Connection, Error> {
        self.connect_with(CONNECT_TIMEOUT)
    }

    fn connect_with(&self, timeout: Duration) -> Result<Connection, Error> {
        if matches!(self.spec.readiness, Readiness::ServerTls) {
            return Err(Error::TlsUnsupported {
                what: self.spec.what.clone(),
            });
        }
        let mut conn = Connection::open(self.addr(), timeout)?;
        if let Some(password) = &self.spec.password {
            conn.command(&["AUTH", password])?;
        }
        Ok(conn)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.spec.port))
    }

    fn signal(&self, signal: libc::c_int, name: &'static str) -> Result<(), Error> {
        let Some(pid) = self.pid() else {
            return Err(Error::NotRunning {
                what: self.spec.what.clone(),
            });
        };
        // The child is not reaped until we wait() for it, so its pid cannot
        // have been reused by an unrelated process.
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } == -1 {
            return Err(self.signal_error(name, pid, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn signal_error(&self, signal: &'static str, pid: u32, source: std::io::Error) -> Error {
        Error::Signal {
            what: self.spec.what.clone(),
            signal,
            pid,
            source,
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(format!("opening log {}", log_path.display()), e))?;
        let log_start = log
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", log_path.display()), e))?
            .len();
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io(format!("opening log {}", log_path.display()), e))?;
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .current_dir(self.spec.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = crate::spawn::spawn(cmd).map_err(|e| {
            Error::io(
                format!(
                    "spawning {} for {}",
                    self.spec.program.display(),
                    self.spec.what
                ),
                e,
            )
        })?;
        self.child = Some(child);
        let result = self.wait_ready(log_start);
        if result.is_err() {
            // Leave nothing half-started behind; the error already has the log.
            let _ = self.kill();
        }
        result
    }

    fn wait_ready(&mut self, log_start: u64) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let needs_line = !matches!(self.spec.readiness, Readiness::Ping);
        let mut saw_line = !needs_line;
        let mut waiting_for = format!("no `{READY_LINE}` in the log yet");
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.exited_error(status, log_start));
            }
            if !saw_line {
                saw_line = self.read_log(log_start).contains(READY_LINE);
            }
            if saw_line {
                match self.probe() {
                    Ok(()) => return Ok(()),
                    Err(e) => waiting_for = format!("last probe: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    what: self.spec.what.clone(),
                    waited: START_TIMEOUT,
                    detail: waiting_for,
                    log: self.log_path(),
                    log_tail: self.log_tail(log_start),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn probe(&self) -> Result<(), Error> {
        if matches!(self.spec.readiness, Readiness::ServerTls) {
            return TcpStream::connect_timeout(&self.addr(), PROBE_TIMEOUT)
                .map(drop)
                .map_err(|e| Error::io(format!("connecting to {}", self.addr()), e));
        }
        match self.connect_with(PROBE_TIMEOUT)?.command(&["PING"])? {
            Reply::Status(s) if s == "PONG" => Ok(()),
            other => Err(Error::Protocol {
                what: format!("PING to {}", self.addr()),
                detail: format!("expected PONG, got {other:?}"),
            }),
        }
    }

    /// The exit status if the child has exited (and is now reaped).
    fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    fn exited_error(&self, status: ExitStatus, log_start: u64) -> Error {
        let log_tail = self.log_tail(log_start);
        if log_tail.contains("Address already in use") {
            return Error::PortInUse {
                what: self.spec.what.clone(),
                port: self.spec.port,
                log_tail,
            };
        }
        Error::Exited {
            what: self.spec.what.clone(),
            status: status.to_string(),
            log: self.log_path(),
            log_tail,
        }
    }

    /// This run's part of the log (everything after `start`).
    fn read_log(&self, start: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = fs::File::open(self.log_path())
            && file.seek(SeekFrom::Start(start)).is_ok()
        {
            // A log we cannot read just means "not ready yet" / "no tail".
            let _ = file.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// The last lines of this run's log, with secrets masked.
    fn log_tail(&self, start: u64) -> String {
        let log = self.read_log(start);
        let lines: Vec<&str> = log.lines().collect();
        let mut tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        for secret in self.spec.secrets.iter().filter(|s| !s.is_empty()) {
            tail = tail.replace(secret.as_str(), "***");
        }
        if tail.is_empty() {
            tail = "(log is empty)".to_string();
        }
        tail
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Must run before `spec.dir` is removed, which field drop order
        // guarantees (fields drop after this body).
        let _ = self.kill();
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("what", &self.spec.what)
            .field("pid", &self.pid())
            .field("dir", &self.spec.dir.path())
            .finish_non_exhaustive()
    }
}
