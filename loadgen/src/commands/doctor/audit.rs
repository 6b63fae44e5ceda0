//! The configuration audit: `CONFIG GET` and `INFO` held against the guide and the known hazards
//! for sessions and rate limits (memory and eviction, persistence, authentication and binding,
//! replication). Every finding says what is wrong in the operator's words and how to fix it.

use std::collections::BTreeMap;
use std::time::Duration;

use cache::url::Topology;
use cache::{Redis, RedisUrl};

use crate::report::doctor::{Finding, Severity, finding};

fn num(map: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| v.parse().ok())
}

pub(super) fn memory(
    info: &BTreeMap<String, String>,
    config: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    let maxmemory = num(config, "maxmemory").or_else(|| num(info, "maxmemory"));
    let policy = config
        .get("maxmemory-policy")
        .or_else(|| info.get("maxmemory_policy"))
        .cloned()
        .unwrap_or_default();
    match maxmemory {
        Some(0) => out.push(finding(
            Severity::High,
            "maxmemory-unset",
            "maxmemory is 0 (unlimited): Redis grows until the operating system kills it, taking every session with it".into(),
            "set maxmemory (the guide uses 256mb) below the machine's memory, leaving room for replication and AOF buffers",
        )),
        Some(limit) => {
            if let Some(used) = num(info, "used_memory") {
                let pct = used as f64 * 100.0 / limit as f64;
                if pct >= 90.0 {
                    out.push(finding(
                        Severity::High,
                        "memory-nearly-full",
                        format!("used_memory is {pct:.0}% of maxmemory ({used} of {limit} bytes)"),
                        "raise maxmemory or shorten TTLs; run `loadgen capacity` to size it for your load",
                    ));
                }
            }
        }
        None => {}
    }
    match policy.as_str() {
        p if p.starts_with("allkeys-") => out.push(finding(
            Severity::Medium,
            "eviction-allkeys",
            format!("maxmemory-policy {p} evicts live sessions (users logged out early) and rate-limit counters (limits reset: over-admission) under memory pressure"),
            "prefer noeviction (pressure shows as write errors) and size maxmemory for the load; run `loadgen evict` to measure what each policy loses",
        )),
        "volatile-ttl" => out.push(finding(
            Severity::Medium,
            "eviction-volatile-ttl",
            "maxmemory-policy volatile-ttl evicts the shortest-lived keys first: rate-limit counters go before sessions, so limits reset under pressure".into(),
            "prefer noeviction, or size maxmemory so eviction never happens",
        )),
        p if p.starts_with("volatile-") => out.push(finding(
            Severity::Medium,
            "eviction-volatile",
            format!("maxmemory-policy {p}: every key these stores write has a TTL, so this evicts the same live sessions and counters as allkeys-*"),
            "prefer noeviction and size maxmemory for the load",
        )),
        "noeviction" => out.push(finding(
            Severity::Info,
            "eviction-noeviction",
            "maxmemory-policy noeviction: when full, writes fail with OOM errors the application sees, instead of silently losing sessions".into(),
            "alert on rejected writes (INFO errorstats errorstat_OOM) and keep headroom",
        )),
        _ => {}
    }
    if let Some(oom) = num(info, "errorstat_OOM").or_else(|| {
        info.get("errorstat_OOM")
            .and_then(|v| v.strip_prefix("count="))
            .and_then(|v| v.parse().ok())
    }) && oom > 0
    {
        out.push(finding(
            Severity::High,
            "oom-errors",
            format!("{oom} commands were already refused with OOM (memory full)"),
            "raise maxmemory, shorten TTLs, or reduce the working set; every refused write is a failed login or lost session update",
        ));
    }
}

