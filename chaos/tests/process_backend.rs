//! The three reference experiments on local redis-server / redis-sentinel processes.

mod support;

use chaos::BackendKind;
use support::*;

fn have_binaries() -> bool {
    for name in ["redis-server", "redis-sentinel"] {
        if let Err(reason) = localredis::require_binary_for_test(name) {
            skip(&reason);
            return false;
        }
    }
    true
}

async fn on_processes(name: &str) -> Option<chaos::report::Report> {
    if !have_binaries() {
        return None;
    }
    Some(run(scenario(name), BackendKind::Process, "").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_fails_over_and_the_old_primary_rejoins() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_processes("primary-kill").await {
        check_primary_kill(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_quorum_loss_means_no_failover() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_processes("sentinel-quorum-loss").await {
        check_quorum_loss(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttls_hold_across_a_failover() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_processes("ttl-across-failover").await {
        check_ttl(&r);
    }
}
