//! The least-privilege ACL rule each loadgen command needs: the stores' rule
//! ([`cache::acl::store_commands`]) plus the administrative commands loadgen sends itself
//! ([`super::redis_admin`], [`super::clock`], [`super::target`]).
//!
//! `loadgen doctor` prints these rules, so an operator can create a user that runs loadgen and
//! nothing more; the ACL integration test creates a user with exactly the printed rule and runs
//! every command with it. What is left out on purpose: `ACL GETUSER` (doctor's "no password"
//! check only assumes protection when refused) and `KEYS` (never used: `SCAN` is).

use cache::Topology;

use crate::report::doctor::AclRule;

/// Administrative commands every load command (and `capacity`) sends: the `INFO` series and bottleneck figures,
/// `CONFIG GET maxmemory`/policy, the capacity measurement (`DBSIZE`, `SCAN` + `PTTL` of existing
/// keys, `MEMORY USAGE`, `DEL` of its samples), `TIME` for the Redis clock offset, `PING` calibration.
const LOAD_ADMIN: [&str; 9] = [
    "info",
    "config|get",
    "dbsize",
    "scan",
    "pttl",
    "memory|usage",
    "del",
    "time",
    "ping",
];

/// What `doctor` reads: `INFO`, `CONFIG GET`, and the key census (`SCAN`, `PTTL`, `MEMORY USAGE`).
const DOCTOR: [&str; 6] = ["info", "config|get", "scan", "pttl", "memory|usage", "ping"];

/// The rules for the stores and each loadgen command, for keys under `prefix` over `topology`.
pub(crate) fn rules(prefix: &str, topology: &Topology) -> Vec<AclRule> {
    let stores = cache::acl::store_commands(topology);
    let mut admin: Vec<&str> = LOAD_ADMIN.to_vec();
    let mut doctor: Vec<&str> = DOCTOR.to_vec();
    if matches!(topology, Topology::Cluster { .. }) {
        // The primaries are listed with CLUSTER NODES; INFO and SCAN then go to each.
        admin.push("cluster|nodes");
        doctor.extend(["cluster|nodes", "cluster|info"]);
    }
    let with_stores = |extra: &[&str]| {
        let all = stores
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied());
        cache::acl::rule(prefix, all)
    };
    vec![
        AclRule {
            for_: "stores",
            rule: cache::acl::store_rule(prefix, topology),
        },
        AclRule {
            for_: "run, sweep, evict, capacity",
            rule: with_stores(&admin),
        },
        AclRule {
            for_: "doctor",
            rule: cache::acl::rule(prefix, doctor),
        },
    ]
}