/// Minutes of writes a crash can lose with RDB only: the shortest `save <seconds> <changes>` interval
/// (with few changes, a longer one applies; we report the best case and say so).
pub(super) fn persistence(
    info: &BTreeMap<String, String>,
    config: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    let aof = config
        .get("appendonly")
        .map(|v| v == "yes")
        .or_else(|| info.get("aof_enabled").map(|v| v == "1"))
        .unwrap_or(false);
    let save = config.get("save").cloned().unwrap_or_default();
    let intervals: Vec<u64> = save
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|c| c.first().and_then(|s| s.parse().ok()))
        .collect();
    if aof {
        let fsync = config
            .get("appendfsync")
            .map(String::as_str)
            .unwrap_or("everysec");
        let (severity, loss) = match fsync {
            "always" => (Severity::Info, "no acknowledged write"),
            "everysec" => (Severity::Info, "about 1 second of writes"),
            _ => (
                Severity::Low,
                "up to ~30 seconds of writes (the OS decides when to flush)",
            ),
        };
        out.push(finding(
            severity,
            "persistence-aof",
            format!("AOF is on (appendfsync {fsync}): a crash loses {loss}"),
            "keep appendfsync everysec for sessions; always costs latency on every write",
        ));
    } else if let Some(shortest) = intervals.iter().min() {
        out.push(finding(
            Severity::Medium,
            "persistence-rdb-only",
            format!(
                "RDB snapshots only (save {save}): a crash loses at least the last {} of sessions and token revocations, more when few keys change",
                humantime::format_duration(Duration::from_secs(*shortest))
            ),
            "turn on appendonly yes with appendfsync everysec to bound the loss to ~1 s",
        ));
    } else if !config.is_empty() {
        out.push(finding(
            Severity::Medium,
            "persistence-none",
            "no persistence (save \"\" and appendonly no): a restart logs every user out and forgets every revocation".into(),
            "enable AOF (appendonly yes, appendfsync everysec), or accept it knowingly for a pure cache",
        ));
    }
}

pub(super) async fn security(
    redis: &Redis,
    config: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    let mut conn = redis.clone();
    let default_user: Result<Vec<redis::Value>, _> = redis::cmd("ACL")
        .arg("GETUSER")
        .arg("default")
        .query_async(&mut conn)
        .await;
    let nopass = match default_user {
        Ok(fields) => {
            let fields = format!("{fields:?}");
            fields.contains("nopass") && fields.contains("\"on\"")
        }
        Err(_) => false, // not allowed to look: assume it is protected
    };
    let bind = config.get("bind").cloned().unwrap_or_default();
    let all_interfaces = bind.is_empty()
        || bind
            .split_whitespace()
            .any(|b| b == "*" || b == "0.0.0.0" || b == "::" || b == "-::*" || b == "*-");
    if nopass {
        let (severity, where_) = if all_interfaces {
            (
                Severity::High,
                format!("and listens on all interfaces (bind {bind:?})"),
            )
        } else {
            (Severity::Medium, format!("(bind {bind:?})"))
        };
        out.push(finding(
            severity,
            "no-auth",
            format!("the default user needs no password {where_}: anyone who can reach the port can read sessions and tokens"),
            "set requirepass or an ACL user with a password, and bind to private addresses only",
        ));
    }
    match config
        .get("tcp-keepalive")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(0) => out.push(finding(
            Severity::Low,
            "tcp-keepalive-off",
            "tcp-keepalive 0: dead client connections are never noticed and hold memory".into(),
            "set tcp-keepalive 300 as the guide does",
        )),
        Some(k) if k > 300 => out.push(finding(
            Severity::Low,
            "tcp-keepalive-long",
            format!("tcp-keepalive {k}: dead peers are detected slowly"),
            "set tcp-keepalive 300 as the guide does",
        )),
        _ => {}
    }
}

pub(super) fn replication(
    url: &RedisUrl,
    info: &BTreeMap<String, String>,
    config: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    if matches!(url.topology, Topology::Cluster { .. }) {
        return;
    }
    let replicas = num(info, "connected_slaves").unwrap_or(0);
    let min_replicas = num(config, "min-replicas-to-write").unwrap_or(0);
    if replicas == 0 {
        out.push(finding(
            Severity::Medium,
            "no-replica",
            "the primary has no connected replica: losing it loses everything since the last save, and nothing can take over".into(),
            "run at least one replica with Sentinel (see docker-compose.yml)",
        ));
    } else if min_replicas == 0 {
        out.push(finding(
            Severity::Low,
            "min-replicas-to-write-0",
            format!("{replicas} replica(s) but min-replicas-to-write 0: replication is asynchronous, so writes acknowledged just before a failover can be lost"),
            "set min-replicas-to-write 1 and min-replicas-max-lag 10 to bound the loss (writes then fail with NOREPLICAS instead)",
        ));
    }
}
