//! `loadgen compare` as a CI job runs it: the real binary on real results — runs made here
//! against throwaway redis-servers, and the committed baselines in `results/baselines/smoke/`
//! (read as they are, or copied and edited into fixtures: a slower machine, a newer schema, another
//! workload). Nothing asserts a throughput; the slowdowns are large enough that no machine can
//! hide them, and the false-alarm rate of identical runs is `scripts/gate-self-test.sh`'s job.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The committed baseline repetitions.
fn committed() -> Vec<PathBuf> {
    let dir = root().join("results/baselines/smoke");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    runs.sort();
    assert!(runs.len() >= 4, "the committed baseline has 4 runs");
    runs
}

/// A copy of the first committed run's summary.json, edited, as `<dir>/<name>/summary.json`.
fn fixture(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut s = summary(&committed()[0]);
    edit(&mut s);
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("summary.json"), s.to_string()).unwrap();
    out.display().to_string()
}

/// Multiplies every number under `ptr` (an object of arrays, or a number) by `k`.
fn scale(s: &mut Value, ptr: &str, k: f64) {
    fn walk(v: &mut Value, k: f64) {
        match v {
            Value::Number(n) => *v = Value::from((n.as_f64().unwrap() * k).round() as u64),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, k)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, k)),
            _ => {}
        }
    }
    walk(s.pointer_mut(ptr).unwrap(), k);
}

/// The markdown table's row for `op` and `metric`, as cells.
fn row(md: &str, op: &str, metric: &str) -> Vec<String> {
    md.lines()
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() > 7 && cells[1] == op && cells[2] == metric)
        .unwrap_or_else(|| panic!("no row {op} {metric} in:\n{md}"))
}

fn compare(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["compare"];
    all.extend(args);
    let o = run(&all);
    let (stdout, stderr) = text(&o);
    (o.status.code(), stdout, stderr)
}

#[test]
fn a_run_compared_with_itself_is_within_noise_and_exits_0() {
    let run = committed()[0].display().to_string();
    let (code, md, err) = compare(&[&run, &run]);
    assert_eq!(code, Some(0), "{md}\n{err}");
    assert!(
        md.contains("### loadgen compare: `smoke` — ✅ no regression beyond 10%"),
        "{md}"
    );
    assert!(md.contains("| op | metric | baseline | current | change | 95% CI | verdict |"));
    assert!(md.contains("**Mode: raw figures**"), "{md}");
    let all = row(&md, "all", "throughput");
    assert_eq!(
        (all[5].as_str(), all[7].as_str()),
        ("+0.0%", "within noise"),
        "{all:?}"
    );
    assert_eq!(row(&md, "all", "p99")[7], "within noise");
    // One run a side: a p99.9 (one sample per run) cannot be judged, and 5 + 5 seconds are too
    // few for the simultaneous intervals of single operations.
    assert_eq!(row(&md, "all", "p99.9")[7], "not enough data");
    for metric in ["throughput", "p99", "p99.9"] {
        assert_eq!(row(&md, "page_view", metric)[7], "not enough data");
    }
}

