//! Redis Sentinel's split brain on the Docker backend: `partition-primary` cuts the primary off the
//! sentinels and replicas (iptables in its network namespace, on the run's bridge network) while
//! the client still reaches it. The run must fail over, must *show* the loss the isolated primary
//! causes (acknowledged writes that no replica saw), bound it in time, and leave neither container
//! nor network behind. `partition-sentinel-minority` (one sentinel cut off everything) runs in
//! the same plan: no quorum, so no failover and nothing lost.

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

/// Runs `names` as one plan (each topology starts while the previous one finishes), in order.
async fn run_plan_of(names: &[&str], image: &str) -> Vec<Report> {
    let results = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        backend: BackendKind::Docker,
        image: image.to_string(),
        results_root: results.path().to_path_buf(),
    };
    let mut reports: Vec<Result<Report, String>> =
        names.iter().map(|_| Err("no result".into())).collect();
    let mut interrupt = Interrupt::ctrl_c().unwrap();
    let plan = names.iter().map(|n| scenario(n)).collect();
    run_plan(plan, opts, &mut interrupt, |event| {
        if let Event::Finished { index, result } = event {
            reports[index] = (*result).map(|o| o.report).map_err(|e| e.to_string());
        }
    })
    .await
    .unwrap();
    names
        .iter()
        .zip(reports)
        .map(|(name, r)| {
            let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            println!("{}", r.summary_line());
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_loses_acked_writes_a_lone_sentinel_changes_nothing() {
    let Some(image) = docker_ready().await else {
        return;
    };
    if !have_partition_tools() {
        return;
    }
    let names = ["partition-primary", "partition-sentinel-minority"];
    let reports = run_plan_of(&names, &image).await;
    let r = &reports[0];
    assert_pass(r);
    let m = &r.verdict.measures;
    let failover = m.failover_time_ms.expect("no +switch-master");
    assert!(
        failover > 500.0 && failover < 10_000.0,
        "failover {failover} ms"
    );
    // The split brain showed: writes acknowledged by the isolated primary were lost...
    let lost = invariant(r, "acked_writes_lost");
    assert_eq!(lost.status, Status::Pass, "{lost:?}");
    assert!(m.acked_writes_lost > 0, "{m:?}");
    assert!(lost.checked > 100, "the workload barely ran: {lost:?}");
    // ...all of them within the bound after the fault, and the old primary came back a replica.
    let bounded = invariant(r, "loss_within_lag_after_fault");
    assert_eq!(bounded.status, Status::Pass, "{bounded:?}");
    assert_eq!(
        invariant(r, "old_primary_rejoins_as_replica").status,
        Status::Pass
    );

    // One sentinel cut off: it alone sees the primary down, so nothing happens.
    let r = &reports[1];
    assert_pass(r);
    let m = &r.verdict.measures;
    assert!(
        m.switch_master_ms.is_none(),
        "a lone sentinel failed over: {m:?}"
    );
    assert_eq!(m.acked_writes_lost, 0);
    let cut_off = r.markdown().contains("+sdown master");
    assert!(
        cut_off,
        "the partitioned sentinel never lost the primary:\n{}",
        r.markdown()
    );

    let containers = containers_labelled("authority-chaos.run").await;
    let networks = networks_labelled("authority-chaos.run").await;
    assert!(
        containers.is_empty() && networks.is_empty(),
        "left behind: containers {containers:?}, networks {networks:?}"
    );
}
