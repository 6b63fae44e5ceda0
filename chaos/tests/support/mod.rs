//! Shared by the process and Docker integration tests: load an experiment from
//! `scenarios/chaos/`, run it for real, return the report, and check that nothing was left behind.
// Each test crate that includes this module uses its own subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use chaos::checker::{Check, Status};
use chaos::report::Report;
use chaos::run::Outcome;
use chaos::{BackendKind, Event, Experiment, Interrupt, RunOptions, run_plan};

/// The chaos binary, to be given its arguments and run with [`outcome`].
pub fn chaos_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos"))
}

/// Runs `cmd`: its exit code (-1 if killed by a signal) and its stdout followed by its stderr.
pub fn outcome(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run chaos");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

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

/// Whether `redis-server` and `redis-sentinel` are installed; if not, prints why the test is
/// skipped (or panics under CI).
pub fn have_binaries() -> bool {
    ["redis-server", "redis-sentinel"].iter().all(|name| {
        localredis::require_binary_for_test(name)
            .map_err(|reason| skip(&reason))
            .is_ok()
    })
}

/// The image for the Docker tests, or `None` (after printing why, or panicking under CI) when
/// Docker or the image is missing. `.ci/run` builds the image first (`chaos image build`).
pub async fn docker_ready() -> Option<String> {
    let engine = match chaos::db::docker::engine().await {
        Ok(e) => e,
        Err(reason) => {
            skip(&format!("no Docker engine: {reason}"));
            return None;
        }
    };
    let image = std::env::var("CHAOS_IMAGE").unwrap_or_else(|_| chaos::LOCAL_IMAGE.into());
    if !chaos::db::docker::image_exists(&engine, &image).await {
        skip(&format!(
            "image {image} missing: run `cargo run -p chaos -- image build`"
        ));
        return None;
    }
    Some(image)
}

/// Containers (running or not) carrying `label` (`key` or `key=value`).
pub async fn containers_labelled(label: &str) -> Vec<String> {
    use std::collections::HashMap;
    use testcontainers::bollard::query_parameters::ListContainersOptions;
    let engine = chaos::db::docker::engine().await.unwrap();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let list = engine.list_containers(Some(opts)).await.unwrap();
    list.into_iter()
        .map(|c| {
            c.names
                .and_then(|n| n.into_iter().next())
                .or(c.id)
                .unwrap_or_default()
        })
        .collect()
}

pub fn scenario(name: &str) -> Experiment {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/chaos")
        .join(format!("{name}.toml"));
    let mut exp = Experiment::load(&path).unwrap_or_else(|e| panic!("{}", e.0));
    // The shipped write-gap bound (down-after + 1.5 s) is a target the operator's report judges;
    // in tests it would be a timed assertion on a shared 2-core machine, where Sentinel itself can
    // stall (TILT mode). Tests keep a bound that only a stuck client misses; the measured gap is
    // still printed in every report line.
    if let Some(gap) = exp.expect.max_write_gap {
        exp.expect.max_write_gap = Some(gap.max(std::time::Duration::from_secs(15)));
    }
    exp
}

/// The files a run must leave, and no password in them.
fn checked(outcome: Outcome) -> Result<Report, String> {
    if !outcome.dir.join("report.json").is_file() {
        return Err(format!("no report.json in {}", outcome.dir.display()));
    }
    let md = std::fs::read_to_string(outcome.dir.join("report.md")).map_err(|e| e.to_string())?;
    if !md.contains("## Timeline") {
        return Err(format!("no timeline in report.md:\n{md}"));
    }
    // The password is random per run and redacted everywhere it would appear.
    if !outcome.report.url.contains(":***@") {
        return Err(format!("password not redacted: {}", outcome.report.url));
    }
    println!("{}", outcome.report.summary_line());
    Ok(outcome.report)
}

/// The reference experiments that both backends' tests check.
pub const REFERENCE: [&str; 3] = [
    "primary-kill",
    "sentinel-quorum-loss",
    "ttl-across-failover",
];

static REFERENCE_REPORTS: tokio::sync::OnceCell<Vec<Result<Report, String>>> =
    tokio::sync::OnceCell::const_new();

/// The report of reference experiment `name` on `backend`. The first test that asks runs all
/// of [`REFERENCE`] as one plan, the way `chaos suite` runs them (each topology starts while the
/// previous experiment finishes its TTL probes); the other tests of the crate wait for it.
/// `after` runs once the plan is over (the Docker tests look for leftover containers there).
pub async fn reference_report<F: Future<Output = Result<(), String>>>(
    name: &str,
    backend: BackendKind,
    image: &str,
    after: impl FnOnce() -> F,
) -> &'static Report {
    let reports = REFERENCE_REPORTS
        .get_or_init(|| async move {
            let results = tempfile::tempdir().unwrap();
            let opts = RunOptions {
                backend,
                image: image.to_string(),
                results_root: results.path().to_path_buf(),
            };
            let plan = REFERENCE.iter().map(|n| scenario(n)).collect();
            let mut reports: Vec<Result<Report, String>> =
                REFERENCE.iter().map(|_| Err("no result".into())).collect();
            let mut interrupt = Interrupt::ctrl_c().unwrap();
            let ran = run_plan(plan, opts, &mut interrupt, |event| {
                if let Event::Finished { index, result } = event {
                    reports[index] = (*result).map_err(|e| e.to_string()).and_then(checked);
                }
            })
            .await;
            // A plan that was interrupted, or left something behind, fails every test.
            let failure = match (ran, after().await) {
                (Err(e), _) => Some(e.to_string()),
                (_, Err(e)) => Some(e),
                _ => None,
            };
            if let Some(e) = failure {
                reports.iter_mut().for_each(|r| *r = Err(e.clone()));
            }
            reports
        })
        .await;
    let i = REFERENCE
        .iter()
        .position(|n| *n == name)
        .expect("a reference experiment");
    reports[i]
        .as_ref()
        .unwrap_or_else(|e| panic!("{name} on {backend:?}: {e}"))
}

pub fn invariant<'a>(r: &'a Report, name: &str) -> &'a Check {
    r.verdict
        .check(name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

/// The verdict passed, printing every violated invariant if not.
pub fn assert_pass(r: &Report) {
    let violated: Vec<String> = r
        .verdict
        .checks
        .iter()
        .filter(|c| c.fails_run())
        .map(|c| {
            format!(
                "{}: expected {}, checked {}, measured {}",
                c.name, c.expected, c.checked, c.measured
            )
        })
        .collect();
    // The whole report on failure: a CI log then carries the timeline that explains it.
    assert!(
        r.verdict.pass,
        "{}: {violated:#?}\n{}",
        r.experiment.name,
        r.markdown()
    );
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
        invariant(r, "old_primary_rejoins_as_replica").status,
        Status::Pass
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
    assert_eq!(early.status, Status::Pass);
    assert_eq!(late.status, Status::Pass);
    assert!(late.checked > 50, "{late:?}");
    assert!(r.verdict.measures.switch_master_ms.is_some());
}

/// Networks carrying `label` (`key` or `key=value`): a partition experiment's bridge network.
pub async fn networks_labelled(label: &str) -> Vec<String> {
    use std::collections::HashMap;
    use testcontainers::bollard::query_parameters::ListNetworksOptions;
    let engine = chaos::db::docker::engine().await.unwrap();
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let opts = ListNetworksOptions {
        filters: Some(filters),
    };
    let list = engine.list_networks(Some(opts)).await.unwrap();
    list.into_iter()
        .map(|n| n.name.or(n.id).unwrap_or_default())
        .collect()
}