#[test]
fn repetitions_are_pooled_and_judge_the_p99_9_too() {
    let runs = committed();
    let dir = root().join("results/baselines/smoke").display().to_string();
    // A directory of runs on one side, the same runs one by one on the other.
    let mut args: Vec<String> = runs
        .iter()
        .flat_map(|r| ["--baseline".to_string(), r.display().to_string()])
        .collect();
    args.extend(["--format".into(), "json".into(), dir]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = compare(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["baseline"]["runs"].as_array().unwrap().len(), runs.len());
    assert_eq!(j["current"]["runs"].as_array().unwrap().len(), runs.len());
    let p999 = j["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["op"] == "all" && m["metric"] == "p99.9")
        .unwrap();
    assert_eq!(p999["verdict"], "within_noise", "{p999}");
    assert!(p999["ci_low"].as_f64().unwrap() <= 0.0 && p999["ci_high"].as_f64().unwrap() >= 0.0);
    // With 20 seconds a side, single operations are judged too, at a simultaneous confidence.
    for m in j["metrics"].as_array().unwrap() {
        if m["metric"] != "p99.9" {
            assert_eq!(m["verdict"], "within_noise", "{m}");
        }
        let expected = if m["op"] == "all" {
            0.95
        } else {
            1.0 - 0.05 / 7.0
        };
        assert!(
            (m["confidence"].as_f64().unwrap() - expected).abs() < 1e-9,
            "{m}"
        );
    }
}

#[test]
fn real_runs_same_settings_stay_quiet_and_an_injected_delay_regresses() {
    let Some(()) = redis_available() else { return };
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().display().to_string();
    // Open model at a rate every machine sustains: throughput is set by the schedule, so only a
    // slowdown can move it. Each run gets its own throwaway server.
    let paced = |extra: &[&str]| {
        let mut args = vec!["run", "scenarios/load/smoke.toml", "--out", &out_s];
        args.extend([
            "--duration",
            "4s",
            "--rate",
            "800",
            "--users",
            "4",
            "--set",
            "load.warmup=0s",
            "--set",
            "slo.latency.0.max=60s",
            "--set",
            "slo.min_throughput=0",
        ]);
        args.extend(extra);
        let o = run(&args);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
        results_dir(&stdout).display().to_string()
    };
    let base = paced(&[]);
    let same = paced(&[]);
    // 4 users, each op ≥ 10 ms: at most ~400 of the 800 ops/s scheduled.
    let slow = paced(&["--inject-delay", "10ms"]);

    let (_, md, err) = compare(&[&base, &same]);
    assert_eq!(
        row(&md, "all", "throughput")[7],
        "within noise",
        "{md}\n{err}"
    );

    let (code, md, err) = compare(&[&base, &slow]);
    assert_eq!(code, Some(1), "{md}\n{err}");
    assert!(md.contains("❌"), "{md}");
    assert_eq!(row(&md, "all", "throughput")[7], "❌ **regressed**", "{md}");
    assert_eq!(row(&md, "all", "p99")[7], "❌ **regressed**", "{md}");
    assert!(
        md.contains(
            "injected delay per op (µs, --inject-delay) differs: baseline 0, current 10000"
        ),
        "{md}"
    );

    let (code, json, _) = compare(&[&base, &slow, "--format", "json"]);
    assert_eq!(code, Some(1));
    let j: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["mode"], "raw");
    assert_eq!(j["exit_code"], 1);
    assert!(j["regressions"].as_u64().unwrap() >= 2);
    let metrics = j["metrics"].as_array().unwrap();
    assert_eq!(metrics.len() % 3, 0);
    let tput = metrics
        .iter()
        .find(|m| m["op"] == "all" && m["metric"] == "throughput")
        .unwrap();
    assert_eq!(tput["verdict"], "regressed");
    assert_eq!(tput["unit"], "ops/s");
    assert!(tput["ci_high"].as_f64().unwrap() < -0.1, "{tput}");
    for key in ["baseline", "current", "change", "ci_low"] {
        assert!(tput[key].is_number(), "{key} in {tput}");
    }
}

#[test]
fn normalize_compares_calibrated_figures() {
    let dir = tempfile::tempdir().unwrap();
    let base = committed()[0].display().to_string();
    // The same run on a machine half as fast: half the calibration and throughput, twice the
    // latency.
    let slower = fixture(dir.path(), "slower-machine", |s| {
        scale(s, "/environment/calibration/ops_per_sec", 0.5);
        scale(s, "/series/throughput", 0.5);
        scale(s, "/series/p99_us", 2.0);
        for op in s["ops"].as_object_mut().unwrap().values_mut() {
            scale(op, "/response", 2.0);
        }
    });
    let (code, md, _) = compare(&[&base, &slower]);
    assert_eq!(code, Some(1), "raw, the slower machine regresses:\n{md}");
    assert_eq!(row(&md, "all", "throughput")[7], "❌ **regressed**");

    let (code, md, err) = compare(&[&base, &slower, "--normalize"]);
    assert_eq!(code, Some(0), "{md}\n{err}");
    assert!(md.contains("**Mode: normalized by calibration.**"), "{md}");
    let cal = summary(&committed()[0])["environment"]["calibration"]["ops_per_sec"]
        .as_f64()
        .unwrap();
    let grouped = |v: f64| {
        let d = format!("{v:.0}");
        let mut s = String::new();
        for (i, c) in d.chars().enumerate() {
            if i > 0 && (d.len() - i) % 3 == 0 {
                s.push(',');
            }
            s.push(c);
        }
        s
    };
    let both = format!(
        "calibration baseline {} vs current {} PING/s",
        grouped(cal),
        grouped((cal * 0.5).round())
    );
    assert!(md.contains(&both), "{both} in:\n{md}");
    for metric in ["throughput", "p99"] {
        assert_eq!(row(&md, "all", metric)[7], "within noise", "{md}");
    }

    let (_, json, _) = compare(&[&base, &slower, "--normalize", "--format", "json"]);
    let j: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["mode"], "normalized");
    assert_eq!(j["calibration_ops_per_sec"]["baseline"].as_f64(), Some(cal));
}

