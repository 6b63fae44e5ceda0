//! Scale-out as an operator runs it: three `loadgen run --worker I/3` processes against one real
//! redis-server with a shared `--start-at`, then `loadgen merge`. The merged numbers are checked
//! against the workers' own files, read independently here: op counts add up exactly, and every
//! merged percentile is the percentile of one histogram built from every `latency.hlog` entry of
//! every worker. Then the merged run goes through `compare` (against itself: pass; against a
//! slowed copy: flagged), and the merge refuses sets that are not one run, naming the directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use common::*;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use localredis::{RedisServer, ServerConfig};
use serde_json::Value;

const SCENARIO: &str = "scenarios/load/smoke.toml";

/// Starts the three workers at once (sharing one start two seconds ahead) and waits for them;
/// returns their results directories.
fn three_workers(url: &str, out: &Path) -> Vec<PathBuf> {
    let start = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3));
    let start = start.to_string();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let worker = format!("{i}/3");
            let dir = out.join(format!("w{i}"));
            let mut args = vec![
                "run",
                SCENARIO,
                "--redis-url",
                url,
                "--worker",
                &worker,
                "--start-at",
                &start,
                "--out",
                dir.to_str().unwrap(),
            ];
            // compare needs 4 per-second samples a side: a longer window than QUICK's.
            args.extend(["--duration", "5s"]);
            args.extend(&QUICK[2..]);
            loadgen(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("loadgen starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            let (stdout, stderr) = text(&o);
            assert!(
                o.status.code().is_some_and(|c| c <= 1),
                "{stdout}\n{stderr}"
            );
            results_dir(&stdout)
        })
        .collect()
}

/// Every interval of every tag in an `.hlog`, decoded here without loadgen's code.
fn hlog_entries(path: &Path) -> Vec<(String, Histogram<u64>)> {
    let bytes = std::fs::read(path).unwrap();
    IntervalLogIterator::new(&bytes)
        .filter_map(|e| match e.unwrap() {
            LogEntry::Interval(i) => Some(i),
            _ => None,
        })
        .map(|i| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(i.encoded_histogram())
                .unwrap();
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut std::io::Cursor::new(raw))
                .unwrap();
            (i.tag().unwrap().as_str().to_string(), h)
        })
        .collect()
}

