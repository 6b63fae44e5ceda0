//! `chaos run --repeat 2` on the shortest shipped experiment, as an operator runs it: two full
//! results directories, then one summary whose figures are exactly those of the two reports.
//! (Whether the experiment's invariants hold is `process_backend.rs`'s business; here the exit
//! code must agree with the summary either way.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn dirs_starting(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn repeat_keeps_every_run_and_summarises_the_spread() {
    if !support::have_binaries() {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let experiment =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/chaos/ttl-across-failover.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .arg("run")
        .arg(&experiment)
        .args(["--backend", "process", "--repeat", "2", "--results"])
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    println!("{log}");

    let summaries = dirs_starting(results.path(), "chaos-ttl-across-failover-x2-");
    assert_eq!(summaries.len(), 1, "one summary directory: {log}");
    let summary = read_json(&summaries[0].join("summary.json"));
    let md = std::fs::read_to_string(summaries[0].join("summary.md")).unwrap();
    assert!(md.contains("| failover time (ms) |"), "{md}");

    let reps = summary["repetitions"].as_array().unwrap();
    assert_eq!(reps.len(), 2, "{summary:#}");
    let mut failovers = Vec::new();
    let mut lost = Vec::new();
    for (i, rep) in reps.iter().enumerate() {
        assert_eq!(rep["round"], i + 1);
        let dir = PathBuf::from(rep["dir"].as_str().expect("each round has its directory"));
        let report = read_json(&dir.join("report.json"));
        let m = &report["verdict"]["measures"];
        assert_eq!(rep["pass"], report["verdict"]["pass"]);
        assert_eq!(rep["failover_time_ms"], m["failover_time_ms"]);
        assert_eq!(rep["write_gap_ms"], m["write_gap_ms"]);
        assert_eq!(rep["acked_writes_lost"], m["acked_writes_lost"]);
        failovers.push(m["failover_time_ms"].as_f64().expect("a failover"));
        lost.push(m["acked_writes_lost"].as_f64().unwrap());
    }
    let runs = dirs_starting(results.path(), "chaos-ttl-across-failover-2");
    assert_eq!(runs.len(), 2, "two run directories: {runs:?}");

    let spread = |field: &str, values: &[f64]| {
        let s = &summary[field];
        let (lo, hi) = (values[0].min(values[1]), values[0].max(values[1]));
        assert_eq!(s["min"].as_f64().unwrap(), lo, "{field}");
        assert_eq!(s["max"].as_f64().unwrap(), hi, "{field}");
        // The median of two is their mean.
        let median = s["median"].as_f64().unwrap();
        assert!((median - (lo + hi) / 2.0).abs() < 1e-9, "{field}: {s}");
        assert_eq!(s["measured_in"], 2, "{field}");
    };
    spread("failover_time_ms", &failovers);
    spread("acked_writes_lost", &lost);

    let all_passed = reps.iter().all(|r| r["pass"] == true);
    assert_eq!(
        summary["passed"],
        reps.iter().filter(|r| r["pass"] == true).count()
    );
    assert_eq!(
        out.status.code(),
        Some(if all_passed { 0 } else { 1 }),
        "{log}"
    );
    assert!(stdout.contains("ttl-across-failover x2 [process]"), "{log}");
}
