//! The compose file's `loadgen` profile end to end, as an operator runs it: the loadgen image
//! built by `docker/build-image.sh --loadgen` (from this test's own binary), the HA stack (three
//! data nodes, three Sentinels) on free ports, three worker containers sharing one
//! `LOADGEN_START_AT`, then the `loadgen-merge` service. Proves that the profile's wiring (worker
//! numbering, the Sentinel URL, the mounted scenario and results) yields one exact merged run,
//! and leaves nothing behind: `down -v` and the test image removed in guards.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::compose::{Project, compose_ready};
use common::*;
use serde_json::Value;

/// A short token-validation run: enough operations to merge, over in seconds.
const SCENARIO: &str = r#"
name = "compose-token-validation"
description = "The compose loadgen profile's test: api_call only, briefly."
[load]
users = 6
warmup = "0s"
duration = "4s"
[keyspace]
users = 600
sessions_per_user = 1
payload = 64
revoked_probe = 0.0
[mix]
api_call = 1
[slo]
max_error_rate = 0.0
[[slo.latency]]
op = "api_call"
percentile = 99.0
max = "10s"
"#;

/// The image this test builds, removed when the test ends.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The container of a Compose service in this project.
fn container(project: &Project, service: &str) -> String {
    let o = project.compose(&["ps", "-q", service]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!id.is_empty(), "no container for {service}: {:?}", text(&o));
    id
}

/// Polls until every Sentinel's health check passes (the workers' `depends_on` asks for it).
fn wait_healthy(project: &Project, services: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states: Vec<String> = services
            .iter()
            .map(|s| {
                let o = Command::new("docker")
                    .args(["inspect", "-f", "{{.State.Health.Status}}"])
                    .arg(container(project, s))
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            })
            .collect();
        if states.iter().all(|s| s == "healthy") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy after 90 s: {services:?} {states:?}\n{}",
            String::from_utf8_lossy(&project.compose(&["logs", "--tail", "20"]).stdout)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn summaries_under(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").is_file())
        .map(|p| {
            let s = summary(&p);
            (p, s)
        })
        .collect();
    found.sort_by_key(|(_, s)| s["worker"]["index"].as_u64());
    found
}

#[test]
fn three_compose_workers_against_the_ha_stack_merge_into_one_run() {
    let Some(()) = compose_ready() else { return };
    let pid = std::process::id();
    let tag = format!("authority-loadgen:test-{pid}");
    let built = Command::new(root().join("docker/build-image.sh"))
        .args(["--force", "--loadgen", &tag])
        .env("LOADGEN_BINARY", env!("CARGO_BIN_EXE_loadgen"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{:?}", text(&built));
    let _image = Image(tag.clone());

    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(scenarios.path().join("short.toml"), SCENARIO).unwrap();
    let results = tempfile::tempdir().unwrap();
    let password = format!("compose-loadgen-pw-{pid}");
    let ports = free_ports(6);
    let path = |p: &Path| p.display().to_string();
    let mut env = vec![
        ("REDIS_PASSWORD".to_string(), password.clone()),
        ("REDIS_IMAGE".into(), "authority-redis:local".into()),
        ("LOADGEN_IMAGE".into(), tag.clone()),
        ("LOADGEN_SCENARIOS".into(), path(scenarios.path())),
        ("LOADGEN_SCENARIO".into(), "short.toml".into()),
        ("LOADGEN_RESULTS".into(), path(results.path())),
    ];
    for i in 0..3 {
        env.push((format!("REDIS_{i}_PORT"), ports[i].to_string()));
        env.push((format!("SENTINEL_{i}_PORT"), ports[3 + i].to_string()));
    }
    let mut project = Project {
        name: format!("authority-loadgen-test-{pid}"),
        profile: "loadgen",
        env,
    };

    let sentinels = ["sentinel-0", "sentinel-1", "sentinel-2"];
    let up = project.compose(&[&["up", "-d"][..], &sentinels].concat());
    assert!(up.status.success(), "{:?}", text(&up));
    wait_healthy(&project, &sentinels);

    // The stack is up: a start a few seconds ahead is one every worker reaches before it.
    let start = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(6));
    project
        .env
        .push(("LOADGEN_START_AT".into(), start.to_string()));
    let workers = ["loadgen-0", "loadgen-1", "loadgen-2"];
    let up = project.compose(&[&["up", "-d", "--no-deps"][..], &workers].concat());
    assert!(up.status.success(), "{:?}", text(&up));
    let ids: Vec<String> = workers.iter().map(|w| container(&project, w)).collect();
    let waited = Command::new("docker")
        .arg("wait")
        .args(&ids)
        .output()
        .unwrap();
    let codes: Vec<String> = String::from_utf8_lossy(&waited.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let logs =
        String::from_utf8_lossy(&project.compose(&[&["logs"][..], &workers].concat()).stdout)
            .into_owned();
    assert!(
        codes.len() == 3 && codes.iter().all(|c| c == "0" || c == "1"),
        "worker exit codes {codes:?}\n{logs}"
    );
    assert!(!logs.contains(&password), "a worker logged the password");

    let merged = project.compose(&["run", "--rm", "loadgen-merge"]);
    let (stdout, stderr) = text(&merged);
    assert!(
        merged.status.code().is_some_and(|c| c <= 1),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("results: /results/merged"), "{stdout}");

    let workers = summaries_under(&results.path().join("workers"));
    assert_eq!(workers.len(), 3, "three worker directories");
    let m = summary(&results.path().join("merged"));
    assert_eq!(m["workers"], 3);
    assert_eq!(m["target"]["kind"], "sentinel", "{}", m["target"]);
    for (i, (dir, w)) in workers.iter().enumerate() {
        assert_eq!(w["worker"]["index"], i as u64, "{}", dir.display());
        assert_eq!(w["worker"]["count"], 3);
        assert_eq!(
            w["worker"]["start_at"],
            start.to_string(),
            "{}",
            w["worker"]
        );
    }
    for (op, stats) in m["ops"].as_object().unwrap() {
        let sum: u64 = workers
            .iter()
            .map(|(_, w)| w["ops"][op]["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(stats["count"].as_u64().unwrap(), sum, "{op}");
    }
    let all = m["ops"]["all"]["count"].as_u64().unwrap();
    assert!(
        all > 100,
        "the workers ran: {all} operations\n{logs}\n{stdout}"
    );
    println!(
        "3 Compose workers merged: {all} operations, p99 {} µs, skew {} ms",
        m["ops"]["all"]["response"]["p99_us"], m["merge"]["clock_skew_ms"]
    );
    // Nothing the workers or the merge wrote holds the password.
    for dir in [results.path().join("merged")]
        .into_iter()
        .chain(workers.iter().map(|(d, _)| d.clone()))
    {
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(
                !text.contains(&password),
                "{} holds the password",
                f.display()
            );
        }
    }
    drop(project);
}
