//! Shared by the process and Docker integration tests: load an experiment from
//! `scenarios/chaos/`, run it for real, return the report, and check that nothing was left behind.

use std::path::PathBuf;

use chaos::checker::Invariant;
use chaos::report::Report;
use chaos::{BackendKind, Experiment, RunOptions, run_guarded};

/// Experiments measure timings: run them one at a time even when the harness runs tests in
/// parallel, so they do not compete for the 2 cores.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Prints why a test is skipped, or panics under CI (a broken CI image must fail the run).
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("{reason} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("skipped: {reason}");
}

pub fn scenario(name: &str) -> Experiment {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/chaos")
        .join(format!("{name}.toml"));
    Experiment::load(&path).unwrap_or_else(|e| panic!("{}", e.0))
}

/// Runs `exp` on `backend` with results in a temporary directory (removed afterwards).
pub async fn run(exp: Experiment, backend: BackendKind, image: &str) -> Report {
    let results = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        backend,
        image: image.to_string(),
        results_root: results.path().to_path_buf(),
    };
    let outcome = run_guarded(exp, opts)
        .await
        .expect("the experiment did not complete");
    assert!(outcome.dir.join("report.json").is_file());
    let md = std::fs::read_to_string(outcome.dir.join("report.md")).unwrap();
    assert!(md.contains("## Timeline"), "{md}");
    // The password is random per run and redacted everywhere it would appear.
    assert!(
        outcome.report.url.contains(":***@"),
        "{}",
        outcome.report.url
    );
    println!("{}", outcome.report.summary_line());
    outcome.report
}

pub fn invariant<'a>(r: &'a Report, name: &str) -> &'a Invariant {
    r.verdict
        .invariants
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no invariant {name}"))
}

/// The verdict passed, printing every violated invariant if not.
pub fn assert_pass(r: &Report) {
    let violated: Vec<String> = r
        .verdict
        .invariants
        .iter()
        .filter(|i| i.holds == Some(false))
        .map(|i| {
            format!(
                "{}: expected {}, measured {}",
                i.name, i.expected, i.measured
            )
        })
        .collect();
    assert!(r.verdict.pass, "{}: {violated:#?}", r.experiment.name);
}

/// Checks shared by the three experiments on both backends.
pub fn check_primary_kill(r: &Report) {
    assert_pass(r);
    let m = &r.verdict.measures;
    let failover = m.failover_time_ms.expect("no +switch-master");
    assert!(
        failover > 500.0 && failover < 10_000.0,
        "failover {failover} ms"
    );
    assert!(m.acked_writes > 100, "the workload barely ran: {m:?}");
    assert_eq!(
        invariant(r, "old_primary_rejoins_as_replica").holds,
        Some(true)
    );
}

pub fn check_quorum_loss(r: &Report) {
    assert_pass(r);
    let m = &r.verdict.measures;
    assert!(
        m.switch_master_ms.is_none(),
        "a lone sentinel failed over: {m:?}"
    );
    assert_eq!(m.acked_writes_lost, 0);
    // Writes stopped while the primary was frozen (4 s): the gap must show it.
    assert!(m.write_gap_ms.is_some_and(|g| g > 3000.0), "{m:?}");
}

pub fn check_ttl(r: &Report) {
    assert_pass(r);
    let early = invariant(r, "ttl_no_early_expiry");
    let late = invariant(r, "ttl_no_resurrection");
    assert_eq!(early.holds, Some(true));
    assert_eq!(late.holds, Some(true));
    assert!(
        late.measured["probed"].as_u64().unwrap_or(0) > 50,
        "{:?}",
        late.measured
    );
    assert!(r.verdict.measures.switch_master_ms.is_some());
}
