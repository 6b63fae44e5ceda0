//! The three reference experiments on Docker containers (testcontainers, host networking), with
//! the local image, run as one plan (see `support::reference_report`). Afterwards no container of
//! ours may exist.

mod support;

use chaos::BackendKind;
use chaos::report::Report;
use support::*;

async fn on_docker(name: &str) -> Option<&'static Report> {
    let image = docker_ready().await?;
    let nothing_left = || async {
        let left = containers_labelled("authority-chaos.run").await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("containers left behind: {left:?}"))
        }
    };
    Some(reference_report(name, BackendKind::Docker, &image, nothing_left).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_fails_over_and_the_old_primary_rejoins() {
    if let Some(r) = on_docker("primary-kill").await {
        check_primary_kill(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_quorum_loss_means_no_failover() {
    if let Some(r) = on_docker("sentinel-quorum-loss").await {
        check_quorum_loss(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttls_hold_across_a_failover() {
    if let Some(r) = on_docker("ttl-across-failover").await {
        check_ttl(r);
    }
}
