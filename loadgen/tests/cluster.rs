//! loadgen against a real Redis Cluster (3 primaries made with `redis-cli --cluster create`), the
//! guide's third `REDIS_URL` form: every command exits as it does on one server, `doctor` counts
//! keys on every primary, the report lists the primaries and their slots, and no line printed is
//! longer than 1,000 characters (a cluster's `INFO` is 20 KB when dumped whole).

mod common;

use std::time::Duration;

use cache::{ConnectOptions, RedisUrl};
use common::*;
use localredis::{Cluster, ServerConfig};

/// Every line of stdout and stderr is at most 1,000 characters.
fn short_lines(what: &str, o: &std::process::Output) {
    let (stdout, stderr) = text(o);
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            line.chars().count() <= 1000,
            "{what}: a {}-character line: {}…",
            line.chars().count(),
            line.chars().take(200).collect::<String>()
        );
    }
}

#[test]
fn every_command_works_on_a_cluster_and_doctor_counts_keys_on_every_primary() {
    let Some(()) = redis_available() else { return };
    let cluster = Cluster::start(3, ServerConfig::default().maxmemory("64mb")).unwrap();
    let url = cluster.url();
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();

    // Keys without a TTL, spread over the slots: each is written on the node that owns its slot
    // (the others answer MOVED).
    for i in 0..30 {
        let key = format!("authority:session:immortal-{i}");
        assert!(
            cluster
                .nodes
                .iter()
                .any(|n| n.command(&["SET", &key, "x"]).is_ok()),
            "no node took {key}"
        );
    }
    let on_each: Vec<i64> = cluster
        .nodes
        .iter()
        .map(|n| match n.command(&["DBSIZE"]) {
            Ok(localredis::resp::Reply::Integer(k)) => k,
            other => panic!("DBSIZE: {other:?}"),
        })
        .collect();
    assert!(
        on_each.iter().all(|k| *k > 0),
        "keys on every primary: {on_each:?}"
    );
    let report = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(loadgen::testing::diagnose(
            &RedisUrl::parse(&url).unwrap(),
            &ConnectOptions {
                connect_timeout: Duration::from_secs(2),
                ..Default::default()
            },
        ));
    let keys = report.keys.as_ref().expect("keys audited");
    assert_eq!(keys.per_kind["session"].without_ttl, 30, "{keys:?}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "keys-without-ttl"),
        "{:?}",
        report.findings
    );
    assert!(report.reachable);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.check != "info-unavailable"),
        "{:?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "cluster-primary-without-replica"),
        "{:?}",
        report.findings
    );

    // run: as on one server, with the primaries and their slots in the report.
    let mut args = vec![
        "run",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--out",
        &out_s,
    ];
    args.extend(QUICK);
    let o = run(&args);
    short_lines("run", &o);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["target"]["kind"], "cluster");
    let nodes = s["redis"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes
            .iter()
            .all(|n| !n["slots"].as_str().unwrap().is_empty())
    );
    assert!(s["bottleneck"]["server"].is_object(), "{}", s["bottleneck"]);
    assert!(s["ops"]["all"]["count"].as_u64().unwrap() > 0);

    // capacity: measured on every primary, projected for the nodes' maxmemory.
    let o = run(&[
        "capacity",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--samples",
        "200",
        "--format",
        "json",
    ]);
    short_lines("capacity", &o);
    let (stdout, stderr) = text(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{stdout}\n{stderr}");
    let c: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(c["bytes_per_session"].as_f64().unwrap() > 0.0, "{c}");

    // sweep: one step, no knee, exit 1 as on one server.
    let o = run(&[
        "sweep",
        "scenarios/load/smoke.toml",
        "--redis-url",
        &url,
        "--out",
        &out_s,
        "--slo",
        "p99<10s",
        "--start",
        "200",
        "--max-steps",
        "1",
        "--step-duration",
        "1s",
        "--set",
        "load.warmup=0s",
    ]);
    short_lines("sweep", &o);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(results_dir(&stdout).join("sweep.json").is_file());

    // evict against the target's own settings: a verdict, not a crash.
    let o = run(&[
        "evict",
        "scenarios/load/eviction.toml",
        "--redis-url",
        &url,
        "--out",
        &out_s,
        "--duration",
        "1s",
        "--set",
        "load.warmup=0s",
    ]);
    short_lines("evict", &o);
    let (stdout, stderr) = text(&o);
    // 3 × 64 MB hold this keyspace without pressure: honestly NOT TESTED (exit 3), never a crash.
    assert!(
        matches!(o.status.code(), Some(0 | 1 | 3)),
        "{stdout}\n{stderr}"
    );
    assert!(
        ["SAFE", "UNSAFE", "NOT TESTED"]
            .iter()
            .any(|v| stdout.contains(v) || stderr.contains(v)),
        "{stdout}\n{stderr}"
    );
    assert!(results_dir(&stdout).join("evict.json").is_file());
    drop(cluster);
}

#[test]
fn a_throwaway_cluster_is_started_from_the_scenario() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    let mut args = vec![
        "run",
        "scenarios/load/smoke.toml",
        "--out",
        &out_s,
        "--set",
        "redis.topology=\"cluster\"",
    ];
    args.extend(QUICK);
    let o = run(&args);
    short_lines("run", &o);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("a cluster of 3 primaries"), "{stderr}");
    let s = summary(&results_dir(&stdout));
    assert_eq!(s["target"]["kind"], "cluster");
    assert_eq!(s["target"]["throwaway"], true);
    assert_eq!(s["redis"]["nodes"].as_array().unwrap().len(), 3);
}
