//! A connection to "whichever node Sentinel says is the primary right now", that follows failovers.
//!
//! redis-rs's Sentinel support resolves the primary once and hands back a plain connection; nothing
//! re-resolves after a failover (redis-rs issue #1438), and a `ConnectionManager` pointed at the old
//! address reconnects to the *restarted old primary* and writes into a node Sentinel is about to demote.
//! Those writes are acknowledged and then lost. So this module never reconnects by address:
//!
//! - The current primary lives behind a `std::sync::Mutex` (held only to clone or swap a connection,
//!   never across an `.await`) together with a **generation** number.
//! - Any error that suggests the node is gone or no longer primary — I/O, refused, timeout, dropped
//!   connection, `READONLY` — *invalidates* that generation. The next request re-resolves through the
//!   sentinels, **single-flight**: one task asks, the others wait on a tokio mutex and then reuse its
//!   answer (they see the generation moved on).
//! - A resolved address is only used after the node itself answers `ROLE` with `master`. A sentinel
//!   that still names a demoted node is skipped.
//! - Optionally a background task subscribes to `+switch-master` on the sentinels and invalidates the
//!   current generation the moment a failover is announced, so even a partitioned-but-alive old primary
//!   stops receiving writes. The task holds only a `Weak` reference and is aborted when the last handle
//!   is dropped.
//!
//! Retries: a command that failed with `READONLY` or "connection refused" was certainly not applied,
//! so it is sent once more to the freshly resolved primary. A timeout or dropped connection may have
//! been applied; it is returned to the caller as indeterminate, never replayed behind its back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ConnectionInfo, Pipeline, RedisError, RedisResult, Value};

use crate::connection::{ConnectOptions, client_for, node_info};
use crate::error::{Error, Result, no_primary_error};
use crate::url::{Node, RedisUrl, Topology};

/// After a failed resolution, requests within this window fail fast with the same cause instead of
/// queueing one more round of sentinel queries each.
const FAILED_RESOLVE_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) struct SentinelPrimary {
    url: RedisUrl,
    sentinels: Vec<Node>,
    service: String,
    db: i64,
    opts: ConnectOptions,
    state: Mutex<State>,
    resolving: tokio::sync::Mutex<()>,
    switches: AtomicU64,
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
}

struct State {
    generation: u64,
    current: Option<(Node, MultiplexedConnection)>,
    /// The last primary we used, kept across invalidations to count real moves.
    last_node: Option<Node>,
    last_failure: Option<(Instant, String)>,
}

impl Drop for SentinelPrimary {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watcher.lock()
            && let Some(handle) = w.take()
        {
            handle.abort();
        }
    }
}

/// Does this error mean "stop using this node and ask Sentinel again"?
fn needs_new_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || is_readonly_text(&e.to_string())
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

fn is_readonly_text(s: &str) -> bool {
    s.contains("READONLY") || s.contains("read only replica")
}

