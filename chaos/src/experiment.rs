//! The experiment file (`scenarios/chaos/*.toml`): what to build, what to break and when, and
//! which invariants must hold afterwards.
//!
//! It is parsed once, at the edge, into typed structs; nothing downstream reads TOML or the
//! environment. Unknown keys are errors (`deny_unknown_fields`): a typo such as `down_after_msec`
//! must not silently fall back to a default and make an experiment prove something else than the
//! operator thinks. Every error names the file, the field and the expected form, and the CLI turns
//! it into exit code 2.
//!
//! Durations are written the way an operator says them (`"1500ms"`, `"3s"`), parsed by
//! `humantime`, and are measured from the moment the workload starts.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A bad experiment file or CLI override: a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExperimentError(pub String);

/// One experiment, as written in its file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short name, used in the results directory (`results/chaos-<name>-<time>`).
    pub name: String,
    /// One or two sentences for the report.
    #[serde(default)]
    pub description: String,
    /// How long the workload runs.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub duration: Duration,
    pub topology: TopologySpec,
    #[serde(default)]
    pub workload: WorkloadSpec,
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    #[serde(default)]
    pub expect: Expectations,
}

/// `sentinel` (1 primary, 2 replicas, 3 sentinels), `standalone` (one primary) or `cluster`
/// (3 primaries × 1 replica, Redis Cluster, no sentinels: see [`crate::db::cluster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyKind {
    Sentinel,
    Standalone,
    Cluster,
}

/// What the data nodes write to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PersistenceMode {
    /// `save ""`, `appendonly no`.
    None,
    /// The guide's `save 900 1 300 10 60 10000`.
    Rdb,
    /// `save 1 1`: a snapshot every second while writes arrive (for short experiments).
    RdbFast,
    /// `appendonly yes`, `appendfsync everysec`.
    Aof,
}

impl PersistenceMode {
    /// The node-level setting.
    pub fn to_localredis(self) -> localredis::Persistence {
        match self {
            PersistenceMode::None => localredis::Persistence::None,
            PersistenceMode::Rdb => localredis::Persistence::Rdb {
                save: "900 1 300 10 60 10000".into(),
            },
            PersistenceMode::RdbFast => localredis::Persistence::Rdb { save: "1 1".into() },
            PersistenceMode::Aof => localredis::Persistence::Aof {
                fsync: "everysec".into(),
            },
        }
    }
}

/// The `[topology]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub kind: TopologyKind,
    #[serde(default = "default_down_after")]
    pub down_after_ms: u64,
    #[serde(default = "default_failover_timeout")]
    pub failover_timeout_ms: u64,
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// `min-replicas-to-write` on every data node (0 = off).
    #[serde(default)]
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag`, seconds.
    #[serde(default = "default_max_lag")]
    pub min_replicas_max_lag: u32,
    #[serde(default = "default_persistence")]
    pub persistence: PersistenceMode,
    /// How often each sentinel sends `INFO` to the nodes it watches (`SENTINEL DEBUG
    /// info-period`, as Redis's own Sentinel tests do). `None` (every shipped experiment) =
    /// Sentinel's own 10 s. Shorter makes a restarted old primary rejoin sooner, but also makes
    /// failovers look faster than production: Sentinel confirms a promotion on its next `INFO` of
    /// the chosen replica (see `scenarios/chaos/README.md`).
    #[serde(default)]
    pub sentinel_info_period_ms: Option<u64>,
    /// How often each sentinel publishes its hello (`SENTINEL DEBUG publish-period`). `None` =
    /// Sentinel's own 2 s. Sentinels find each other through these hellos, and Sentinel waits four
    /// periods before it demotes a restarted old primary.
    #[serde(default)]
    pub sentinel_publish_period_ms: Option<u64>,
    /// Not read from the file: set when a fault is a `partition`, which needs the Docker backend's
    /// bridge network instead of host networking (see `db::network`).
    #[serde(skip)]
    pub bridge_network: bool,
    /// `cluster-node-timeout` of every node of a `cluster` topology (ms): how long a primary
    /// must be unreachable before the others mark it failed and its replica runs for election.
    #[serde(default = "default_cluster_node_timeout")]
    pub cluster_node_timeout_ms: u64,
}

fn default_cluster_node_timeout() -> u64 {
    2000
}

