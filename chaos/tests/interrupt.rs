//! Ctrl-C on a real `chaos run`: it must exit promptly with 130 and leave nothing behind — no
//! `redis-server` / `redis-sentinel` of the run, no temporary directory, no container.
//!
//! What belongs to the run is found without trusting the run's own account of it:
//! - the child gets a private `TMPDIR`; every node directory `localredis` creates is under it, and
//!   each node runs with its directory as working directory, so the run's Redis processes are
//!   exactly those whose `/proc/<pid>/cwd` is under that `TMPDIR` (Redis rewrites its command
//!   line, so `cmdline` would not show it);
//! - its containers (and, for a partition experiment, its bridge network) are exactly those
//!   labelled `authority-chaos.pid=<child pid>`;
//! - the ports printed in its "nodes up" line must refuse connections afterwards.
//!
//! Two moments for each backend: as soon as the first node of the run exists (mid-way through
//! start-up: a container whose creation is still in flight used to escape the sweep), and once the
//! whole topology is up and the workload runs; on Docker also a partition experiment's topology
//! (bridge network) while the workload runs. Every wait polls for an observable state, bounded.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use support::{containers_labelled, docker_ready, have_binaries, networks_labelled};

/// Long enough never to end (or fault) on its own before the test interrupts it.
const EXPERIMENT: &str = r#"
name = "interrupted"
duration = "120s"
[topology]
kind = "sentinel"
[[fault]]
at = "100s"
action = "kill"
target = "primary"
"#;

/// The same on a bridge network: a `partition` fault makes the Docker backend create one.
const PARTITIONED: &str = r#"
name = "interrupted-partitioned"
duration = "120s"
[topology]
kind = "sentinel"
[[fault]]
at = "100s"
action = "partition"
target = "primary"
"#;

/// A `chaos run` child with its private `TMPDIR` and its stderr, line by line.
struct ChaosRun {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    tmp: tempfile::TempDir,
    _files: tempfile::TempDir,
}

impl ChaosRun {
    fn start(backend: &str, image: Option<&str>) -> ChaosRun {
        Self::start_with(backend, image, EXPERIMENT)
    }

    fn start_with(backend: &str, image: Option<&str>, experiment_text: &str) -> ChaosRun {
        let files = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let experiment = files.path().join("interrupted.toml");
        std::fs::write(&experiment, experiment_text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
        cmd.arg("run")
            .arg(&experiment)
            .args(["--backend", backend, "--results"])
            .arg(files.path().join("results"))
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(image) = image {
            cmd.args(["--image", image]);
        }
        let mut child = cmd.spawn().expect("start chaos");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChaosRun {
            child,
            lines,
            seen: Vec::new(),
            tmp,
            _files: files,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `ready` (every 20 ms, at most `limit`) while collecting stderr; panics with what the
    /// run printed if it never holds or the run ends first.
    fn wait_until<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("chaos ended before {what}:\n{}", self.seen.join("\n"))
                }
            }
            if let Some(v) = ready(&self.seen) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}:\n{}",
                self.seen.join("\n")
            );
        }
    }

    /// The pids of the run's first Redis processes, as soon as there is one (mid-way through
    /// start-up: the others are being started).
    fn wait_first_redis_process(&mut self) -> Vec<u32> {
        let tmp = self.tmp.path().to_path_buf();
        let found = self.wait_until("first Redis process", Duration::from_secs(30), |_| {
            let found = redis_processes_under(&tmp);
            (!found.is_empty()).then_some(found)
        });
        found.iter().map(|(pid, _)| *pid).collect()
    }

    /// The ports of the "nodes up" line, once it is printed.
    fn wait_nodes_up(&mut self) -> Vec<u16> {
        let line = self.wait_until("`nodes up` line", Duration::from_secs(60), |seen| {
            seen.iter().find(|l| l.contains("nodes up")).cloned()
        });
        let ports: Vec<u16> = line
            .split(':')
            .skip(2)
            .filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect();
        assert_eq!(ports.len(), 6, "six ports in {line:?}");
        ports
    }

    /// Sends `signal`, then waits (≤ `limit`) for the exit: (exit code, time it took).
    fn interrupt(&mut self, signal: i32, limit: Duration) -> (i32, Duration) {
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child, which is not reaped before this returns.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.try_iter());
                return (status.code().unwrap_or(-1), sent.elapsed());
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "chaos did not exit within {limit:?} of signal {signal}:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C: exit code 130 within `limit`, nothing of the run on disk or among the processes.
    fn interrupt_and_check(&mut self, limit: Duration, pids: &[u32], ports: &[u16]) {
        self.signal_and_check(libc::SIGINT, limit, pids, ports);
    }

    /// `signal`: exit code 128 + `signal` within `limit`, nothing of the run left.
    fn signal_and_check(&mut self, signal: i32, limit: Duration, pids: &[u32], ports: &[u16]) {
        let (code, took) = self.interrupt(signal, limit);
        let log = self.seen.join("\n");
        eprintln!("chaos exited with {code} {took:?} after signal {signal}");
        assert_eq!(code, 128 + signal, "{log}");
        assert!(log.contains("interrupted by SIG"), "{log}");
        assert!(log.contains("every node of the run was removed"), "{log}");
        let left = redis_processes_under(self.tmp.path());
        assert!(
            left.is_empty(),
            "processes of the run left: {left:?}\n{log}"
        );
        for pid in pids {
            assert!(
                !is_redis(*pid),
                "redis process {pid} of the run still exists (or was not reaped)"
            );
        }
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(dirs.is_empty(), "temporary directories left: {dirs:?}");
        for port in ports {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
                "port {port} still accepts connections"
            );
        }
    }
}

