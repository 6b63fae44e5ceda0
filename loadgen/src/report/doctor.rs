//! `loadgen doctor`'s findings as data ([`DoctorReport`]) and as the text it prints.

use std::collections::BTreeMap;

use serde::Serialize;

use super::console;

/// Bumped on incompatible changes to `loadgen doctor --format json`.
pub const SCHEMA_VERSION: u32 = 1;

/// The finding that says the ACL user lacks a command doctor needs (exit 3).
pub const NOPERM_CHECK: &str = "acl-missing-command";

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

/// The least-privilege ACL rule for the stores or for some loadgen commands.
#[derive(Clone, Debug, Serialize)]
pub struct AclRule {
    /// `stores` (what the OAuth server itself needs), or the loadgen commands it is for.
    #[serde(rename = "for")]
    pub for_: &'static str,
    /// What follows `ACL SETUSER <user> on ><password>`.
    pub rule: String,
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
    /// The ACL rule the stores and each loadgen command need (keys under the default prefix).
    pub acl: Vec<AclRule>,
}

impl DoctorReport {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// 3 when the target could not be used (unreachable, or the ACL user lacks a command doctor
    /// needs), 1 when a high-severity finding exists, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.reachable || self.findings.iter().any(|f| f.check == NOPERM_CHECK) {
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
            let rows = self
                .nodes
                .iter()
                .map(|n| vec![n.address.clone(), n.role.clone(), n.state.clone()])
                .collect();
            out.push_str("\nnodes:\n");
            out.push_str(&console::table(&["address", "role", "state"], rows, 3));
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
            let rows = keys
                .per_kind
                .iter()
                .map(|(kind, k)| {
                    vec![
                        kind.clone(),
                        k.keys.to_string(),
                        k.without_ttl.to_string(),
                        k.sampled_bytes_per_key
                            .map(|b| format!("~{b} B"))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&console::table(
                &["kind", "keys", "without TTL", "bytes/key"],
                rows,
                1,
            ));
        }
        if !self.acl.is_empty() {
            out.push_str("\nleast-privilege ACL (ACL SETUSER <user> on ><password> <rule>):\n");
            for a in &self.acl {
                out.push_str(&format!("  {}:\n    {}\n", a.for_, a.rule));
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

/// A finding with its fix.
pub fn finding(severity: Severity, check: &'static str, message: String, fix: &str) -> Finding {
    Finding {
        severity,
        check,
        message: super::fmt::clip(&message, super::fmt::MAX_LINE),
        fix: fix.to_string(),
    }
}
