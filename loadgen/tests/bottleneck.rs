//! Who was the limit, decided under real CPU throttling: the same workload is attributed to the
//! generator when loadgen runs under a cgroup CPU quota, and to the server when redis-server does.
//! (Each verdict is shown failing the other way round: a test would pass if the rule always said
//! the same thing, so both directions are run.)
//!
//! A third case needs no cgroup: CPU hogs on every core beside loadgen and Redis make the machine
//! crowded, and the verdict must be `unknown` (neither side's figures mean anything), not a
//! limit blamed on loadgen or Redis. The tests take turns ([`SERIAL`]): each one's load would
//! disturb another's verdict.
//!
//! The quota is a cgroup of this machine's CPU controller (v1 `cpu.cfs_quota_us` or v2 `cpu.max`),
//! made by the test and removed afterwards. Without a writable cgroup CPU controller (not root,
//! a locked-down container) the tests say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

/// One test at a time: each loads the machine in a way that would change another's verdict.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

use common::*;
use localredis::{RedisServer, ServerConfig};

/// A cgroup with a CPU quota, removed on drop (its processes are moved back to the root first).
struct Cgroup {
    dir: PathBuf,
    root: PathBuf,
}

impl Cgroup {
    /// A cgroup limited to `cores` (e.g. 0.2), or `None` when none can be made here.
    fn new(name: &str, cores: f64) -> Option<Cgroup> {
        let period = 100_000u64;
        let quota = (cores * period as f64) as u64;
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let (root, dir) = if v1.join("cpu.cfs_quota_us").exists() {
            (
                v1.to_path_buf(),
                v1.join(format!("{name}-{}", std::process::id())),
            )
        } else {
            let v2 = Path::new("/sys/fs/cgroup");
            (
                v2.to_path_buf(),
                v2.join(format!("{name}-{}", std::process::id())),
            )
        };
        std::fs::create_dir_all(&dir).ok()?;
        let cg = Cgroup { dir, root };
        let written = if cg.dir.join("cpu.cfs_quota_us").exists() {
            std::fs::write(cg.dir.join("cpu.cfs_period_us"), period.to_string()).is_ok()
                && std::fs::write(cg.dir.join("cpu.cfs_quota_us"), quota.to_string()).is_ok()
        } else {
            std::fs::write(cg.dir.join("cpu.max"), format!("{quota} {period}")).is_ok()
        };
        written.then_some(cg)
    }

    /// Moves a process (all its threads) into the cgroup.
    fn add(&self, pid: u32) -> bool {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in pids.lines() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn skip(why: &str) {
    eprintln!("skipped: {why}");
}

/// Runs token-validation (one GET per op) for 3 s against `url` with `prefix` before loadgen's
/// command line (e.g. a shell that moves itself into a cgroup first); returns the summary.
fn run_token_validation(url: &str, cgroup: Option<&Cgroup>) -> (serde_json::Value, String) {
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let bin = env!("CARGO_BIN_EXE_loadgen");
    let args = [
        "run",
        "scenarios/load/token-validation.toml",
        "--redis-url",
        url,
        "--duration",
        "3s",
        "--users",
        "50",
        "--set",
        "load.warmup=1s",
        "--set",
        "slo.latency=[]",
        "--set",
        "slo.min_throughput=0",
        "--out",
        &out_s,
    ];
    let mut cmd = match cgroup {
        // The shell moves itself into the cgroup, then becomes loadgen: every thread inherits it.
        Some(cg) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "echo $$ > {} && exec \"$0\" \"$@\"",
                    cg.dir.join("cgroup.procs").display()
                ))
                .arg(bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    let o = cmd
        .current_dir(root())
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stdout}\n{stderr}");
    let dir = results_dir(&stdout);
    let s = summary(&dir);
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    (s, format!("{stdout}\n{report}"))
}

#[test]
fn loadgen_under_a_cpu_quota_is_the_generator_bottleneck() {
    let _turn = serial();
    let Some(()) = redis_available() else { return };
    let Some(cg) = Cgroup::new("loadgen-quota", 0.25) else {
        return skip("no writable cgroup CPU controller (run as root on Linux)");
    };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let (s, text) = run_token_validation(&server.url(), Some(&cg));
    let b = &s["bottleneck"];
    eprintln!("{}", serde_json::to_string_pretty(b).unwrap());
    assert_eq!(b["verdict"], "generator", "{b}");
    assert!(
        b["generator"]["cores"].as_f64().unwrap() < 0.5,
        "the quota was seen: {b}"
    );
    assert!(text.contains("bottleneck: generator"), "{text}");
    assert!(text.contains("## Bottleneck: generator"), "{text}");
}

#[test]
fn redis_under_a_cpu_quota_is_the_server_bottleneck() {
    let _turn = serial();
    let Some(()) = redis_available() else { return };
    let Some(cg) = Cgroup::new("redis-quota", 0.05) else {
        return skip("no writable cgroup CPU controller (run as root on Linux)");
    };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    assert!(cg.add(server.pid().expect("redis-server pid")));
    let (s, text) = run_token_validation(&server.url(), None);
    let b = &s["bottleneck"];
    eprintln!("{}", serde_json::to_string_pretty(b).unwrap());
    assert_eq!(b["verdict"], "server", "{b}");
    assert!(
        b["generator"]["utilisation"].as_f64().unwrap() < 0.7,
        "loadgen had headroom: {b}"
    );
    // Redis's own CPU was read (INFO before and after, same run_id), not only the probe.
    assert!(
        b["server"]["cpu_us_per_op"].as_f64().unwrap() > 0.0,
        "Redis's CPU measured: {b}"
    );
    assert!(text.contains("bottleneck: server"), "{text}");
    drop(server);
}

/// Busy-looping shells, one per core, killed on drop.
struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn on_a_machine_crowded_by_other_processes_the_verdict_is_unknown() {
    let _turn = serial();
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hogs = Hogs(
        (0..cores)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("start a CPU hog")
            })
            .collect(),
    );
    let (s, text) = run_token_validation(&server.url(), None);
    drop(hogs);
    let b = &s["bottleneck"];
    eprintln!("{}", serde_json::to_string_pretty(b).unwrap());
    assert_eq!(b["verdict"], "unknown", "{b}");
    assert!(
        b["rule"].as_str().unwrap().contains("other processes took"),
        "{b}"
    );
    assert!(b["host_utilisation"].as_f64().unwrap() >= 0.9, "{b}");
    assert!(text.contains("bottleneck: unknown"), "{text}");
    drop(server);
}
