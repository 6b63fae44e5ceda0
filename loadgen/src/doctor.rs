//! `loadgen doctor`: diagnose a Redis deployment against the guide's troubleshooting cases and
//! production settings, before any load is sent.
//!
//! Two halves:
//! - **Can we use it at all?** Connection refused, authentication, TLS, no primary behind Sentinel —
//!   each turned into a finding that names the address and the next thing to try. For Sentinel and
//!   Cluster URLs every node is visited and its state reported (which primary each sentinel names,
//!   quorum, replicas; cluster state and slot coverage).
//! - **Is it configured for sessions and rate limits?** An audit of `CONFIG GET` / `INFO` against the
//!   guide and the known hazards: no `maxmemory`, an eviction policy that silently logs users out or
//!   resets limiter windows, persistence that loses minutes of sessions on restart, no password,
//!   listening on all interfaces without auth, `tcp-keepalive`, no replica or no
//!   `min-replicas-to-write`, memory nearly full or OOM already seen, `authority:*` keys without a
//!   TTL (counted with `SCAN`, never `KEYS`, within a bounded budget), and key counts and bytes per
//!   key type.
//!
//! Every finding has a severity and a fix. The exit code is 1 when any finding is `high`, so CI can
//! gate on it; a target that cannot be reached at all exits 3 like every other loadgen command.
//!
//! ```text
//! loadgen doctor [--redis-url URL] [--format text|json] [--tls-ca ca.pem]
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache::url::{Node, Topology};
use cache::{ConnectOptions, KeySchema, Redis, RedisUrl};
use serde::Serialize;

use crate::observe::Info;

/// How bad a finding is. `High` makes `loadgen doctor` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier, e.g. `maxmemory-unset`, for scripts.
    pub check: &'static str,
    pub message: String,
    pub fix: String,
}

/// One node's state as seen from here (data node or sentinel).
#[derive(Clone, Debug, Serialize)]
pub struct NodeState {
    pub address: String,
    pub role: String,
    pub state: String,
}

/// Keys of each kind the stores write, from a bounded SCAN.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KeyStats {
    pub scanned: u64,
    /// True when the scan budget ran out before the keyspace was covered.
    pub truncated: bool,
    pub per_kind: BTreeMap<String, KindStats>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KindStats {
    pub keys: u64,
    pub without_ttl: u64,
    /// Mean `MEMORY USAGE` over the first sampled keys of this kind.
    pub sampled_bytes_per_key: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub schema_version: u32,
    /// The URL with its password redacted.
    pub target: String,
    pub topology: &'static str,
    pub reachable: bool,
    pub redis_version: Option<String>,
    pub nodes: Vec<NodeState>,
    pub keys: Option<KeyStats>,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// 3 when the target could not be used, 1 when a high-severity finding exists, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.reachable {
            3
        } else if self.worst() == Some(Severity::High) {
            1
        } else {
            0
        }
    }

    /// Human-readable report: nodes, keys, then findings worst first.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "loadgen doctor: {} ({}{})\n",
            self.target,
            self.topology,
            self.redis_version
                .as_deref()
                .map(|v| format!(", Redis {v}"))
                .unwrap_or_default()
        );
        if !self.nodes.is_empty() {
            out.push_str("\nnodes:\n");
            for n in &self.nodes {
                out.push_str(&format!("  {:<24} {:<10} {}\n", n.address, n.role, n.state));
            }
        }
        if let Some(keys) = &self.keys {
            out.push_str(&format!(
                "\nkeys (SCAN of {}{}):\n",
                keys.scanned,
                if keys.truncated {
                    ", budget reached"
                } else {
                    ""
                }
            ));
            for (kind, k) in &keys.per_kind {
                out.push_str(&format!(
                    "  {:<14} {:>9} keys  {:>6} without TTL  {}\n",
                    kind,
                    k.keys,
                    k.without_ttl,
                    k.sampled_bytes_per_key
                        .map(|b| format!("~{b} B/key"))
                        .unwrap_or_default()
                ));
            }
        }
        let mut findings = self.findings.clone();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        out.push_str(&format!("\nfindings ({}):\n", findings.len()));
        for f in &findings {
            out.push_str(&format!(
                "  [{:?}] {}: {}\n         fix: {}\n",
                f.severity, f.check, f.message, f.fix
            ));
        }
        out
    }
}

