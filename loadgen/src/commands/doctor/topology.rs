//! Visiting every node a Sentinel or Cluster URL names: which primary each sentinel names and
//! whether it reaches quorum; each cluster node's state and slot coverage.

use cache::url::{Node, Topology};
use cache::{ConnectOptions, Redis, RedisUrl};

use crate::engine::redis_admin::Info;
use crate::report::doctor::{DoctorReport, NodeState, Severity, finding};

fn standalone_url(url: &RedisUrl, node: &Node, sentinel: bool) -> RedisUrl {
    let mut u = url.clone();
    u.topology = Topology::Standalone {
        node: node.clone(),
        db: 0,
    };
    if sentinel {
        u.username = url.options.sentinel_username.clone();
        u.password = url.options.sentinel_password.clone();
    }
    u.options.sentinel_username = None;
    u.options.sentinel_password = None;
    u
}

pub(super) async fn sentinels(
    url: &RedisUrl,
    sentinels: &[Node],
    service: &str,
    opts: &ConnectOptions,
    report: &mut DoctorReport,
) {
    let mut reachable = 0;
    for node in sentinels {
        let address = node.to_string();
        let conn = Redis::connect(&standalone_url(url, node, true), opts).await;
        let Ok(redis) = conn else {
            let e = conn.err().map(|e| e.to_string()).unwrap_or_default();
            report.nodes.push(NodeState {
                address,
                role: "sentinel".into(),
                state: format!("unreachable: {e}"),
            });
            continue;
        };
        reachable += 1;
        let mut c = redis.clone();
        let primary: Result<Option<(String, u16)>, _> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(service)
            .query_async(&mut c)
            .await;
        let quorum: Result<String, _> = redis::cmd("SENTINEL")
            .arg("ckquorum")
            .arg(service)
            .query_async(&mut c)
            .await;
        let state = match (primary, &quorum) {
            (Ok(Some((h, p))), Ok(q)) => format!("names primary {h}:{p}; {q}"),
            (Ok(Some((h, p))), Err(e)) => {
                report.findings.push(finding(
                    Severity::High,
                    "sentinel-quorum",
                    format!("sentinel {address}: {e}"),
                    "a failover needs a majority of sentinels reachable from each other: run 3 (or 5) on separate hosts",
                ));
                format!("names primary {h}:{p}; quorum NOT reachable")
            }
            (Ok(None), _) => {
                report.findings.push(finding(
                    Severity::High,
                    "sentinel-unknown-service",
                    format!("sentinel {address} does not monitor a service named `{service}`"),
                    "check the service name in REDIS_URL against `sentinel monitor <name>` in sentinel.conf",
                ));
                format!("does not know `{service}`")
            }
            (Err(e), _) => format!("error: {e}"),
        };
        report.nodes.push(NodeState {
            address,
            role: "sentinel".into(),
            state,
        });
    }
    if reachable < sentinels.len() {
        report.findings.push(finding(
            if reachable * 2 > sentinels.len() {
                Severity::Medium
            } else {
                Severity::High
            },
            "sentinel-unreachable",
            format!(
                "{} of {} sentinels in REDIS_URL are unreachable",
                sentinels.len() - reachable,
                sentinels.len()
            ),
            "start them or fix their addresses; with fewer than a majority no failover can happen",
        ));
    }
    if sentinels.len() < 3 {
        report.findings.push(finding(
            Severity::Low,
            "few-sentinels",
            format!("REDIS_URL lists {} sentinel(s)", sentinels.len()),
            "list all sentinels (3 or more) so the client can still find the primary when one is down",
        ));
    }
}

pub(super) async fn cluster(
    url: &RedisUrl,
    nodes: &[Node],
    opts: &ConnectOptions,
    report: &mut DoctorReport,
) {
    for node in nodes {
        let address = node.to_string();
        let state = match Redis::connect(&standalone_url(url, node, false), opts).await {
            Err(e) => format!("unreachable: {e}"),
            Ok(redis) => {
                let mut c = redis.clone();
                match redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async::<String>(&mut c)
                    .await
                {
                    Ok(text) => {
                        let info = Info::parse(&text).0;
                        let state = info.get("cluster_state").cloned().unwrap_or_default();
                        let ok = info.get("cluster_slots_ok").cloned().unwrap_or_default();
                        if state != "ok" {
                            report.findings.push(finding(
                                Severity::High,
                                "cluster-state",
                                format!("node {address} reports cluster_state:{state}"),
                                "check CLUSTER NODES for failed nodes and uncovered slots (redis-cli --cluster check)",
                            ));
                        }
                        format!("cluster_state:{state} slots_ok:{ok}")
                    }
                    Err(e) => format!("CLUSTER INFO failed: {e}"),
                }
            }
        };
        report.nodes.push(NodeState {
            address,
            role: "cluster node".into(),
            state,
        });
    }
}
