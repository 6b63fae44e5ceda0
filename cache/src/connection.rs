//! [`Redis`]: one cheap-to-clone handle over a standalone server, a Sentinel-managed primary or a
//! Cluster, so the stores never need to know which deployment is behind them.
//!
//! Why a handle and not a pool: every topology here is served by a *multiplexed* connection, which
//! pipelines concurrent requests from many tasks over one socket. One socket per node is both faster
//! (fewer syscalls per op under load) and kinder to the server than a pool. Cloning the handle clones
//! an `Arc`, so each request handler, goose user or chaos client can own one.
//!
//! The handle implements [`redis::aio::ConnectionLike`], so `cmd.query_async(&mut handle)` and
//! `Script::invoke_async(&mut handle)` work unchanged on every topology:
//! - standalone: redis-rs's `ConnectionManager` (reconnects in the background, never retries a
//!   command by itself — a failed write is reported to the caller, not replayed behind its back);
//! - sentinel: our own [`crate::sentinel::SentinelPrimary`], because redis-rs resolves the primary once
//!   and never follows a failover;
//! - cluster: redis-rs's async cluster connection with its retries off, wrapped in
//!   [`crate::cluster::ClusterNodes`], which follows `MOVED`/`ASK` and waits out `TRYAGAIN`/
//!   `CLUSTERDOWN` but never re-sends a command that may have run (redis-rs re-sends after a
//!   timeout or a dropped connection).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Cmd, ConnectionInfo, Pipeline, RedisFuture, TlsCertificates, Value};

use crate::cluster::ClusterNodes;
use crate::error::{Error, Result};
use crate::node::{ConnectOptions, client_for, install_crypto_provider, node_info, tcp_settings};
use crate::sentinel::SentinelPrimary;
use crate::url::{Node, RedisUrl, Topology, join_nodes};

/// A handle to the Redis deployment named by a `REDIS_URL`. Cheap to clone; all clones share the
/// underlying connections.
#[derive(Clone)]
pub struct Redis {
    inner: Inner,
    url: Arc<RedisUrl>,
    /// The options it was connected with (URL settings merged), for a second connection to a node
    /// of the same deployment (an admin tool visiting each cluster primary).
    opts: Arc<ConnectOptions>,
}

#[derive(Clone)]
enum Inner {
    Standalone(ConnectionManager),
    Sentinel(Arc<SentinelPrimary>),
    Cluster(ClusterNodes),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url.to_string())
            .finish()
    }
}

impl Redis {
    /// Connects to the deployment `url` names. Fails fast with [`Error::Unreachable`], [`Error::Auth`]
    /// or [`Error::Tls`] if the first node cannot be used, so misconfiguration shows at start-up.
    pub async fn connect(url: &RedisUrl, opts: &ConnectOptions) -> Result<Redis> {
        install_crypto_provider();
        let opts = opts.merged_with(url);
        let inner = match &url.topology {
            Topology::Standalone { node, db } => {
                let target = node.to_string();
                let client = node_info(url, node, *db)
                    .and_then(|info| client_for(info, &opts))
                    .map_err(|e| Error::connecting(&target, e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(opts.connect_timeout))
                    .set_response_timeout(Some(opts.response_timeout))
                    // Background reconnects keep trying; the first connect must not hang for long.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| Error::connecting(&target, e))?;
                Inner::Standalone(manager)
            }
            Topology::Sentinel { .. } => {
                Inner::Sentinel(SentinelPrimary::connect(url.clone(), opts.clone()).await?)
            }
            Topology::Cluster { nodes } => {
                let target = join_nodes(nodes);
                let infos = nodes
                    .iter()
                    .map(|n| node_info(url, n, 0))
                    .collect::<redis::RedisResult<Vec<ConnectionInfo>>>()
                    .map_err(|e| Error::connecting(&target, e))?;
                let mut builder = ClusterClientBuilder::new(infos)
                    .connection_timeout(opts.connect_timeout)
                    .response_timeout(opts.response_timeout)
                    .tcp_settings(tcp_settings())
                    // Ours, in ClusterNodes: redis-rs would re-send after a timeout or a drop.
                    .retries(0);
                if let Some(user) = &url.username {
                    builder = builder.username(user);
                }
                if let Some(pw) = &url.password {
                    builder = builder.password(pw.expose());
                }
                if url.tls {
                    builder = builder.tls(redis::TlsMode::Secure);
                    if let Some(ca) = &opts.tls_ca_pem {
                        builder = builder.certs(TlsCertificates {
                            client_tls: None,
                            root_cert: Some(ca.clone()),
                        });
                    }
                }
                let client = builder.build().map_err(|e| Error::connecting(&target, e))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| Error::connecting(&target, e))?;
                Inner::Cluster(ClusterNodes::new(conn, opts.response_timeout))
            }
        };
        let redis = Redis {
            inner,
            url: Arc::new(url.clone()),
            opts: Arc::new(opts.clone()),
        };
        // ConnectionManager may come up before AUTH is proven on every path; one PING settles it.
        redis
            .ping()
            .await
            .map_err(|e| e.at_connect(&url.to_string()))?;
        Ok(redis)
    }

    /// Parses `url` and connects with default options.
    pub async fn open(url: &str) -> Result<Redis> {
        Redis::connect(&RedisUrl::parse(url)?, &ConnectOptions::default()).await
    }

    /// The URL this handle was made from (its `Display` redacts the password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The options this handle was connected with (the URL's settings merged in).
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// `standalone`, `sentinel` or `cluster`.
    pub fn kind(&self) -> &'static str {
        self.url.topology.kind()
    }

    /// A Cluster: multi-key commands and scripts must keep their keys in one slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Inner::Cluster(_))
    }

    /// Round trip to the (current) primary.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.clone();
        redis::cmd("PING").query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Sentinel only: the address of the primary currently in use, if one is.
    pub fn current_primary(&self) -> Option<Node> {
        match &self.inner {
            Inner::Sentinel(s) => s.current_primary(),
            _ => None,
        }
    }

    /// Sentinel only: how many times the handle moved to another primary, counting the first (so 1
    /// until a failover).
    pub fn primary_changes(&self) -> u64 {
        match &self.inner {
            Inner::Sentinel(s) => s.switches(),
            _ => 0,
        }
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Standalone(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => {
                let c = c.clone();
                Box::pin(async move { c.request(cmd).await })
            }
            Inner::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move { s.request(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(c) => {
                let c = c.clone();
                Box::pin(async move { c.request_pipeline(pipeline, offset, count).await })
            }
            Inner::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move { s.request_pipeline(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        self.url.db()
    }
}
