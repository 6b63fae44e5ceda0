//! db: the Redis topology under test, set up before an experiment and torn down after it.
//!
//! Two backends build the same topology and take the same faults:
//! - [`process`]: `redis-server` / `redis-sentinel` children through `localredis` (signals:
//!   `SIGKILL`, `SIGTERM`, `SIGSTOP`/`SIGCONT`, restart on the same port and data directory);
//! - [`docker`]: one container per node through testcontainers (`docker kill -s KILL`,
//!   `docker stop`, `docker pause`/`unpause`, `docker start` of the same container).
//!
//! Both use host networking on distinct free loopback ports, so every node, in either backend, is
//! `127.0.0.1:<port>`. That is what makes the two backends give *identical* reports: the client,
//! the sentinel-event watcher and the checker talk to the nodes the same way, and Sentinel never
//! sees a NAT-translated address it would announce wrongly.
//!
//! Everything that *observes* the topology (roles, which node Sentinel names, SCAN) lives here and
//! is backend-independent; the backends only start, signal and remove nodes. So does the one thing
//! an experiment may say *to* Sentinel at run time: its optional polling periods (`SENTINEL DEBUG
//! info-period / publish-period`, see `scenarios/chaos/README.md`), applied over the network after
//! start-up and after every sentinel restart (they are not kept in its config file), identically
//! for both backends.

pub mod cluster;
pub mod docker;
pub mod network;
pub mod process;

use std::time::Duration;

use futures_util::future::join_all;
use redis::Value;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::experiment::{TopologyKind, TopologySpec};
use crate::guard::Pending;

/// The Sentinel service name of every experiment.
pub const SERVICE: &str = "mymaster";

/// Why the topology could not be built or driven.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Docker or an image is missing: exit 3.
    #[error("{0}")]
    Environment(String),
    /// A local node could not be started or driven: `localredis`'s error, kept whole (a missing
    /// Redis binary is an environment problem too, see [`DbError::is_environment`]).
    #[error(transparent)]
    Node(#[from] localredis::Error),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl DbError {
    /// Docker, an image or a Redis binary is missing (exit 3), rather than a failure of the run.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            DbError::Environment(_) | DbError::Node(localredis::Error::BinaryMissing { .. })
        )
    }
}

/// Data node or sentinel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Data,
    Sentinel,
}

/// One node of the topology. Index 0 of the data nodes is the initial primary.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub kind: NodeKind,
    pub port: u16,
}

/// A fault the backends know how to inflict on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    Kill,
    Stop,
    Pause,
    Resume,
    Restart,
    /// Cut the node off (see [`crate::experiment::FaultAction::Partition`]).
    Partition,
    /// Undo a partition.
    Heal,
}

/// Which backend runs the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Process,
    Docker,
}

/// How every data node is configured, whichever backend starts it: the guide's production
/// settings, plus the experiment's persistence, `min-replicas-to-write` and, on a cluster,
/// `cluster-node-timeout`.
pub fn data_directives(spec: &TopologySpec) -> Vec<(String, String)> {
    let mut d = vec![
        ("maxmemory".into(), "256mb".into()),
        ("maxmemory-policy".into(), "allkeys-lru".into()),
        ("tcp-keepalive".into(), "300".into()),
    ];
    if spec.min_replicas_to_write > 0 {
        d.push((
            "min-replicas-to-write".into(),
            spec.min_replicas_to_write.to_string(),
        ));
        d.push((
            "min-replicas-max-lag".into(),
            spec.min_replicas_max_lag.to_string(),
        ));
    }
    if spec.kind == TopologyKind::Cluster {
        d.extend(cluster::directives(spec));
    }
    d
}

/// The running topology.
pub struct Db {
    pub spec: TopologySpec,
    pub backend: BackendKind,
    /// The data nodes' password: random per run, never printed.
    password: String,
    pub nodes: Vec<NodeInfo>,
    inner: Inner,
    /// Held for as long as this topology exists (see [`crate::guard`]).
    _pending: Pending,
}

enum Inner {
    Process(process::ProcessNodes),
    Docker(docker::DockerNodes),
}