impl Drop for ChaosRun {
    fn drop(&mut self) {
        // A failed assertion must not leave the run going.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Redis processes (pid, comm) whose working directory is under `dir`.
fn redis_processes_under(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            cwd.starts_with(&dir).then(|| (pid, comm(pid)))
        })
        .collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Whether `pid` is (still, or as a zombie) a Redis process.
fn is_redis(pid: u32) -> bool {
    comm(pid).starts_with("redis-")
}

#[test]
fn ctrl_c_during_start_up_leaves_no_process_and_no_directory() {
    if !have_binaries() {
        return;
    }
    let mut run = ChaosRun::start("process", None);
    let pids = run.wait_first_redis_process();
    run.interrupt_and_check(Duration::from_secs(10), &pids, &[]);
}

/// What CI runners and `timeout` send: the same cleanup, exit code 143.
#[test]
fn sigterm_during_start_up_is_cleaned_up_like_ctrl_c() {
    if !have_binaries() {
        return;
    }
    let mut run = ChaosRun::start("process", None);
    let pids = run.wait_first_redis_process();
    run.signal_and_check(libc::SIGTERM, Duration::from_secs(10), &pids, &[]);
}

#[test]
fn ctrl_c_during_the_workload_leaves_no_process_and_no_directory() {
    if !have_binaries() {
        return;
    }
    let mut run = ChaosRun::start("process", None);
    let ports = run.wait_nodes_up();
    let found = redis_processes_under(run.tmp.path());
    assert_eq!(
        found
            .iter()
            .filter(|(_, comm)| comm.starts_with("redis-"))
            .count(),
        6,
        "the six nodes, found through their working directory: {found:?}"
    );
    let pids: Vec<u32> = found.iter().map(|(pid, _)| *pid).collect();
    run.interrupt_and_check(Duration::from_secs(10), &pids, &ports);
}

/// Both Docker moments in one test: they share the engine and would only slow each other down.
#[test]
fn ctrl_c_on_the_docker_backend_leaves_no_container_and_no_network() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(image) = rt.block_on(docker_ready()) else {
        return;
    };
    let of = |run: &ChaosRun| format!("authority-chaos.pid={}", run.pid());

    // Mid-way through start-up: as soon as the first container exists, others are in flight.
    let mut run = ChaosRun::start("docker", Some(&image));
    let label = of(&run);
    let first = run.wait_until("first container", Duration::from_secs(60), |_| {
        let c = rt.block_on(containers_labelled(&label));
        (!c.is_empty()).then_some(c)
    });
    eprintln!("interrupting with {first:?} created");
    run.interrupt_and_check(Duration::from_secs(60), &[], &[]);
    let left = rt.block_on(containers_labelled(&label));
    assert!(
        left.is_empty(),
        "containers left after Ctrl-C in start-up: {left:?}"
    );

    // With the topology up and the workload running.
    let mut run = ChaosRun::start("docker", Some(&image));
    let label = of(&run);
    let ports = run.wait_nodes_up();
    assert_eq!(rt.block_on(containers_labelled(&label)).len(), 6);
    run.interrupt_and_check(Duration::from_secs(60), &[], &ports);
    let left = rt.block_on(containers_labelled(&label));
    assert!(left.is_empty(), "containers left after Ctrl-C: {left:?}");

    // A partition experiment's bridge network goes too.
    let mut run = ChaosRun::start_with("docker", Some(&image), PARTITIONED);
    let label = of(&run);
    let ports = run.wait_nodes_up();
    assert_eq!(rt.block_on(networks_labelled(&label)).len(), 1);
    run.interrupt_and_check(Duration::from_secs(60), &[], &ports);
    let left = rt.block_on(containers_labelled(&label));
    let nets = rt.block_on(networks_labelled(&label));
    assert!(
        left.is_empty() && nets.is_empty(),
        "left after Ctrl-C: containers {left:?}, networks {nets:?}"
    );
}
