//! A Sentinel failover in the middle of `loadgen run`, with real sentinels: the run reports the
//! primary at start and end, the switch, and the unavailability window — within 1 s of the write
//! gap an independent writer measures on the same fault (the chaos checker's measure: the time
//! from the last acknowledged write before the kill to the first one after it) — and no counter
//! delta goes negative although two servers answered.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::{ConnectOptions, Redis, RedisUrl};
use common::*;
use localredis::{RedisServer, Sentinel, SentinelConfig, ServerConfig};

fn have_sentinel() -> bool {
    localredis::require_binary_for_test("redis-sentinel")
        .map_err(|why| eprintln!("skipped: {why}"))
        .is_ok()
}

/// Polls `ok` every 50 ms for up to `within`.
fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failover_mid_run_is_one_unavailability_window_matching_an_independent_writer() {
    let Some(()) = redis_available() else { return };
    if !have_sentinel() {
        return;
    }
    let mut primary = RedisServer::start(ServerConfig::default()).unwrap();
    let replica =
        RedisServer::start(ServerConfig::default().replica_of("127.0.0.1", primary.port()))
            .unwrap();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| {
            let mut c = SentinelConfig::monitoring("mymaster", &primary);
            c.quorum = 2;
            c.down_after_ms = 1000;
            c.failover_timeout_ms = 3000;
            Sentinel::start(c).unwrap()
        })
        .collect();
    wait_for(
        "the sentinels to know the replica",
        Duration::from_secs(30),
        || {
            sentinels.iter().all(|s| {
                s.command(&["SENTINEL", "replicas", "mymaster"])
                    .ok()
                    .and_then(|r| r.as_array().map(|a| !a.is_empty()))
                    .unwrap_or(false)
            })
        },
    );
    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect();
    let url = format!("redis://{}/mymaster", hosts.join(","));

    // The independent writer: one SET every 10 ms through its own handle, outcomes timed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let writes: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (writes, stop, url) = (writes.clone(), stop.clone(), url.clone());
        rt.spawn(async move {
            let redis = Redis::connect(&RedisUrl::parse(&url).unwrap(), &ConnectOptions::default())
                .await
                .unwrap();
            let mut conn = redis.clone();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = redis::cmd("SET")
                    .arg("failover-probe")
                    .arg("x")
                    .query_async::<()>(&mut conn)
                    .await
                    .is_ok();
                writes.lock().unwrap().push((Instant::now(), ok));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut child = loadgen(&[
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--duration",
        "14s",
        "--set",
        "load.warmup=0s",
        "--set",
        "slo.latency=[]",
        "--set",
        "slo.max_error_rate=1",
        "--set",
        "slo.min_throughput=0",
        "--out",
        &out_s,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    while !seen.contains("running:") {
        match lines.next() {
            Some(Ok(l)) => seen.push_str(&(l + "\n")),
            _ => panic!("loadgen ended before the load started:\n{seen}"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    std::thread::sleep(Duration::from_secs(3));
    // `kill` returns once the process is gone: a write acknowledged after this instant came from
    // another server, one acknowledged just before may have raced the signal.
    primary.kill().unwrap();
    let killed = Instant::now();
    let o = child.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(writer).unwrap();
    let (stdout, _) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stdout}");

    // The writer's gap around the kill.
    let writes = writes.lock().unwrap();
    let last_ok_before = writes
        .iter()
        .filter(|(t, ok)| *ok && *t <= killed)
        .map(|(t, _)| *t)
        .max()
        .expect("writes before the kill");
    let first_ok_after = writes
        .iter()
        .filter(|(t, ok)| *ok && *t > killed)
        .map(|(t, _)| *t)
        .min()
        .expect("the writer recovered");
    let gap = first_ok_after.duration_since(last_ok_before).as_secs_f64();

    let s = summary(&results_dir(&stdout));
    let a = &s["availability"];
    eprintln!(
        "writer gap {gap:.2} s; loadgen: {}",
        serde_json::to_string_pretty(a).unwrap()
    );
    let windows = a["windows"].as_array().unwrap();
    assert!(!windows.is_empty(), "no unavailability window: {a}");
    let longest = windows
        .iter()
        .map(|w| w["duration_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        (longest - gap).abs() <= 1.0,
        "loadgen's window {longest:.2} s vs the writer's gap {gap:.2} s"
    );
    let w = windows
        .iter()
        .find(|w| w["duration_s"].as_f64().unwrap() == longest)
        .unwrap();
    assert!(w["failed_ops"].as_u64().unwrap() > 0, "{w}");
    assert_ne!(a["primary_at_start"], a["primary_at_end"], "{a}");
    assert_eq!(
        a["primary_at_end"],
        format!("127.0.0.1:{}", replica.port()),
        "the replica was promoted: {a}"
    );
    assert!(!a["switches"].as_array().unwrap().is_empty(), "{a}");
    for (k, v) in s["redis"]["deltas"].as_object().unwrap() {
        assert!(v.as_f64().unwrap() >= 0.0, "delta {k} = {v}");
    }
    let report = std::fs::read_to_string(results_dir(&stdout).join("report.md")).unwrap();
    assert!(report.contains("## Availability"), "{report}");
    assert!(stdout.contains("unavailable from "), "{stdout}");
    drop(sentinels);
}
