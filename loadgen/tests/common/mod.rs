//! Helpers shared by the integration tests: the binary, run from the workspace root without an
//! inherited `REDIS_URL`, and readers for what it prints and writes.
#![allow(dead_code)] // each test file uses its own subset

pub mod compose;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use localredis::require_binary_for_test;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The binary, run from the workspace root, never inheriting a REDIS_URL.
pub fn loadgen(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    c.current_dir(root()).env_remove("REDIS_URL").args(args);
    c
}

pub fn run(args: &[&str]) -> Output {
    loadgen(args).output().expect("loadgen runs")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Skips (returns None) when redis-server is not installed, unless CI says it must be.
pub fn redis_available() -> Option<()> {
    match require_binary_for_test("redis-server") {
        Ok(_) => Some(()),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Short and lenient: these tests check behaviour, not speed.
pub const QUICK: [&str; 8] = [
    "--duration",
    "2s",
    "--set",
    "load.warmup=0s",
    "--set",
    "slo.latency.0.max=10s",
    "--set",
    "slo.min_throughput=0",
];

pub fn results_dir(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line in: {stdout}"));
    PathBuf::from(line)
}

pub fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

pub fn throwaway_port(stderr: &str) -> u16 {
    let at = stderr
        .find("throwaway redis-server at 127.0.0.1:")
        .expect("says it started a server");
    stderr[at..]
        .split(':')
        .nth(1)
        .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// What one `loadgen evict` run left: exit code, stdout + stderr, and `evict.json` if written.
pub struct Evicted {
    pub code: Option<i32>,
    pub log: String,
    pub report: serde_json::Value,
}

/// `loadgen evict <scenario> --redis-url <url>`, 2 s of load without warm-up, results under `out`.
pub fn evict_on(scenario: &str, url: &str, out: &Path) -> Evicted {
    let out = out.display().to_string();
    let o = run(&[
        "evict",
        scenario,
        "--redis-url",
        url,
        "--duration",
        "2s",
        "--set",
        "load.warmup=0s",
        "--out",
        &out,
    ]);
    let (stdout, stderr) = text(&o);
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .and_then(|d| std::fs::read_to_string(Path::new(d).join("evict.json")).ok())
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or(serde_json::Value::Null);
    Evicted {
        code: o.status.code(),
        log: format!("{stdout}\n{stderr}"),
        report,
    }
}