/// Certainly not applied, so safe to send again to the new primary.
fn safe_to_retry(e: &RedisError) -> bool {
    e.is_connection_refusal()
        || is_readonly_text(&e.to_string())
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// A top-level `-READONLY` reply arrives as `Ok(Value::ServerError)`; surface it as an error here.
fn reply_error(v: &Value) -> Option<RedisError> {
    match v {
        Value::ServerError(e) => {
            let err: RedisError = e.clone().into();
            needs_new_primary(&err).then_some(err)
        }
        _ => None,
    }
}

impl SentinelPrimary {
    pub(crate) async fn connect(url: RedisUrl, opts: ConnectOptions) -> Result<Arc<Self>> {
        let Topology::Sentinel {
            sentinels,
            service,
            db,
        } = &url.topology
        else {
            return Err(Error::Invalid {
                field: "REDIS_URL",
                reason: "not a Sentinel URL".into(),
            });
        };
        let this = Arc::new(SentinelPrimary {
            sentinels: sentinels.clone(),
            service: service.clone(),
            db: *db,
            url: url.clone(),
            opts,
            state: Mutex::new(State {
                generation: 0,
                current: None,
                last_node: None,
                last_failure: None,
            }),
            resolving: tokio::sync::Mutex::new(()),
            switches: AtomicU64::new(0),
            watcher: Mutex::new(None),
        });
        this.resolve(0).await?;
        if this.opts.watch_switch_master {
            let weak = Arc::downgrade(&this);
            let task = tokio::spawn(watch_switch_master(weak));
            if let Ok(mut w) = this.watcher.lock() {
                *w = Some(task.abort_handle());
            }
        }
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while swapping a connection; the state
        // itself (an Option and two numbers) is still coherent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn current_primary(&self) -> Option<Node> {
        self.lock().current.as_ref().map(|(n, _)| n.clone())
    }

    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// Drops the connection of generation `seen`, if it is still the current one.
    fn invalidate(&self, seen: u64) {
        let mut st = self.lock();
        if st.generation == seen {
            st.current = None;
            st.generation += 1;
        }
    }

    /// The current connection, resolving a new primary first when there is none.
    async fn acquire(&self) -> Result<(u64, MultiplexedConnection)> {
        {
            let st = self.lock();
            if let Some((_, conn)) = &st.current {
                return Ok((st.generation, conn.clone()));
            }
        }
        let seen = self.lock().generation;
        self.resolve(seen).await?;
        let st = self.lock();
        match &st.current {
            Some((_, conn)) => Ok((st.generation, conn.clone())),
            None => Err(self.no_primary(
                st.last_failure
                    .as_ref()
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| "no sentinel named a primary".into()),
            )),
        }
    }

    fn no_primary(&self, cause: String) -> Error {
        Error::NoPrimary {
            service: self.service.clone(),
            cause,
        }
    }

    /// Single-flight resolution: only one task queries the sentinels for a given generation.
    async fn resolve(&self, seen: u64) -> Result<()> {
        let _flight = self.resolving.lock().await;
        {
            let st = self.lock();
            if st.current.is_some() && st.generation != seen {
                return Ok(()); // someone resolved while we waited
            }
            if let Some((at, cause)) = &st.last_failure
                && at.elapsed() < FAILED_RESOLVE_BACKOFF
                && st.current.is_none()
            {
                return Err(self.no_primary(cause.clone()));
            }
        }
        match self.find_primary().await {
            Ok((node, conn)) => {
                let mut st = self.lock();
                let moved = st.last_node.as_ref() != Some(&node);
                st.last_node = Some(node.clone());
                st.generation += 1;
                st.current = Some((node.clone(), conn));
                st.last_failure = None;
                drop(st);
                if moved {
                    self.switches.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(service = %self.service, primary = %node, "using Redis primary");
                }
                Ok(())
            }
            Err(cause) => {
                let mut st = self.lock();
                st.generation += 1;
                st.current = None;
                st.last_failure = Some((Instant::now(), cause.clone()));
                drop(st);
                tracing::warn!(service = %self.service, %cause, "no Redis primary available");
                Err(self.no_primary(cause))
            }
        }
    }

    fn sentinel_info(&self, node: &Node) -> RedisResult<ConnectionInfo> {
        let mut url = self.url.clone();
        url.username = self.url.options.sentinel_username.clone();
        url.password = self.url.options.sentinel_password.clone();
        node_info(&url, node, 0)
    }

    fn async_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.response_timeout))
    }

    /// Asks each sentinel in turn; accepts the first named node that confirms `role:master`.
    async fn find_primary(&self) -> std::result::Result<(Node, MultiplexedConnection), String> {
        let mut causes = Vec::new();
        for sentinel in &self.sentinels {
            let addr = match self.ask_sentinel(sentinel).await {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    causes.push(format!(
                        "sentinel {sentinel} does not know service `{}`",
                        self.service
                    ));
                    continue;
                }
                Err(e) => {
                    causes.push(format!("sentinel {sentinel}: {e}"));
                    continue;
                }
            };
            match self.open_primary(&addr).await {
                Ok(conn) => return Ok((addr, conn)),
                Err(e) => causes.push(format!("{addr} (named by sentinel {sentinel}): {e}")),
            }
        }
        Err(causes.join("; "))
    }

    async fn ask_sentinel(&self, sentinel: &Node) -> RedisResult<Option<Node>> {
        let info = self.sentinel_info(sentinel)?;
        let client = client_for(info, &self.opts)?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.async_config())
            .await?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut conn)
            .await?;
        Ok(reply.map(|(host, port)| Node { host, port }))
    }

    async fn open_primary(&self, node: &Node) -> RedisResult<MultiplexedConnection> {
        let info = node_info(&self.url, node, self.db)?;
        let client = client_for(info, &self.opts)?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.async_config())
            .await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        let is_master = matches!(role.first(), Some(Value::BulkString(b)) if b == b"master")
            || matches!(role.first(), Some(Value::SimpleString(s)) if s == "master");
        if is_master {
            Ok(conn)
        } else {
            Err(RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                "node named by Sentinel does not report role master (failover in progress?)",
            )))
        }
    }

    pub(crate) async fn request(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.with_primary(|mut conn| async move { conn.req_packed_command(cmd).await })
            .await
    }

    pub(crate) async fn request_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.with_primary(|mut conn| async move {
            conn.req_packed_commands(pipeline, offset, count).await
        })
        .await
    }

    /// Runs `op` on the current primary; re-resolves on errors that say the node is gone or demoted,
    /// and retries once when the failure proves the command was not applied.
    async fn with_primary<T, F, Fut>(&self, op: F) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
        T: ReplyErrors,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Never sent: reported as "no primary", not as an I/O failure that may have applied.
            let (generation, conn) = self
                .acquire()
                .await
                .map_err(|e| no_primary_error(e.to_string()))?;
            let result = op(conn).await;
            let err = match result {
                Ok(v) => match v.reply_error() {
                    None => return Ok(v),
                    Some(e) => e,
                },
                Err(e) => e,
            };
            if needs_new_primary(&err) {
                self.invalidate(generation);
                if attempts == 1 && safe_to_retry(&err) {
                    continue;
                }
            }
            return Err(err);
        }
    }
}