impl Db {
    /// Builds the topology on `backend` and waits until it is fully formed (for Sentinel: every
    /// sentinel knows both replicas and the two other sentinels, so a failover can be elected).
    /// `pending` is cloned into every node operation that could outlive this future (see
    /// [`crate::guard`]).
    pub async fn start(
        spec: &TopologySpec,
        backend: BackendKind,
        image: &str,
        run_id: &str,
        pending: &Pending,
    ) -> Result<Db, DbError> {
        let password = random_hex(16);
        let (inner, nodes) = match backend {
            BackendKind::Process => {
                let (n, nodes) = process::ProcessNodes::start(spec, &password, pending).await?;
                (Inner::Process(n), nodes)
            }
            BackendKind::Docker => {
                let (n, nodes) =
                    docker::DockerNodes::start(spec, &password, image, run_id, pending).await?;
                (Inner::Docker(n), nodes)
            }
        };
        let db = Db {
            spec: spec.clone(),
            backend,
            password,
            nodes,
            inner,
            _pending: pending.clone(),
        };
        if spec.kind == TopologyKind::Cluster {
            let ports: Vec<u16> = db.data_nodes().map(|n| n.port).collect();
            cluster::form(&ports, &db.password).await?;
        }
        let tuned = join_all(db.sentinels().map(|s| db.tune_sentinel(s.port))).await;
        tuned.into_iter().collect::<Result<Vec<()>, DbError>>()?;
        db.wait_formed().await?;
        Ok(db)
    }

    /// Applies the experiment's Sentinel polling periods (`SENTINEL DEBUG`) to one sentinel. They
    /// live in memory only, so a restarted sentinel needs them again.
    async fn tune_sentinel(&self, port: u16) -> Result<(), DbError> {
        let periods = [
            ("info-period", self.spec.sentinel_info_period_ms),
            ("publish-period", self.spec.sentinel_publish_period_ms),
        ];
        let values: Vec<(&str, String)> = periods
            .iter()
            .filter_map(|(name, ms)| ms.map(|ms| (*name, ms.to_string())))
            .collect();
        if values.is_empty() {
            return Ok(());
        }
        let mut args = vec!["SENTINEL", "DEBUG"];
        for (name, ms) in &values {
            args.extend([*name, ms.as_str()]);
        }
        query(port, None, &args).await.map(drop).map_err(|e| {
            DbError::Failed(format!(
                "SENTINEL DEBUG on 127.0.0.1:{port}: {e} (Sentinel ≥ 7.0 is needed for \
                 sentinel_info_period_ms / sentinel_publish_period_ms; remove them to use \
                 Sentinel's defaults)"
            ))
        })
    }

    /// The `REDIS_URL` the clients use: the sentinel list, or the single node.
    pub fn url(&self) -> String {
        let pw = &self.password;
        match self.spec.kind {
            TopologyKind::Sentinel => {
                let hosts: Vec<String> = self
                    .sentinels()
                    .map(|n| format!("127.0.0.1:{}", n.port))
                    .collect();
                format!("redis://:{pw}@{}/{SERVICE}", hosts.join(","))
            }
            TopologyKind::Standalone => format!("redis://:{pw}@127.0.0.1:{}", self.nodes[0].port),
            TopologyKind::Cluster => {
                let hosts: Vec<String> = self
                    .data_nodes()
                    .map(|n| format!("127.0.0.1:{}", n.port))
                    .collect();
                format!("redis://:{pw}@{}", hosts.join(","))
            }
        }
    }

