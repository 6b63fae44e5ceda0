//! The process backend: every node is a `localredis` child of this process.
//!
//! `localredis` is blocking (its callers include plain `#[test]`s), so each node sits behind a
//! `std::sync::Mutex` in an `Arc` and every lifecycle call runs on `spawn_blocking`; a restart may
//! wait up to 10 s for a node to load its data and must not stall the workload's runtime threads.
//!
//! Cleanup: dropping a `RedisServer` / `Sentinel` kills the child and removes its temporary
//! directory, and `localredis` makes the kernel kill the children if this process dies
//! (`PR_SET_PDEATHSIG`). The kernel removes no directory, though, and a node still starting on a
//! blocking thread when Ctrl-C aborts the experiment is nobody's to drop yet. So every blocking
//! call holds a [`Pending`] token and, when nobody waits for its result any more, drops that
//! result itself (killing the node, removing its directory) before giving the token back; the
//! runner waits for all tokens before the process exits.
//!
//! Start-up runs in three waves — primary, then both replicas, then all three sentinels — each
//! wave's nodes started concurrently: a replica needs the primary's port, a sentinel needs the
//! primary answering (or it would count it down before the experiment starts) and the replicas
//! attached to it (see [`super::wait_replicas_attached`]).

use std::sync::{Arc, Mutex};

use futures_util::future::try_join_all;
use localredis::{RedisServer, Sentinel, SentinelConfig, ServerConfig};

use super::{DbError, NodeAction, NodeInfo, NodeKind, SERVICE, data_directives};
use crate::experiment::{TopologyKind, TopologySpec};
use crate::guard::Pending;

enum Node {
    Data(RedisServer),
    Sentinel(Sentinel),
}

impl Node {
    fn act(&mut self, action: NodeAction) -> Result<(), localredis::Error> {
        macro_rules! on {
            ($n:expr) => {
                match action {
                    NodeAction::Kill => $n.kill(),
                    NodeAction::Stop => $n.stop(),
                    NodeAction::Pause => $n.pause(),
                    NodeAction::Resume => $n.resume(),
                    NodeAction::Restart => $n.restart(),
                    // Refused by `ProcessNodes::apply` before it gets here.
                    NodeAction::Partition | NodeAction::Heal => Ok(()),
                }
            };
        }
        match self {
            Node::Data(n) => on!(n),
            Node::Sentinel(n) => on!(n),
        }
    }
}

type Shared = Arc<Mutex<Node>>;

pub struct ProcessNodes {
    nodes: Vec<Shared>,
    pending: Pending,
}

/// Runs a `localredis` call on a blocking thread. If the caller is gone by the time it returns
/// (the experiment was aborted), the result — a started node, or the last handle to a restarted
/// one — is dropped right here, before `pending` is released.
async fn blocking<T: Send + 'static>(
    pending: &Pending,
    f: impl FnOnce() -> Result<T, localredis::Error> + Send + 'static,
) -> Result<T, DbError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let token = pending.clone();
    tokio::task::spawn_blocking(move || {
        // Calling `f` consumes it: whatever it captured (a node's `Arc`) is dropped here too.
        let result = f();
        drop(tx.send(result));
        drop(token);
    });
    rx.await
        .map_err(|_| DbError::Failed("a node's start/stop task panicked".into()))?
        .map_err(DbError::from)
}

impl ProcessNodes {
    pub async fn start(
        spec: &TopologySpec,
        password: &str,
        pending: &Pending,
    ) -> Result<(ProcessNodes, Vec<NodeInfo>), DbError> {
        let base = {
            let mut c = ServerConfig::default()
                .password(password)
                .persistence(spec.persistence.to_localredis())
                .cluster(spec.kind == TopologyKind::Cluster);
            for (k, v) in data_directives(spec) {
                c = c.directive(k, v);
            }
            c
        };
        let primary_cfg = base.clone();
        let primary = blocking(pending, move || RedisServer::start(primary_cfg)).await?;
        let primary_port = primary.port();
        let mut nodes = vec![Node::Data(primary)];
        if spec.kind == TopologyKind::Cluster {
            // Five more equal nodes; `super::cluster::form` gives them their roles.
            let others = try_join_all((1..super::cluster::NODES).map(|_| {
                let cfg = base.clone();
                blocking(pending, move || RedisServer::start(cfg))
            }))
            .await?;
            nodes.extend(others.into_iter().map(Node::Data));
        }
        if spec.kind == TopologyKind::Sentinel {
            let replicas = try_join_all((0..2).map(|_| {
                let cfg = base.clone().replica_of("127.0.0.1", primary_port);
                blocking(pending, move || RedisServer::start(cfg))
            }))
            .await?;
            nodes.extend(replicas.into_iter().map(Node::Data));
            super::wait_replicas_attached(primary_port, password, 2).await?;
            let sentinels = try_join_all((0..3).map(|_| {
                let mut cfg = SentinelConfig::new(SERVICE, ("127.0.0.1", primary_port));
                cfg.quorum = spec.quorum;
                cfg.down_after_ms = spec.down_after_ms;
                cfg.failover_timeout_ms = spec.failover_timeout_ms;
                cfg.auth_pass = Some(password.to_string());
                blocking(pending, move || Sentinel::start(cfg))
            }))
            .await?;
            nodes.extend(sentinels.into_iter().map(Node::Sentinel));
        }
        let infos = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n {
                Node::Data(s) => NodeInfo {
                    name: format!("redis-{i}"),
                    kind: NodeKind::Data,
                    port: s.port(),
                },
                Node::Sentinel(s) => NodeInfo {
                    name: format!("sentinel-{}", i - 3),
                    kind: NodeKind::Sentinel,
                    port: s.port(),
                },
            })
            .collect();
        let nodes = nodes.into_iter().map(|n| Arc::new(Mutex::new(n))).collect();
        let pending = pending.clone();
        Ok((ProcessNodes { nodes, pending }, infos))
    }

    pub async fn apply(&self, index: usize, action: NodeAction) -> Result<(), DbError> {
        if matches!(action, NodeAction::Partition | NodeAction::Heal) {
            return Err(DbError::Failed(
                "network partitions are not supported on the process backend (every node shares \
                 the host's loopback); use --backend docker"
                    .into(),
            ));
        }
        let node = self.nodes[index].clone();
        blocking(&self.pending, move || {
            node.lock().unwrap_or_else(|p| p.into_inner()).act(action)
        })
        .await
    }

    pub async fn teardown(self) {
        // Dropping kills and reaps each child and removes its directory; do it off the runtime.
        let pending = self.pending.clone();
        let _ = blocking(&pending, move || {
            drop(self);
            Ok(())
        })
        .await;
    }
}