/// Finds a `READONLY`-style error inside a successful transport-level reply.
trait ReplyErrors {
    fn reply_error(&self) -> Option<RedisError>;
}

impl ReplyErrors for Value {
    fn reply_error(&self) -> Option<RedisError> {
        reply_error(self)
    }
}

impl ReplyErrors for Vec<Value> {
    fn reply_error(&self) -> Option<RedisError> {
        self.iter().find_map(reply_error)
    }
}

/// Listens for `+switch-master` on the sentinels (one at a time, moving on when one dies) and
/// invalidates the current primary when our service fails over.
async fn watch_switch_master(this: Weak<SentinelPrimary>) {
    let mut index = 0usize;
    loop {
        let Some(primary) = this.upgrade() else {
            return;
        };
        let sentinel = primary.sentinels[index % primary.sentinels.len()].clone();
        index += 1;
        let subscribed = async {
            let client = client_for(primary.sentinel_info(&sentinel)?, &primary.opts)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            RedisResult::Ok(pubsub)
        }
        .await;
        let service = primary.service.clone();
        drop(primary); // hold no strong reference while waiting for messages
        let Ok(mut pubsub) = subscribed else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            // "<service> <old-ip> <old-port> <new-ip> <new-port>"
            if payload.split(' ').next() == Some(service.as_str()) {
                let Some(primary) = this.upgrade() else {
                    return;
                };
                let generation = primary.lock().generation;
                primary.invalidate(generation);
                tracing::info!(%service, "sentinel announced +switch-master");
            }
        }
        // Stream ended: that sentinel went away; try the next one.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