fn percentiles(h: &Histogram<u64>) -> Value {
    serde_json::json!({
        "p50_us": h.value_at_quantile(0.5),
        "p90_us": h.value_at_quantile(0.9),
        "p99_us": h.value_at_quantile(0.99),
        "p99_9_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

fn merge(args: &[&str]) -> (i32, String, String) {
    let o = run(&[&["merge"], args].concat());
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

#[test]
fn three_workers_merge_exactly_and_the_merge_refuses_what_is_not_one_run() {
    let Some(()) = redis_available() else { return };
    let server = RedisServer::start(ServerConfig::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dirs = three_workers(&server.url(), tmp.path());
    let shown: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    let merged = tmp.path().join("merged");
    let (code, out, err) = merge(&[&shown[..], &["--out", merged.to_str().unwrap()]].concat());
    assert!(code <= 1, "{out}\n{err}");
    let m = summary(&merged);
    assert_eq!(m["workers"], 3);
    let workers: Vec<Value> = dirs.iter().map(|d| summary(d)).collect();

    // Counts: the merged count is the workers' sum, op by op.
    let ops = m["ops"].as_object().unwrap();
    for (op, stats) in ops {
        let sum: u64 = workers
            .iter()
            .map(|w| w["ops"][op]["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(stats["count"].as_u64().unwrap(), sum, "{op}");
    }
    assert!(m["ops"]["all"]["count"].as_u64().unwrap() > 0);

    // Percentiles: equal to those of the union of every worker's raw hlog entries.
    let mut union: std::collections::BTreeMap<String, Histogram<u64>> = Default::default();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for d in &dirs {
        for (tag, h) in hlog_entries(&d.join("latency.hlog")) {
            union
                .entry(tag.clone())
                .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).unwrap())
                .add(&h)
                .unwrap();
            if tag.ends_with(".response") {
                all.add(&h).unwrap();
            }
        }
    }
    let mut compared = 0;
    for (tag, h) in &union {
        let (op, kind) = tag.rsplit_once('.').unwrap();
        let got = &m["ops"][op][kind];
        for (k, v) in percentiles(h).as_object().unwrap() {
            assert_eq!(&got[k], v, "{tag} {k}");
        }
        assert_eq!(
            m["ops"][op]["count"].as_u64().unwrap(),
            union[&format!("{op}.response")].len()
        );
        compared += 1;
    }
    assert!(compared >= 4, "several ops ran: {compared} tags");
    assert_eq!(
        m["ops"]["all"]["response"]["p99_us"],
        percentiles(&all)["p99_us"]
    );
    assert_eq!(m["ops"]["all"]["count"].as_u64().unwrap(), all.len());
    // The merged hlog holds the same union.
    let merged_all: u64 = hlog_entries(&merged.join("latency.hlog"))
        .iter()
        .filter(|(t, _)| t.ends_with(".response"))
        .map(|(_, h)| h.len())
        .sum();
    assert_eq!(merged_all, all.len());

    // Invariants: their checked counts add up; the workers and the scenario are whole again.
    let checked: u64 = workers
        .iter()
        .map(|w| w["invariants"]["sessions_checked"].as_u64().unwrap())
        .sum();
    assert_eq!(
        m["invariants"]["sessions_checked"].as_u64().unwrap(),
        checked
    );
    assert_eq!(
        m["config"]["load"]["users"],
        workers[0]["worker"]["count"]
            .as_u64()
            .map(|_| {
                workers
                    .iter()
                    .map(|w| w["config"]["load"]["users"].as_u64().unwrap())
                    .sum::<u64>()
            })
            .unwrap()
    );
    assert_eq!(m["config"]["seed"], workers[0]["worker"]["base_seed"]);
    let idx: Vec<u64> = m["merge"]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [0, 1, 2]);
    assert!(m["merge"]["clock_skew_ms"].is_number(), "{}", m["merge"]);
    let report = std::fs::read_to_string(merged.join("report.md")).unwrap();
    assert!(
        report.contains("## Workers") && report.contains("3 workers merged"),
        "{report}"
    );
    assert!(merged.join("latency.svg").is_file());
    // Redis: the union window, not one worker's: at least every worker's own growth.
    let calls = |s: &Value| {
        s["redis"]["deltas"]["total_commands_processed"]
            .as_f64()
            .unwrap()
    };
    assert!(
        workers.iter().all(|w| calls(&m) >= calls(w)),
        "{}",
        m["redis"]["deltas"]
    );

    // compare takes it: against itself it passes, against a slowed copy it flags.
    let mdir = merged.to_str().unwrap();
    let o = run(&["compare", mdir, mdir]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let slow = tmp.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    let mut s = m.clone();
    for series in ["p99_us"] {
        for v in s["series"][series].as_object_mut().unwrap().values_mut() {
            for x in v.as_array_mut().unwrap() {
                *x = Value::from(x.as_u64().unwrap() * 5 + 5000);
            }
        }
    }
    for op in s["ops"].as_object_mut().unwrap().values_mut() {
        for k in ["p99_us", "p99_9_us"] {
            op["response"][k] = Value::from(op["response"][k].as_u64().unwrap() * 5 + 5000);
        }
    }
    std::fs::write(slow.join("summary.json"), s.to_string()).unwrap();
    let o = run(&["compare", mdir, slow.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));

    // Not one run: a worker twice, one missing, a plain run, an existing --out.
    let out2 = tmp.path().join("m2");
    let o2 = out2.to_str().unwrap();
    let (code, _, err) = merge(&[shown[0], shown[0], shown[1], "--out", o2]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("worker.index 0") && err.contains(shown[0]),
        "{err}"
    );
    let (code, _, err) = merge(&[shown[0], shown[2], "--out", o2]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("worker.index 1 of 3 missing"), "{err}");
    let (code, _, err) = merge(&[mdir, "--out", o2]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no `worker` section"), "{err}");
    let (code, _, err) = merge(&[shown[0], shown[1], shown[2], "--out", mdir]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--out") && err.contains("already holds"),
        "{err}"
    );
    drop(server);
}

#[test]
fn bad_worker_flags_exit_2_naming_the_flag() {
    let past = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(3600))
        .to_string();
    for (args, names) in [
        (vec!["--worker", "3/3"], "--worker"),
        (vec!["--worker", "1"], "--worker"),
        (vec!["--start-at", &past], "--start-at"),
        (vec!["--start-at", "tomorrow"], "--start-at"),
        (vec!["--worker", "0/20000"], "load.users"),
    ] {
        let o = run(&[&["run", SCENARIO, "--dry-run"], &args[..]].concat());
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(names), "{args:?}: {err}");
    }
    let o = loadgen(&["run", SCENARIO, "--dry-run"])
        .env("JOB_COMPLETION_INDEX", "1")
        .env("LOADGEN_WORKERS", "3")
        .output()
        .unwrap();
    let (out, _) = text(&o);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["worker"]["index"], 1);
    assert_eq!(j["worker"]["count"], 3);
}
