//! Redis Sentinel's split brain on the Docker backend: `partition-primary` cuts the primary off the
//! sentinels and replicas (iptables in its network namespace, on the run's bridge network) while
//! the client still reaches it. The run must fail over, must *show* the loss the isolated primary
//! causes (acknowledged writes that no replica saw), bound it in time, and leave neither container
//! nor network behind.

mod support;

use chaos::checker::Status;
use chaos::report::Report;
use chaos::{BackendKind, Event, Interrupt, RunOptions, run_plan};
use support::*;

/// Whether the host has what a partition needs (`nsenter`, `iptables`); `.ci/run` installs them.
fn have_partition_tools() -> bool {
    let found = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["nsenter", "iptables"]
        .into_iter()
        .filter(|t| !found(t))
        .collect();
    if !missing.is_empty() {
        skip(&format!("partitions need {missing:?} on the host"));
    }
    missing.is_empty()
}

async fn run_once(name: &str, image: &str) -> Report {
    let results = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        backend: BackendKind::Docker,
        image: image.to_string(),
        results_root: results.path().to_path_buf(),
    };
    let mut report = Err("no result".to_string());
    let mut interrupt = Interrupt::ctrl_c().unwrap();
    run_plan(vec![scenario(name)], opts, &mut interrupt, |event| {
        if let Event::Finished { result, .. } = event {
            report = (*result).map(|o| o.report).map_err(|e| e.to_string());
        }
    })
    .await
    .unwrap();
    let report = report.unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{}", report.summary_line());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_loses_the_writes_it_acknowledged() {
    let Some(image) = docker_ready().await else {
        return;
    };
    if !have_partition_tools() {
        return;
    }
    let r = run_once("partition-primary", &image).await;
    assert_pass(&r);
    let m = &r.verdict.measures;
    let failover = m.failover_time_ms.expect("no +switch-master");
    assert!(
        failover > 500.0 && failover < 10_000.0,
        "failover {failover} ms"
    );
    // The split brain showed: writes acknowledged by the isolated primary were lost...
    let lost = invariant(&r, "acked_writes_lost");
    assert_eq!(lost.status, Status::Pass, "{lost:?}");
    assert!(m.acked_writes_lost > 0, "{m:?}");
    assert!(lost.checked > 100, "the workload barely ran: {lost:?}");
    // ...all of them within the bound after the fault, and the old primary came back a replica.
    let bounded = invariant(&r, "loss_within_lag_after_fault");
    assert_eq!(bounded.status, Status::Pass, "{bounded:?}");
    assert_eq!(
        invariant(&r, "old_primary_rejoins_as_replica").status,
        Status::Pass
    );
    let containers = containers_labelled("authority-chaos.run").await;
    let networks = networks_labelled("authority-chaos.run").await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left behind: containers {containers:?}, networks {networks:?}"
    );
}
