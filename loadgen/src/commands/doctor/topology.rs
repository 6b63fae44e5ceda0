//! Visiting every node a Sentinel or Cluster URL names: which primary each sentinel names and
//! whether it reaches quorum; each cluster node's state, slot coverage, replicas and the settings
//! that decide how a cluster fails over (`cluster-node-timeout`, `cluster-require-full-coverage`).

use cache::url::Node;
use cache::{ConnectOptions, Redis, RedisUrl};

use crate::engine::redis_admin::{self, Info, standalone_url};
use crate::report::doctor::{DoctorReport, NodeState, Severity, finding};

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
    let mut view: Option<(Redis, String)> = None;
    for node in nodes {
        let address = node.to_string();
        let state = match Redis::connect(&standalone_url(url, node, false), opts).await {
            Err(e) => format!("unreachable: {e}"),
            Ok(redis) => {
                let mut c = redis.clone();
                let state = match redis::cmd("CLUSTER")
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
                    Err(e) => format!("CLUSTER INFO failed: {}", cache::Error::from(e)),
                };
                if view.is_none() {
                    view = Some((redis, address.clone()));
                }
                state
            }
        };
        report.nodes.push(NodeState {
            address,
            role: "cluster node".into(),
            state,
        });
    }
    if let Some((redis, address)) = view {
        cluster_layout(&redis, &address, report).await;
    }
}

/// Slot coverage, primaries without a replica, and the failover settings, from one node's view.
async fn cluster_layout(redis: &Redis, address: &str, report: &mut DoctorReport) {
    let mut c = redis.clone();
    if let Ok(text) = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(&mut c)
        .await
    {
        let layout = Layout::parse(&text);
        if layout.slots_covered < 16384 {
            report.findings.push(finding(
                Severity::High,
                "cluster-slots-uncovered",
                format!(
                    "{} of 16384 slots are served by a live primary (seen from {address})",
                    layout.slots_covered
                ),
                "assign or fail over the missing slots (redis-cli --cluster fix); keys in them cannot be read or written",
            ));
        }
        if !layout.without_replica.is_empty() {
            report.findings.push(finding(
                Severity::Medium,
                "cluster-primary-without-replica",
                format!(
                    "{} of {} primaries have no replica: {}",
                    layout.without_replica.len(),
                    layout.primaries,
                    layout.without_replica.join(", ")
                ),
                "give every primary a replica (redis-cli --cluster add-node --cluster-slave); a primary without one that dies takes its slots with it",
            ));
        }
    }
    let config = redis_admin::config_get(
        redis,
        &["cluster-node-timeout", "cluster-require-full-coverage"],
    )
    .await
    .unwrap_or_default();
    if let Some(t) = config
        .get("cluster-node-timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 5000)
    {
        report.findings.push(finding(
            Severity::Low,
            "cluster-node-timeout",
            format!("cluster-node-timeout {t} ms: a dead primary's slots refuse every command for at least that long before a replica takes over"),
            "lower it (e.g. 5000) if the network allows; every session and rate-limit key on that primary is unavailable meanwhile",
        ));
    }
    if config
        .get("cluster-require-full-coverage")
        .map(String::as_str)
        == Some("yes")
    {
        report.findings.push(finding(
            Severity::Info,
            "cluster-require-full-coverage",
            "cluster-require-full-coverage yes: while any slot is unserved the whole cluster refuses commands (CLUSTERDOWN), not only that slot's keys".into(),
            "set it to no to keep the other slots (most sessions) available during a primary's failover",
        ));
    }
}

/// What `CLUSTER NODES` says about the cluster's shape.
struct Layout {
    primaries: usize,
    slots_covered: u32,
    without_replica: Vec<String>,
}

impl Layout {
    fn parse(text: &str) -> Layout {
        let mut primaries: Vec<(String, String, u32)> = Vec::new(); // id, address, slots
        let mut replicated: Vec<String> = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(addr), Some(flags), Some(master)) =
                (f.first(), f.get(1), f.get(2), f.get(3))
            else {
                continue;
            };
            if flags.contains("fail") {
                continue;
            }
            if flags.split(',').any(|x| x == "master") {
                let slots: u32 = f
                    .iter()
                    .skip(8)
                    .filter(|s| !s.starts_with('['))
                    .map(|s| match s.split_once('-') {
                        Some((a, b)) => {
                            b.parse::<u32>().unwrap_or(0) + 1 - a.parse::<u32>().unwrap_or(0)
                        }
                        None => 1,
                    })
                    .sum();
                let address = addr.split('@').next().unwrap_or(addr).to_string();
                primaries.push((id.to_string(), address, slots));
            } else if *master != "-" {
                replicated.push(master.to_string());
            }
        }
        let serving: Vec<&(String, String, u32)> =
            primaries.iter().filter(|(_, _, s)| *s > 0).collect();
        Layout {
            primaries: serving.len(),
            slots_covered: serving.iter().map(|(_, _, s)| s).sum(),
            without_replica: serving
                .iter()
                .filter(|(id, _, _)| !replicated.contains(id))
                .map(|(_, a, _)| a.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn the_layout_counts_slots_and_finds_primaries_without_replicas() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
r1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
";
        let l = Layout::parse(text);
        assert_eq!((l.primaries, l.slots_covered), (3, 16384));
        assert_eq!(l.without_replica, vec!["127.0.0.1:7002", "127.0.0.1:7003"]);
        let failed = text.replace(
            "a3 127.0.0.1:7003@17003 master",
            "a3 127.0.0.1:7003@17003 master,fail",
        );
        assert_eq!(Layout::parse(&failed).slots_covered, 10923);
    }
}