fn finding(severity: Severity, check: &'static str, message: String, fix: &str) -> Finding {
    Finding {
        severity,
        check,
        message,
        fix: fix.to_string(),
    }
}

/// Runs every check it can against `url`. Never fails: problems become findings.
pub async fn diagnose(url: &RedisUrl, opts: &ConnectOptions) -> DoctorReport {
    let mut report = DoctorReport {
        schema_version: 1,
        target: url.to_string(),
        topology: url.topology.kind(),
        reachable: false,
        redis_version: None,
        nodes: Vec::new(),
        keys: None,
        findings: Vec::new(),
    };
    match &url.topology {
        Topology::Sentinel {
            sentinels, service, ..
        } => inspect_sentinels(url, sentinels, service, opts, &mut report).await,
        Topology::Cluster { nodes } => inspect_cluster(url, nodes, opts, &mut report).await,
        Topology::Standalone { .. } => {}
    }
    let redis = match Redis::connect(url, opts).await {
        Ok(r) => r,
        Err(e) => {
            report.findings.push(connect_finding(&e));
            return report;
        }
    };
    report.reachable = true;
    let mut conn = redis.clone();
    let info = match redis::cmd("INFO")
        .arg("everything")
        .query_async::<String>(&mut conn)
        .await
    {
        Ok(text) => Info::parse(&text).0,
        Err(e) => {
            report.findings.push(finding(
                Severity::Medium,
                "info-unavailable",
                format!("INFO failed: {}", cache::Error::from(e)),
                "grant the ACL user +info (and +config|get) so the deployment can be audited",
            ));
            BTreeMap::new()
        }
    };
    report.redis_version = info.get("redis_version").cloned();
    let config = config_get(&redis).await;
    if config.is_empty() {
        report.findings.push(finding(
            Severity::Info,
            "config-unavailable",
            "CONFIG GET is not available (renamed or not permitted); settings were read from INFO where possible".into(),
            "run doctor with a user allowed +config|get for a full audit",
        ));
    }
    audit_memory(&info, &config, &mut report.findings);
    audit_persistence(&info, &config, &mut report.findings);
    audit_security(&redis, &config, &mut report.findings).await;
    audit_replication(url, &info, &config, &mut report.findings);
    let keys = scan_keys(
        &redis,
        &KeySchema::default(),
        200_000,
        Duration::from_secs(5),
    )
    .await;
    let immortal: u64 = keys.per_kind.values().map(|k| k.without_ttl).sum();
    if immortal > 0 {
        report.findings.push(finding(
            Severity::High,
            "keys-without-ttl",
            format!("{immortal} authority:* keys have no TTL: they never expire and are never reclaimed"),
            "find the writer that sets them without EX/PX (INCR then EXPIRE in two commands leaks counters); fix it, then expire them",
        ));
    }
    report.keys = Some(keys);
    report
}

/// The guide's troubleshooting cases, in the operator's words.
pub fn connect_finding(e: &cache::Error) -> Finding {
    use cache::Error as E;
    let (check, fix) = match e {
        E::Unreachable { .. } => (
            "connection-refused",
            "check that redis-server is running and listening on that address (`redis-cli -h HOST -p PORT ping`), and that no firewall is in between",
        ),
        E::Auth { .. } => (
            "authentication-failed",
            "check the password (requirepass) or the ACL user and its password in REDIS_URL; percent-encode special characters",
        ),
        E::Tls { .. } => (
            "tls-failed",
            "use rediss:// only for a TLS port, make sure the server certificate names the host in REDIS_URL and is signed by a CA this machine trusts",
        ),
        E::NoPrimary { .. } => (
            "no-primary",
            "check the Sentinel service name, that the sentinels agree on a primary (SENTINEL ckquorum), and that it is reachable from here",
        ),
        _ => (
            "connect-failed",
            "read the cause above; `redis-cli` against the same address usually shows the same problem",
        ),
    };
    finding(Severity::High, check, e.to_string(), fix)
}

