//! Network partitions on the Docker backend: a bridge network per run, and `iptables` rules in a
//! container's own network namespace.
//!
//! Why this shape (Redis Sentinel's split brain, Jepsen 2013):
//! - Host networking (the backend's default) gives every node the same network namespace, so
//!   nothing can be cut between two nodes. An experiment with a `partition` fault therefore puts
//!   its nodes on a **bridge network the run creates** (labelled like the containers, so the same
//!   sweeps remove it). Sentinels and replicas address the primary by its bridge IP, so Sentinel
//!   announces addresses the client on the host reaches directly (the host routes to a bridge).
//!   Each node's port is also published on `127.0.0.1` under the same number, so everything that
//!   observes the topology by `127.0.0.1:<port>` works unchanged.
//! - **A partition is `DROP` rules inside the victim's namespace** (`nsenter -t <pid> -n
//!   iptables`), one pair (INPUT from, OUTPUT to) per peer's bridge IP. Only the other nodes are
//!   cut: the client's traffic arrives from the bridge gateway (or docker-proxy), so a partitioned
//!   primary keeps acknowledging writes that the promoted replica never sees. Heal flushes both
//!   chains. The rules live in the container's namespace, so removing the container removes them.

use std::collections::HashMap;

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::NetworkCreateRequest;
use testcontainers::bollard::query_parameters::ListNetworksOptions;

use super::DbError;

/// The network of run `run_id`, created with the labels the container sweeps use.
pub async fn create(
    docker: &Docker,
    run_id: &str,
    labels: HashMap<String, String>,
) -> Result<String, DbError> {
    let name = format!("chaos-{run_id}");
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        labels: Some(labels),
        ..Default::default()
    };
    docker
        .create_network(request)
        .await
        .map_err(|e| DbError::Failed(format!("creating the bridge network {name}: {e}")))?;
    Ok(name)
}

/// Removes the networks carrying `label` (`key` or `key=value`) for which `keep` is false. A
/// network still in use is left (its containers are removed first by the callers).
pub async fn remove_labelled(
    docker: &Docker,
    label: String,
    keep: impl Fn(&HashMap<String, String>) -> bool,
) {
    let filters = HashMap::from([("label".to_string(), vec![label])]);
    let opts = ListNetworksOptions {
        filters: Some(filters),
    };
    let Ok(list) = docker.list_networks(Some(opts)).await else {
        return;
    };
    for n in list {
        if keep(&n.labels.clone().unwrap_or_default()) {
            continue;
        }
        if let Some(id) = n.id {
            let _ = docker.remove_network(&id).await;
        }
    }
}

/// The container's IP on `network`, and the pid of its process (for `nsenter`).
pub async fn inspect(docker: &Docker, id: &str, network: &str) -> Result<(String, i64), DbError> {
    let failed = |what: &str| DbError::Failed(format!("inspecting container {id}: {what}"));
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| failed(&e.to_string()))?;
    let pid = c
        .state
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .ok_or_else(|| failed("not running"))?;
    let ip = c
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| failed(&format!("no address on {network}")))?;
    Ok((ip, pid))
}

/// Drops every packet between the process `pid`'s namespace and `peers`.
pub async fn cut(pid: i64, peers: &[String]) -> Result<(), DbError> {
    for ip in peers {
        iptables(pid, &["-A", "INPUT", "-s", ip, "-j", "DROP"]).await?;
        iptables(pid, &["-A", "OUTPUT", "-d", ip, "-j", "DROP"]).await?;
    }
    Ok(())
}

/// Removes every rule [`cut`] added (and anything else in INPUT / OUTPUT of that namespace).
pub async fn heal(pid: i64) -> Result<(), DbError> {
    iptables(pid, &["-F", "INPUT"]).await?;
    iptables(pid, &["-F", "OUTPUT"]).await
}

async fn iptables(pid: i64, args: &[&str]) -> Result<(), DbError> {
    let pid = pid.to_string();
    let out = tokio::process::Command::new("nsenter")
        .args(["-t", &pid, "-n", "iptables", "-w"])
        .args(args)
        .output()
        .await
        .map_err(|e| {
            DbError::Environment(format!(
                "running nsenter (util-linux) for a partition: {e}; partitions need nsenter and \
                 iptables on the host and root"
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(DbError::Failed(format!(
        "iptables {} in the namespace of pid {pid}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
