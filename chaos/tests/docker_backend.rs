//! The three reference experiments on Docker containers (testcontainers, host networking), with
//! the local image. Afterwards no container of ours may exist.

mod support;

use chaos::BackendKind;
use chaos::db::docker;
use support::*;

/// The image to use, or `None` (after printing why, or panicking under CI) when Docker or the
/// image is missing. `.ci/run` builds the image first (`chaos image build`).
async fn docker_ready() -> Option<String> {
    let engine = match docker::engine().await {
        Ok(e) => e,
        Err(reason) => {
            skip(&format!("no Docker engine: {reason}"));
            return None;
        }
    };
    let image = std::env::var("CHAOS_IMAGE").unwrap_or_else(|_| chaos::LOCAL_IMAGE.into());
    if !docker::image_exists(&engine, &image).await {
        skip(&format!(
            "image {image} missing: run `cargo run -p chaos -- image build`"
        ));
        return None;
    }
    Some(image)
}

async fn leftover_containers() -> usize {
    use std::collections::HashMap;
    use testcontainers::bollard::query_parameters::ListContainersOptions;
    let engine = docker::engine().await.unwrap();
    let filters = HashMap::from([("label".to_string(), vec!["authority-chaos.run".to_string()])]);
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    engine.list_containers(Some(opts)).await.unwrap().len()
}

async fn on_docker(name: &str) -> Option<chaos::report::Report> {
    let image = docker_ready().await?;
    let report = run(scenario(name), BackendKind::Docker, &image).await;
    assert_eq!(leftover_containers().await, 0, "containers left behind");
    Some(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_fails_over_and_the_old_primary_rejoins() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_docker("primary-kill").await {
        check_primary_kill(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_quorum_loss_means_no_failover() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_docker("sentinel-quorum-loss").await {
        check_quorum_loss(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttls_hold_across_a_failover() {
    let _serial = SERIAL.lock().await;
    if let Some(r) = on_docker("ttl-across-failover").await {
        check_ttl(&r);
    }
}