async fn config_get(redis: &Redis) -> BTreeMap<String, String> {
    let mut conn = redis.clone();
    let mut out = BTreeMap::new();
    for pattern in [
        "maxmemory",
        "maxmemory-policy",
        "save",
        "appendonly",
        "appendfsync",
        "bind",
        "protected-mode",
        "tcp-keepalive",
        "min-replicas-to-write",
        "min-replicas-max-lag",
    ] {
        let pairs: Result<Vec<String>, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(pattern)
            .query_async(&mut conn)
            .await;
        let Ok(pairs) = pairs else {
            return BTreeMap::new();
        };
        for kv in pairs.chunks(2) {
            if let [k, v] = kv {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn num(map: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| v.parse().ok())
}

fn audit_memory(
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
fn audit_persistence(
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

async fn audit_security(redis: &Redis, config: &BTreeMap<String, String>, out: &mut Vec<Finding>) {
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

fn audit_replication(
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

async fn inspect_sentinels(
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

async fn inspect_cluster(
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

/// Counts store keys by kind with `SCAN` (bounded by `max_keys` and `budget`), checks their TTLs
/// and samples `MEMORY USAGE` for the first 20 of each kind.
pub async fn scan_keys(
    redis: &Redis,
    schema: &KeySchema,
    max_keys: u64,
    budget: Duration,
) -> KeyStats {
    let mut stats = KeyStats::default();
    let mut conn = redis.clone();
    let mut cursor: u64 = 0;
    let mut sampled: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let start = Instant::now();
    let prefix = format!("{}:", schema.prefix());
    loop {
        let page: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(schema.pattern_all())
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = page else { break };
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = pipe.query_async(&mut conn).await.unwrap_or_default();
            for (key, ttl) in keys.iter().zip(ttls) {
                let kind = key
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split(':').next())
                    .unwrap_or("other")
                    .to_string();
                let entry = stats.per_kind.entry(kind.clone()).or_default();
                entry.keys += 1;
                if ttl == -1 {
                    entry.without_ttl += 1;
                }
                let s = sampled.entry(kind).or_default();
                if s.0 < 20 {
                    let bytes: Option<u64> = redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .unwrap_or(None);
                    if let Some(b) = bytes {
                        s.0 += 1;
                        s.1 += b;
                    }
                }
            }
            stats.scanned += keys.len() as u64;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
        if stats.scanned >= max_keys || start.elapsed() >= budget {
            stats.truncated = true;
            break;
        }
    }
    for (kind, (n, total)) in sampled {
        if n > 0
            && let Some(k) = stats.per_kind.get_mut(&kind)
        {
            k.sampled_bytes_per_key = Some(total / n);
        }
    }
    stats
}

/// Arguments of `loadgen doctor`, already resolved at the command-line edge.
pub struct DoctorArgs {
    pub url: RedisUrl,
    pub json: bool,
    pub tls_ca_pem: Option<Vec<u8>>,
}

/// Runs the doctor and prints its report; returns the exit code.
pub async fn run(args: DoctorArgs) -> i32 {
    let opts = ConnectOptions {
        tls_ca_pem: args.tls_ca_pem,
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let report = diagnose(&args.url, &opts).await;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: cannot print the report as JSON: {e}");
                return 1;
            }
        }
    } else {
        print!("{}", report.render_text());
    }
    report.exit_code()
}