fn default_down_after() -> u64 {
    1000
}
fn default_failover_timeout() -> u64 {
    3000
}
fn default_quorum() -> u32 {
    2
}
fn default_max_lag() -> u32 {
    10
}
fn default_persistence() -> PersistenceMode {
    PersistenceMode::None
}

/// The `[workload]` table: what the K clients do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Concurrent clients, each with its own `cache::Redis` handle.
    pub clients: usize,
    /// Pause between two operations of one client.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub interval: Duration,
    /// Lifetime of the sessions whose loss is checked (long enough to outlive the run).
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub session_ttl: Duration,
    /// Lifetime of the short sessions whose expiry is checked.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub short_session_ttl: Duration,
    /// How late after its TTL a short session may still be visible.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub ttl_tolerance: Duration,
    /// After each write, `WAIT <n> <wait_timeout>`; a write is acknowledged only when n replicas
    /// have it (0 = no WAIT, the stores' normal behaviour).
    pub wait_replicas: u32,
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub wait_timeout: Duration,
    /// Client response timeout: an operation slower than this is indeterminate.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub response_timeout: Duration,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            clients: 4,
            interval: Duration::from_millis(10),
            session_ttl: Duration::from_secs(600),
            short_session_ttl: Duration::from_secs(4),
            ttl_tolerance: Duration::from_millis(1500),
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(500),
        }
    }
}

/// What a fault does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// `SIGKILL` (`docker kill -s KILL`): a crash, nothing saved.
    Kill,
    /// `SIGTERM` (`docker stop`): clean shutdown with its final save.
    Stop,
    /// `SIGSTOP` (`docker pause`): frozen; resumed after `duration` if given.
    Pause,
    /// Undo a pause.
    Resume,
    /// Start a killed or stopped node again (same port, same data directory).
    Restart,
    /// Cut the node off the network (Docker backend only: `iptables` in its network namespace).
    /// Target `primary`: the primary loses the sentinels and the replicas but the clients still
    /// reach it (Jepsen 2013's split brain). Target `sentinels`: those sentinels lose every node.
    Partition,
    /// Remove every partition (target `all`) or those of the faulted nodes.
    Heal,
}

/// Which node(s) a fault hits, resolved when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultTarget {
    /// Whatever node the sentinels name as primary at that moment (standalone: the node).
    Primary,
    /// One running data node that is not the primary.
    Replica,
    /// `count` running sentinels.
    Sentinels,
    /// Every node that an earlier fault killed, stopped or paused (for restart / resume).
    Faulted,
    /// Every data node and sentinel.
    All,
}

/// One `[[fault]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub at: Duration,
    pub action: FaultAction,
    pub target: FaultTarget,
    /// For `sentinels`: how many.
    #[serde(default = "one")]
    pub count: usize,
    /// For `pause`: resume after this long.
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

fn one() -> usize {
    1
}

/// The `[expect]` table: which invariants must hold. An absent bound is measured and reported
/// but not judged.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Most acknowledged writes (every kind) allowed to be lost.
    pub max_acked_writes_lost: Option<usize>,
    /// Fewest acknowledged writes that must be found lost: the experiment exists to show a loss
    /// (a partitioned primary), and a run that sees none did not reproduce the fault.
    pub min_acked_writes_lost: Option<usize>,
    /// Every lost acknowledged write must have been acknowledged within this long after the
    /// fault landed (`min-replicas-max-lag` bounds a partitioned primary's loss this way).
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_loss_after_fault: Option<Duration>,
    /// Must Sentinel promote a replica (`+switch-master`)? `false` = must not.
    pub failover: Option<bool>,
    /// Longest allowed time from the first fault to the first `ok` write.
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_write_gap: Option<Duration>,
    /// Most writes acknowledged by the old primary after the promotion.
    pub max_split_brain_writes: Option<usize>,
    /// Short sessions disappear between T and T + tolerance (never early, never resurrected).
    #[serde(default)]
    pub ttl: bool,
    /// A restarted old primary must come back as a replica.
    #[serde(default)]
    pub old_primary_rejoins: bool,
    /// Every lost acknowledged write must have completed within this long before the crash
    /// (what the persistence configuration promises: AOF everysec ≈ 1–2 s).
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_loss_window: Option<Duration>,
    /// Revoked tokens must stay revoked (never `Valid` again).
    #[serde(default)]
    pub revocations_kept: bool,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    // Through `toml::Value` rather than `String`, so `duration = 5` gets the expected form too
    // instead of serde's bare "expected a string".
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(text) => text,
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a duration such as \"1500ms\" or \"3s\" (quoted, with a unit), got {other}"
            )));
        }
    };
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "expected a duration such as \"1500ms\" or \"3s\", got {text:?} ({e})"
        ))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Written back the way it is read (`"1s 500ms"`), so a recorded history's experiment parses again.
fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// A TOML syntax or type error as `line L, column C: message`. Not toml's own `Display`: that
/// quotes the offending line of the file, and a line holding a secret (a `REDIS_URL` pasted into
/// the wrong file) must not reach a terminal or a CI log.
fn toml_error(text: &str, e: &toml::de::Error) -> ExperimentError {
    let mut message = e.message().trim_end().replace('\n', " ");
    let Some(start) = e.span().map(|s| s.start.min(text.len())) else {
        return ExperimentError(message);
    };
    if message.is_empty() {
        // toml has no words for some syntax errors (found by fuzzing: a control character in a
        // comment); name the character instead of printing the position and nothing.
        message = match text.get(start..).and_then(|t| t.chars().next()) {
            Some('\n' | '\r') => "unexpected end of line: this is not TOML".into(),
            Some(c) if c.is_control() => format!(
                "control character U+{:04X} is not allowed here (TOML allows only tab, and escapes in strings)",
                c as u32
            ),
            Some(c) => format!("unexpected `{c}`: this is not TOML"),
            None => "unexpected end of file: this is not TOML".into(),
        };
    }
    let before = &text.as_bytes()[..start];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    ExperimentError(format!("line {line}, column {column}: {message}"))
}

impl Experiment {
    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> Result<Experiment, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ExperimentError(format!(
                "cannot read experiment file {}: {e}",
                path.display()
            ))
        })?;
        Experiment::parse(&text)
            .map_err(|e| ExperimentError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and validates experiment TOML.
    pub fn parse(text: &str) -> Result<Experiment, ExperimentError> {
        let mut exp: Experiment = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        exp.validate()?;
        exp.topology.bridge_network = exp
            .faults
            .iter()
            .any(|f| f.action == FaultAction::Partition);
        Ok(exp)
    }

    fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |field: &str, expected: &str| {
            Err(ExperimentError(format!(
                "invalid `{field}`: expected {expected}"
            )))
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return bad("name", "1-64 characters of a-z, 0-9, `-` or `_`");
        }
        if self.duration < Duration::from_secs(1) || self.duration > Duration::from_secs(3600) {
            return bad("duration", "between \"1s\" and \"1h\"");
        }
        let t = &self.topology;
        if t.down_after_ms < 100 || t.failover_timeout_ms < 100 {
            return bad(
                "topology.down_after_ms / failover_timeout_ms",
                "at least 100 (milliseconds)",
            );
        }
        if !(1..=3).contains(&t.quorum) {
            return bad("topology.quorum", "1, 2 or 3 (there are 3 sentinels)");
        }
        let periods = [t.sentinel_info_period_ms, t.sentinel_publish_period_ms];
        if periods
            .iter()
            .flatten()
            .any(|p| !(100..=60_000).contains(p))
        {
            return bad(
                "topology.sentinel_info_period_ms / sentinel_publish_period_ms",
                "between 100 and 60000 (milliseconds), or absent for Sentinel's defaults",
            );
        }
        if t.kind != TopologyKind::Sentinel && periods.iter().any(Option::is_some) {
            return bad(
                "topology.sentinel_info_period_ms / sentinel_publish_period_ms",
                "nothing: only a sentinel topology has Sentinel",
            );
        }
        if !(100..=60_000).contains(&t.cluster_node_timeout_ms) {
            return bad(
                "topology.cluster_node_timeout_ms",
                "between 100 and 60000 (milliseconds)",
            );
        }
        if t.kind == TopologyKind::Cluster && t.min_replicas_to_write > 1 {
            return bad(
                "topology.min_replicas_to_write",
                "0 or 1 (each cluster primary has 1 replica)",
            );
        }
        if t.min_replicas_to_write > 2 {
            return bad(
                "topology.min_replicas_to_write",
                "0, 1 or 2 (there are 2 replicas)",
            );
        }
        let w = &self.workload;
        if !(1..=64).contains(&w.clients) {
            return bad("workload.clients", "between 1 and 64");
        }
        if w.short_session_ttl < Duration::from_secs(1) || w.session_ttl < w.short_session_ttl {
            return bad(
                "workload.short_session_ttl / session_ttl",
                "short_session_ttl ≥ \"1s\" and session_ttl ≥ short_session_ttl",
            );
        }
        if w.wait_replicas > 2 || (w.wait_replicas > 0 && w.wait_timeout >= w.response_timeout) {
            return bad(
                "workload.wait_replicas / wait_timeout",
                "wait_replicas 0-2 and wait_timeout shorter than response_timeout",
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            let field = format!("fault[{i}]");
            if f.at > self.duration {
                return bad(&format!("{field}.at"), "a time within `duration`");
            }
            if self.topology.kind == TopologyKind::Cluster && f.target == FaultTarget::Sentinels {
                return bad(
                    &format!("{field}.target"),
                    "`primary`, `replica`, `faulted` or `all` (a cluster topology has no sentinels)",
                );
            }
            if self.topology.kind == TopologyKind::Standalone
                && matches!(f.target, FaultTarget::Replica | FaultTarget::Sentinels)
            {
                return bad(
                    &format!("{field}.target"),
                    "`primary`, `faulted` or `all` (a standalone topology has no replicas or sentinels)",
                );
            }
            if f.target == FaultTarget::Sentinels && !(1..=3).contains(&f.count) {
                return bad(&format!("{field}.count"), "1, 2 or 3 sentinels");
            }
            if f.action == FaultAction::Partition
                && !matches!(f.target, FaultTarget::Primary | FaultTarget::Sentinels)
            {
                return bad(
                    &format!("{field}.target"),
                    "`primary` or `sentinels` for a partition",
                );
            }
            if f.action == FaultAction::Heal
                && !matches!(f.target, FaultTarget::All | FaultTarget::Faulted)
            {
                return bad(&format!("{field}.target"), "`all` or `faulted` for heal");
            }
            if matches!(f.action, FaultAction::Partition | FaultAction::Heal)
                && self.topology.kind == TopologyKind::Standalone
            {
                return bad(
                    &format!("{field}.action"),
                    "kill, stop, pause, resume or restart (a standalone node has nothing to be partitioned from)",
                );
            }
            if f.duration.is_some() && f.action != FaultAction::Pause {
                return bad(&format!("{field}.duration"), "only with action = \"pause\"");
            }
        }
        if self.expect.failover.is_some() && t.kind == TopologyKind::Standalone {
            return bad(
                "expect.failover",
                "nothing: a standalone topology has no Sentinel",
            );
        }
        Ok(())
    }

    /// Shortens the experiment for tests: `duration` and every fault time scale by `factor`.
    pub fn scaled(mut self, factor: f64) -> Experiment {
        let scale = |d: Duration| d.mul_f64(factor);
        self.duration = scale(self.duration);
        for f in &mut self.faults {
            f.at = scale(f.at);
            f.duration = f.duration.map(scale);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "x"
        duration = "5s"
        [topology]
        kind = "sentinel"
        [[fault]]
        at = "1s"
        action = "kill"
        target = "primary"
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let e = Experiment::parse(MINIMAL).unwrap();
        assert_eq!(e.topology.quorum, 2);
        assert_eq!(e.workload.clients, 4);
        assert_eq!(e.faults[0].at, Duration::from_secs(1));
    }

    #[test]
    fn errors_name_the_field() {
        let typo = MINIMAL.replace("kind = \"sentinel\"", "kind = \"sentinel\"\ndown_after = 5");
        let err = Experiment::parse(&typo).unwrap_err().0;
        assert!(err.contains("down_after"), "{err}");
        let late = MINIMAL.replace("at = \"1s\"", "at = \"9s\"");
        let err = Experiment::parse(&late).unwrap_err().0;
        assert!(err.contains("fault[0].at"), "{err}");
        let bad_duration = MINIMAL.replace("\"5s\"", "\"five\"");
        let err = Experiment::parse(&bad_duration).unwrap_err().0;
        assert!(err.contains("duration"), "{err}");
    }
}
