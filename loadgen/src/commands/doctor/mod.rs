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

mod audit;
mod topology;

use std::collections::BTreeMap;
use std::time::Duration;

use cache::url::Topology;
use cache::{ConnectOptions, KeySchema, Redis, RedisUrl};

use crate::engine::acl;
use crate::engine::redis_admin::{self, ScanBudget};
use crate::report::doctor::{
    DoctorReport, Finding, NOPERM_CHECK, SCHEMA_VERSION, Severity, finding,
};

/// The settings the audit reads (one `CONFIG GET`).
const AUDITED_SETTINGS: [&str; 10] = [
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
];

/// Everything `doctor` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct DoctorOptions {
    pub(crate) url: RedisUrl,
    pub(crate) tls_ca_pem: Option<Vec<u8>>,
}

/// `loadgen doctor`: the report (the binary prints it as text or JSON; its exit code is
/// [`DoctorReport::exit_code`]).
pub(crate) async fn run(opts: &DoctorOptions) -> DoctorReport {
    let connect = ConnectOptions {
        tls_ca_pem: opts.tls_ca_pem.clone(),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    diagnose(&opts.url, &connect).await
}

/// Runs every check it can against `url`. Never fails: problems become findings.
pub async fn diagnose(url: &RedisUrl, opts: &ConnectOptions) -> DoctorReport {
    let mut report = DoctorReport {
        schema_version: SCHEMA_VERSION,
        target: url.to_string(),
        topology: url.topology.kind(),
        reachable: false,
        redis_version: None,
        nodes: Vec::new(),
        keys: None,
        findings: Vec::new(),
        acl: acl::rules(cache::keys::DEFAULT_PREFIX, &url.topology),
    };
    match &url.topology {
        Topology::Sentinel {
            sentinels, service, ..
        } => topology::sentinels(url, sentinels, service, opts, &mut report).await,
        Topology::Cluster { nodes } => topology::cluster(url, nodes, opts, &mut report).await,
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
    // Each primary is audited on its own settings (a cluster's nodes can differ); a finding about
    // one node of several names it.
    let nodes = redis_admin::primaries(&redis).await.unwrap_or_default();
    let several = nodes.len() > 1;
    for node in &nodes {
        let mut findings = Vec::new();
        audit_node(url, &node.redis, &mut findings, &mut report.redis_version).await;
        for mut f in findings {
            if several {
                f.message = format!("node {}: {}", node.address, f.message);
            }
            report.findings.push(f);
        }
    }
    let budget = ScanBudget {
        max_keys: 200_000,
        time: Duration::from_secs(5),
    };
    let keys = redis_admin::key_stats(&redis, &KeySchema::default(), budget).await;
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

/// The finding for a command the ACL user may not run (doctor then exits 3).
fn refused(e: &cache::Error) -> Finding {
    let command = cache::acl::denied(e).unwrap_or_default();
    finding(
        Severity::High,
        NOPERM_CHECK,
        format!("the ACL user lacks {command}: doctor cannot audit the deployment"),
        "grant the rule printed under `least-privilege ACL` for doctor",
    )
}

/// The configuration audit of one server: memory and eviction, persistence, security, replication.
async fn audit_node(
    url: &RedisUrl,
    redis: &Redis,
    out: &mut Vec<Finding>,
    version: &mut Option<String>,
) {
    let info = match redis_admin::info(redis, "everything").await {
        Ok(info) => info.0,
        Err(e) if e.kind() == cache::ErrorKind::NoPermission => {
            out.push(refused(&e));
            BTreeMap::new()
        }
        Err(e) => {
            out.push(finding(
                Severity::Medium,
                "info-unavailable",
                format!("INFO failed: {e}"),
                "grant the ACL user +info (and +config|get) so the deployment can be audited",
            ));
            BTreeMap::new()
        }
    };
    if version.is_none() {
        *version = info.get("redis_version").cloned();
    }
    let config = match redis_admin::config_get(redis, &AUDITED_SETTINGS).await {
        Ok(config) => config,
        Err(e) if e.kind() == cache::ErrorKind::NoPermission => {
            out.push(refused(&e));
            BTreeMap::new()
        }
        Err(_) => BTreeMap::new(),
    };
    if config.is_empty() {
        out.push(finding(
            Severity::Info,
            "config-unavailable",
            "CONFIG GET is not available (renamed or not permitted); settings were read from INFO where possible".into(),
            "run doctor with a user allowed +config|get for a full audit",
        ));
    }
    audit::memory(&info, &config, out);
    audit::persistence(&info, &config, out);
    audit::security(redis, &config, out).await;
    audit::replication(url, &info, &config, out);
}

/// The guide's troubleshooting cases, in the operator's words.
pub(crate) fn connect_finding(e: &cache::Error) -> Finding {
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
