//! The three reference experiments on local redis-server / redis-sentinel processes, run as one
//! plan (see `support::reference_report`).

mod support;

use chaos::BackendKind;
use chaos::report::Report;
use support::*;

async fn on_processes(name: &str) -> Option<&'static Report> {
    if !have_binaries() {
        return None;
    }
    let nothing_to_check = || async { Ok(()) };
    Some(reference_report(name, BackendKind::Process, "", nothing_to_check).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_fails_over_and_the_old_primary_rejoins() {
    if let Some(r) = on_processes("primary-kill").await {
        check_primary_kill(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_quorum_loss_means_no_failover() {
    if let Some(r) = on_processes("sentinel-quorum-loss").await {
        check_quorum_loss(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttls_hold_across_a_failover() {
    if let Some(r) = on_processes("ttl-across-failover").await {
        check_ttl(r);
    }
}
