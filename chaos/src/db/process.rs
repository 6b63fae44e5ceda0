//! The process backend: every node is a `localredis` child of this process.
//!
//! `localredis` is blocking (its callers include plain `#[test]`s), so each node sits behind a
//! `std::sync::Mutex` in an `Arc` and every lifecycle call runs on `spawn_blocking`; a restart may
//! wait up to 10 s for a node to load its data and must not stall the workload's runtime threads.
//!
//! Cleanup needs nothing special: dropping a `RedisServer` / `Sentinel` kills the child and
//! removes its temporary directory, and `localredis` makes the kernel kill the children if this
//! process dies (`PR_SET_PDEATHSIG`), which covers panics and Ctrl-C too.

use std::sync::{Arc, Mutex};

use localredis::{RedisServer, Sentinel, SentinelConfig, ServerConfig};

use super::{DbError, NodeAction, NodeInfo, NodeKind, SERVICE, data_directives};
use crate::experiment::{TopologyKind, TopologySpec};

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
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, localredis::Error> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DbError::Failed(format!("node task failed: {e}")))?
        .map_err(DbError::from)
}

impl ProcessNodes {
    pub async fn start(
        spec: &TopologySpec,
        password: &str,
    ) -> Result<(ProcessNodes, Vec<NodeInfo>), DbError> {
        let base = {
            let mut c = ServerConfig::default()
                .password(password)
                .persistence(spec.persistence.to_localredis());
            for (k, v) in data_directives(spec) {
                c = c.directive(k, v);
            }
            c
        };
        let primary_cfg = base.clone();
        let primary = blocking(move || RedisServer::start(primary_cfg)).await?;
        let primary_port = primary.port();
        let mut nodes = vec![Node::Data(primary)];
        if spec.kind == TopologyKind::Sentinel {
            for _ in 0..2 {
                let cfg = base.clone().replica_of("127.0.0.1", primary_port);
                nodes.push(Node::Data(blocking(move || RedisServer::start(cfg)).await?));
            }
            for _ in 0..3 {
                let mut cfg = SentinelConfig::new(SERVICE, ("127.0.0.1", primary_port));
                cfg.quorum = spec.quorum;
                cfg.down_after_ms = spec.down_after_ms;
                cfg.failover_timeout_ms = spec.failover_timeout_ms;
                cfg.auth_pass = Some(password.to_string());
                nodes.push(Node::Sentinel(
                    blocking(move || Sentinel::start(cfg)).await?,
                ));
            }
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
        Ok((ProcessNodes { nodes }, infos))
    }

    pub async fn apply(&self, index: usize, action: NodeAction) -> Result<(), DbError> {
        let node = self.nodes[index].clone();
        blocking(move || node.lock().unwrap_or_else(|p| p.into_inner()).act(action)).await
    }

    pub async fn teardown(self) {
        // Dropping kills and reaps each child and removes its directory; do it off the runtime.
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}
