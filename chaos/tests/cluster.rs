//! cluster-primary-kill on a real Redis Cluster of local redis-server processes (3 primaries ×
//! 1 replica, formed by the harness): the replica of the killed primary takes over its slots, the
//! clients' writes to those slots resume, the restarted old primary comes back as a replica, and
//! the faulted-range measures are reported.

mod support;

use chaos::BackendKind;
use chaos::run::{RunOptions, run_guarded};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_primary_kill_fails_over_the_faulted_slots() {
    if !have_binaries() {
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        backend: BackendKind::Process,
        image: String::new(),
        results_root: results.path().to_path_buf(),
    };
    let outcome = run_guarded(scenario("cluster-primary-kill"), opts)
        .await
        .unwrap_or_else(|e| panic!("cluster-primary-kill: {e}"));
    let r = &outcome.report;
    println!("{}", r.summary_line());
    check_primary_kill(r);
    assert!(r.url.contains(":***@"), "password not redacted: {}", r.url);
    // The promotion is the cluster watcher's, for the slots of the killed primary (slot 0's).
    let switched = r
        .sentinel_events
        .iter()
        .find(|e| e.sentinel == "cluster" && e.event == "+switch-master")
        .expect("a new owner of the faulted slots");
    assert!(switched.detail.starts_with("slots:0-5460 "), "{switched:?}");
    let faulted = &invariant(r, "cluster_faulted_slots").measured;
    assert_eq!(faulted["range"], "0-5460");
    assert!(
        faulted["ok_session_writes_in_range"].as_u64() > Some(30),
        "the faulted range barely saw writes: {faulted}"
    );
    // Judged on the faulted range only: a real outage (node timeout 2 s), not the few ms the
    // two healthy primaries' writes would show.
    let gap = r.verdict.measures.write_gap_ms.expect("writes resumed");
    assert!(
        gap > 1500.0,
        "write gap {gap} ms is not the faulted range's"
    );
}