#[test]
fn unusable_inputs_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = committed()[0].display().to_string();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let not_json = d.join("not-json.json");
    std::fs::write(&not_json, "hello").unwrap();
    let newer = fixture(d, "newer", |s| s["schema_version"] = 99.into());
    let more_users = fixture(d, "more-users", |s| {
        s["config"]["load"]["users"] = 16.into()
    });
    let bigger = fixture(d, "bigger", |s| {
        s["config"]["keyspace"]["users"] = 900.into()
    });
    let debug = fixture(d, "debug", |s| s["environment"]["build"] = "debug".into());
    let uncalibrated = fixture(d, "uncalibrated", |s| {
        s["environment"]["calibration"] = Value::Null
    });
    let short = fixture(d, "short", |s| {
        for key in ["throughput", "p99_us", "p50_us", "errors", "service_p99_us"] {
            for v in s["series"][key].as_object_mut().unwrap().values_mut() {
                v.as_array_mut().unwrap().truncate(3);
            }
        }
    });
    let empty_s = empty.display().to_string();
    let not_json_s = not_json.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["/no/such/run", &good],
            "baseline /no/such/run: No such file",
        ),
        (
            vec![&good, &empty_s],
            "not a loadgen results directory (no summary.json",
        ),
        (vec![&good, &not_json_s], "not JSON"),
        (
            vec![&good, &newer],
            "schema_version 99, but this loadgen reads schema_version 1",
        ),
        (vec![&good, &more_users], "users: 8 in baseline"),
        (vec![&good, &more_users], "did not run the same workload"),
        (vec![&good, &bigger], "keyspace.users: 500 in baseline"),
        (
            vec![&good, &debug],
            "build (debug vs release): release in baseline",
        ),
        (
            vec![&good, &uncalibrated, "--normalize"],
            "has no calibration figure",
        ),
        (
            vec![&short, &short],
            "too few samples to judge: 3 s of baseline",
        ),
        (vec![&good], "needs a baseline and a current run"),
        (
            vec![&good, &good, "--max-regression", "ten"],
            "--max-regression `ten`",
        ),
        (
            vec![&good, &good, "--max-regression", "10"],
            "write 10% for ten percent",
        ),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = compare(&args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {expected:?} not in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout:\n{stdout}");
    }
    // Without --normalize the uncalibrated run is fine.
    assert_eq!(compare(&[&good, &uncalibrated]).0, Some(0));
    // A setting recorded on one side only (another loadgen version) is a note, not a refusal.
    let older = fixture(d, "older", |s| {
        s["config"]["keyspace"]
            .as_object_mut()
            .unwrap()
            .remove("revoked_probe");
    });
    let (code, md, err) = compare(&[&good, &older]);
    assert_eq!(code, Some(0), "{md}\n{err}");
    assert!(
        md.contains("- keyspace.revoked_probe is recorded in only one of baseline"),
        "{md}"
    );
}