    pub fn data_nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Data)
    }

    pub fn sentinels(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.kind == NodeKind::Sentinel)
    }

    pub fn node_by_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    /// Inflicts `action` on node `index`; returns when the signal is delivered (restart: when the
    /// node answers `PING` again).
    pub async fn apply(&self, index: usize, action: NodeAction) -> Result<(), DbError> {
        let node = &self.nodes[index];
        match &self.inner {
            Inner::Process(p) => p.apply(index, action).await?,
            Inner::Docker(d) => {
                d.apply(index, action).await?;
                if action == NodeAction::Restart {
                    let pw = (node.kind == NodeKind::Data).then_some(self.password.as_str());
                    wait_ping(node.port, pw, Duration::from_secs(20)).await?;
                }
            }
        }
        if action == NodeAction::Restart && node.kind == NodeKind::Sentinel {
            self.tune_sentinel(node.port).await?;
        }
        Ok(())
    }

    /// Removes every node (and its data). Also runs, less politely, on drop.
    pub async fn teardown(self) {
        match self.inner {
            Inner::Process(p) => p.teardown().await,
            Inner::Docker(d) => d.teardown().await,
        }
    }

    /// One command on one node (fresh connection, short timeouts).
    pub async fn query(&self, port: u16, args: &[&str]) -> redis::RedisResult<Value> {
        let is_data = self
            .nodes
            .iter()
            .any(|n| n.port == port && n.kind == NodeKind::Data);
        let pw = is_data.then_some(self.password.as_str());
        query(port, pw, args).await
    }

    /// `ROLE` of a data node: `master`, `slave`, or `None` if it does not answer.
    pub async fn role(&self, port: u16) -> Option<String> {
        match self.query(port, &["ROLE"]).await.ok()? {
            Value::Array(items) => items.first().and_then(value_str),
            _ => None,
        }
    }

    /// The primary's port as the sentinels name it (first sentinel that answers).
    pub async fn sentinel_primary(&self) -> Option<u16> {
        for s in self.sentinels() {
            let reply = query(
                s.port,
                None,
                &["SENTINEL", "get-master-addr-by-name", SERVICE],
            )
            .await;
            if let Ok(Value::Array(items)) = reply
                && let Some(port) = items.get(1).and_then(value_str)
            {
                return port.parse().ok();
            }
        }
        None
    }

    /// The primary right now: what Sentinel says, the single node, or the owner of slot 0.
    pub async fn current_primary(&self) -> Option<usize> {
        match self.spec.kind {
            TopologyKind::Standalone => Some(0),
            TopologyKind::Cluster => {
                self.node_by_port(cluster::owner(&self.cluster_view().await?, 0)?)
            }
            TopologyKind::Sentinel => self.node_by_port(self.sentinel_primary().await?),
        }
    }

    async fn wait_formed(&self) -> Result<(), DbError> {
        if self.spec.kind != TopologyKind::Sentinel {
            return Ok(()); // a cluster is formed by `cluster::form`
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut formed = true;
            for s in self.sentinels() {
                let count = |what: &'static str| async move {
                    match query(s.port, None, &["SENTINEL", what, SERVICE]).await {
                        Ok(Value::Array(a)) => a.len(),
                        _ => 0,
                    }
                };
                formed &= count("replicas").await == 2 && count("sentinels").await == 2;
            }
            for n in self.data_nodes().skip(1) {
                let info = self.query(n.port, &["INFO", "replication"]).await;
                formed &= matches!(info, Ok(Value::BulkString(b)) if String::from_utf8_lossy(&b).contains("master_link_status:up"));
            }
            if formed {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(DbError::Failed(
                    "the Sentinel topology did not form within 30 s (sentinels must see 2 replicas \
                     and 2 other sentinels, replicas must be linked)"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Text of a simple or bulk string reply.
pub fn value_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl Db {
    /// A connection of its own to one data node (for many commands in a row).
    pub async fn connection(&self, port: u16) -> redis::RedisResult<MultiplexedConnection> {
        connect(port, Some(&self.password)).await
    }
}

async fn connect(port: u16, password: Option<&str>) -> redis::RedisResult<MultiplexedConnection> {
    use redis::IntoConnectionInfo;
    let mut info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), port).into_connection_info()?;
    if let Some(pw) = password {
        info = info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(pw));
    }
    let client = redis::Client::open(info)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// One command on `127.0.0.1:port` over a fresh connection.
pub async fn query(port: u16, password: Option<&str>, args: &[&str]) -> redis::RedisResult<Value> {
    let mut conn = connect(port, password).await?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

/// Polls `PING` until it answers `PONG` (not `LOADING`), or fails after `limit`.
pub async fn wait_ping(port: u16, password: Option<&str>, limit: Duration) -> Result<(), DbError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(v) = query(port, password, &["PING"]).await
            && value_str(&v).as_deref() == Some("PONG")
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DbError::Failed(format!(
                "127.0.0.1:{port} did not answer PING within {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the primary's `INFO replication` until `replicas` replicas are attached (≤ 20 s).
///
/// Both backends call this before starting the sentinels: a sentinel learns the replicas from the
/// primary's `INFO`, which it sends when it connects and then only every 10 s. Started a moment
/// before the replicas attach, the sentinels would see them — and the topology would form — 10 s
/// later.
pub async fn wait_replicas_attached(
    port: u16,
    password: &str,
    replicas: usize,
) -> Result<(), DbError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let want = format!("connected_slaves:{replicas}");
    loop {
        if let Ok(Value::BulkString(b)) =
            query(port, Some(password), &["INFO", "replication"]).await
            && String::from_utf8_lossy(&b)
                .lines()
                .any(|l| l.trim() == want)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DbError::Failed(format!(
                "the primary 127.0.0.1:{port} did not see its {replicas} replicas attach within 20 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` random bytes as hex (passwords, run ids, synthetic tokens).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS RNG failing is not recoverable and not the operator's doing; fall back to time+pid.
    if getrandom::fill(&mut bytes).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    hex::encode(bytes)
}
