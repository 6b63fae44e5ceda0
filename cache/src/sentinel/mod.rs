//! A connection to "the node a quorum of sentinels agrees is the primary, at the newest
//! configuration", that follows failovers and never writes to a node a newer failover replaced.
//!
//! redis-rs's Sentinel support resolves the primary once and hands back a plain connection; nothing
//! re-resolves after a failover (redis-rs issue #1438), and a `ConnectionManager` pointed at the old
//! address reconnects to the *restarted old primary* and writes into a node Sentinel is about to
//! demote. Those writes are acknowledged and then lost. Trusting the *first* sentinel in the URL is
//! no better: a slow or partitioned sentinel keeps naming the old primary for seconds after the
//! majority moved on (issue 15: 401 acknowledged writes lost that way). So:
//!
//! - **Agreement** ([`agreement`]). A lookup asks every sentinel at once for the address it
//!   advertises and the config epoch of that configuration. The primary is the node named at the
//!   highest epoch reported, if a quorum of sentinels names it at that epoch — by default a
//!   majority of the sentinels in the URL, or `?sentinel_quorum=N`. The node must then answer
//!   `ROLE` with `master` before anything is sent to it.
//! - **Fencing.** The handle remembers the epoch of the primary it uses and never goes back to an
//!   older one: a node that a newer failover replaced is not written to again even if it still
//!   says `master` and some sentinels still name it. (Only when *every* sentinel in the URL
//!   reports the same older epoch — an operator re-created the monitor — is it accepted.)
//! - **Every sentinel is listened to** ([`watcher`]): one subscription per sentinel to
//!   `+switch-master` and `+promoted-slave` (the failover leader's first word that a new epoch
//!   exists), each with a health `PING` and reconnect backoff so a frozen or half-open sentinel
//!   cannot stall it. An announcement from any sentinel immediately stops writes to the old
//!   primary and starts a lookup; the lookup installs the new primary once a quorum confirms it.
//! - **The current primary** lives behind a `std::sync::Mutex` (held only to clone or swap a
//!   connection, never across an `.await`) with a **generation** number. Errors that say the node
//!   is gone or no longer primary — I/O, refused, timeout, dropped connection, `READONLY`,
//!   `MASTERDOWN`, `LOADING` — invalidate that generation; the next request looks up again.
//! - **Single flight.** One task looks up at a time (a tokio mutex); the others wait and reuse its
//!   answer. A lookup's answer is installed only if no announcement arrived while it was in
//!   flight and its epoch is not older than the one in use: an announcement that races a lookup
//!   can never be overwritten by the lookup's older answer.
//!
//! The trade-off, stated plainly: **no quorum, no writes**. While the sentinels disagree — one has
//! promoted a replica and the others have not yet heard (typically under a second, bounded by
//! their 2 s hello period), or a majority of them is unreachable — requests fail fast with
//! [`crate::ErrorKind::NoPrimary`] (the command was not sent) instead of going to a node that may
//! already be fenced off. A frozen sentinel costs a lookup at most 50 ms once the others agree.
//! What remains unsafe is Sentinel's own: a partitioned old primary acknowledges writes until it
//! is demoted, for clients that can still reach it and have heard of no newer epoch
//! (`min-replicas-to-write` bounds that on the server side).
//!
//! Retries: a command refused with `READONLY`, `MASTERDOWN` or `LOADING`, or a connection refused,
//! was certainly not applied, so a *single command or script* is sent once more to the freshly
//! resolved primary (a script on a replica fails at its first write, having written nothing). A
//! *pipeline* is never re-sent: some of its commands may have run before the node refused the
//! rest. A timeout or dropped connection may have been applied; it is returned to the caller as
//! indeterminate, never replayed behind its back.

mod agreement;
mod watcher;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, Pipeline, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use crate::error::{Error, Result, no_primary_error};
use crate::node::{ConnectOptions, client_for, node_info};
use crate::url::{Node, RedisUrl, Topology};
use agreement::{Lookup, QueryConnections};

/// After a failed lookup, requests within this window fail fast with the same cause instead of
/// queueing one more round of sentinel queries each. An announcement ends the window early.
const FAILED_RESOLVE_BACKOFF: Duration = Duration::from_millis(100);

/// A lookup cut short because a switch was announced meanwhile is started again, at most this many
/// times in all (a failover brings one announcement per sentinel).
const LOOKUP_ROUNDS: usize = 5;

pub(crate) struct SentinelPrimary {
    url: RedisUrl,
    sentinels: Vec<Node>,
    service: String,
    db: i64,
    quorum: usize,
    opts: ConnectOptions,
    state: Mutex<State>,
    /// Held by the one task looking up (single flight).
    resolving: tokio::sync::Mutex<()>,
    /// Woken by every announcement: a lookup in flight stops waiting for stragglers and starts
    /// again with the news.
    news: tokio::sync::Notify,
    /// One query connection per sentinel, kept between lookups.
    queries: QueryConnections,
    switches: AtomicU64,
    watchers: Mutex<Vec<tokio::task::AbortHandle>>,
}

struct State {
    /// Bumped whenever `current` is replaced or dropped.
    generation: u64,
    current: Option<Current>,
    /// Config epoch of the newest primary ever installed; lookups naming an older one are refused.
    epoch: u64,
    /// Announcements (`+switch-master`, `+promoted-slave`) received; a lookup that saw this move is
    /// stale.
    announcements: u64,
    /// The last primary used, kept across invalidations to count real moves.
    last_node: Option<Node>,
    last_failure: Option<(Instant, String)>,
}

struct Current {
    node: Node,
    conn: MultiplexedConnection,
}

/// A primary the sentinels agreed on, connected and confirmed by `ROLE`.
struct Found {
    node: Node,
    epoch: u64,
    votes: usize,
    conn: MultiplexedConnection,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// No primary in use: find one (unless a task that held the flight lock already did).
    Missing,
    /// A listener (re)subscribed and may have missed an announcement: look, replace if newer.
    Recheck,
}

impl Drop for SentinelPrimary {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watchers.lock() {
            w.drain(..).for_each(|h| h.abort());
        }
    }
}

/// Does this error mean "stop using this node and ask the sentinels again"?
fn needs_new_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || refused_as_not_primary(e)
}

/// The node refused the command before running it because it is not (or not yet) a usable primary.
fn refused_as_not_primary(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    )
}

/// Certainly not applied, so a single command may be sent again to the new primary.
fn certainly_not_applied(e: &RedisError) -> bool {
    e.is_connection_refusal() || refused_as_not_primary(e)
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
        let quorum = url
            .options
            .sentinel_quorum
            .unwrap_or(sentinels.len() / 2 + 1);
        let this = Arc::new(SentinelPrimary {
            sentinels: sentinels.clone(),
            service: service.clone(),
            db: *db,
            quorum,
            queries: QueryConnections::new(sentinels.len()),
            url: url.clone(),
            opts,
            state: Mutex::new(State {
                generation: 0,
                current: None,
                epoch: 0,
                announcements: 0,
                last_node: None,
                last_failure: None,
            }),
            resolving: tokio::sync::Mutex::new(()),
            news: tokio::sync::Notify::new(),
            switches: AtomicU64::new(0),
            watchers: Mutex::new(Vec::new()),
        });
        this.resolve(Why::Missing).await?;
        if this.opts.watch_switch_master {
            let handles = watcher::spawn_all(&this);
            if let Ok(mut w) = this.watchers.lock() {
                *w = handles;
            }
        }
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while swapping a connection; the state
        // itself (an Option and a few numbers) is still coherent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn current_primary(&self) -> Option<Node> {
        self.lock().current.as_ref().map(|c| c.node.clone())
    }

    pub(crate) fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// Drops the connection of generation `seen`, if it is still the current one.
    fn invalidate(&self, seen: u64) {
        let mut st = self.lock();
        if st.generation == seen && st.current.is_some() {
            st.current = None;
            st.generation += 1;
        }
    }

    /// A sentinel announced that `new` is the primary now: stop writing to any other node at once,
    /// and look up by agreement in the background.
    fn announced(self: &Arc<Self>, new: Node) {
        let mut st = self.lock();
        st.announcements += 1;
        st.last_failure = None; // new information: do not fail fast on the previous lookup's answer
        let already_there = st.current.as_ref().is_some_and(|c| c.node == new);
        if !already_there && st.current.is_some() {
            st.current = None;
            st.generation += 1;
        }
        drop(st);
        self.news.notify_waiters();
        if !already_there {
            let this = self.clone();
            tokio::spawn(async move { this.resolve(Why::Missing).await });
        }
    }

    /// A listener lost sentinel `i`: its query connection is likely dead too, so the next lookup
    /// opens a new one instead of waiting out a timeout on it.
    fn forget_query_connection(&self, i: usize) {
        self.queries.forget(i);
    }

    /// A listener (re)subscribed: check in the background that no switch went unheard.
    fn recheck_soon(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move { this.resolve(Why::Recheck).await });
    }

    /// The current connection, looking the primary up first when there is none.
    async fn acquire(&self) -> Result<(u64, MultiplexedConnection)> {
        for _ in 0..2 {
            {
                let st = self.lock();
                if let Some(c) = &st.current {
                    return Ok((st.generation, c.conn.clone()));
                }
            }
            // Installed by this lookup or by the one we waited for — unless an announcement
            // dropped it again at once, hence the second turn.
            self.resolve(Why::Missing).await?;
        }
        let st = self.lock();
        match &st.current {
            Some(c) => Ok((st.generation, c.conn.clone())),
            None => Err(self.no_primary("the primary changed again during the lookup".into())),
        }
    }

    fn no_primary(&self, cause: String) -> Error {
        Error::NoPrimary {
            service: self.service.clone(),
            cause,
        }
    }

    /// Single-flight lookup by agreement; installs the answer when it is still news.
    async fn resolve(&self, why: Why) -> Result<()> {
        let _flight = self.resolving.lock().await;
        if why == Why::Missing {
            let st = self.lock();
            if st.current.is_some() {
                return Ok(()); // someone resolved while we waited for the flight lock
            }
            if let Some((at, cause)) = &st.last_failure
                && at.elapsed() < FAILED_RESOLVE_BACKOFF
            {
                return Err(self.no_primary(cause.clone()));
            }
        }
        let mut cause = String::new();
        for _ in 0..LOOKUP_ROUNDS {
            let news = self.news.notified();
            tokio::pin!(news);
            news.as_mut().enable(); // from here on, no announcement can slip by unnoticed
            let announced = self.lock().announcements;
            let found = tokio::select! {
                found = self.find_primary() => Some(found),
                () = &mut news => None,
            };
            let mut st = self.lock();
            let Some(found) = found.filter(|_| st.announcements == announced) else {
                // A switch was announced while we asked: our answer may predate it.
                cause = "a failover was announced during every lookup".into();
                continue;
            };
            let found = found.and_then(|f| self.admissible(&st, f));
            return match found {
                Ok(found) => {
                    self.install(&mut st, found);
                    Ok(())
                }
                // A recheck that learns nothing new leaves a working primary alone.
                Err(_) if why == Why::Recheck && st.current.is_some() => Ok(()),
                Err(cause) => {
                    st.last_failure = Some((Instant::now(), cause.clone()));
                    if st.current.take().is_some() {
                        st.generation += 1;
                    }
                    drop(st);
                    tracing::warn!(service = %self.service, %cause, "no Redis primary available");
                    Err(self.no_primary(cause))
                }
            };
        }
        self.lock().last_failure = Some((Instant::now(), cause.clone()));
        Err(self.no_primary(cause))
    }

    /// Refuses an answer older than the primary already in use (see "Fencing" in the module docs).
    fn admissible(&self, st: &State, found: Found) -> std::result::Result<Found, String> {
        let unanimous = found.votes == self.sentinels.len();
        if found.epoch < st.epoch && !unanimous {
            return Err(format!(
                "sentinels name {} at config epoch {}, older than epoch {} already in use: \
                 waiting for them to catch up",
                found.node, found.epoch, st.epoch
            ));
        }
        Ok(found)
    }

    fn install(&self, st: &mut State, found: Found) {
        let same =
            st.epoch == found.epoch && st.current.as_ref().is_some_and(|c| c.node == found.node);
        st.last_failure = None;
        if same {
            return; // a recheck that confirmed what we use
        }
        let moved = st.last_node.as_ref() != Some(&found.node);
        st.last_node = Some(found.node.clone());
        st.epoch = found.epoch;
        st.generation += 1;
        st.current = Some(Current {
            node: found.node.clone(),
            conn: found.conn,
        });
        if moved {
            self.switches.fetch_add(1, Ordering::Relaxed);
            tracing::info!(service = %self.service, primary = %found.node, epoch = found.epoch,
                votes = found.votes, "using Redis primary");
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

    /// The node the sentinels agree on, connected and answering `ROLE` with `master`.
    async fn find_primary(&self) -> std::result::Result<Found, String> {
        let lookup = Lookup {
            service: &self.service,
            quorum: self.quorum,
            sentinels: &self.sentinels,
            connections: &self.queries,
            budget: self.opts.connect_timeout + self.opts.response_timeout,
        };
        let (node, epoch, votes) = lookup
            .run(|i| async move {
                let client = client_for(self.sentinel_info(&self.sentinels[i])?, &self.opts)?;
                client
                    .get_multiplexed_async_connection_with_config(&self.async_config())
                    .await
            })
            .await?;
        match self.open_primary(&node).await {
            Ok(conn) => Ok(Found {
                node,
                epoch,
                votes,
                conn,
            }),
            Err(e) => Err(format!(
                "{node} (named by {votes} sentinels at config epoch {epoch}): {e}"
            )),
        }
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
                redis::ErrorKind::Server(ServerErrorKind::ReadOnly),
                "it does not report role master (failover in progress?)",
            )))
        }
    }

    pub(crate) async fn request(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.with_primary(Resend::Once, |mut conn| async move {
            conn.req_packed_command(cmd).await
        })
        .await
    }

    pub(crate) async fn request_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.with_primary(Resend::Never, |mut conn| async move {
            conn.req_packed_commands(pipeline, offset, count).await
        })
        .await
    }

    /// Runs `op` on the current primary; looks up again on errors that say the node is gone or
    /// demoted, and sends once more when `resend` allows and the failure proves nothing ran.
    async fn with_primary<T, F, Fut>(&self, resend: Resend, op: F) -> RedisResult<T>
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
            let err = match op(conn).await {
                Ok(v) => match v.reply_error() {
                    None => return Ok(v),
                    Some(e) => e,
                },
                Err(e) => e,
            };
            if needs_new_primary(&err) {
                self.invalidate(generation);
                if resend == Resend::Once && attempts == 1 && certainly_not_applied(&err) {
                    continue;
                }
            }
            return Err(err);
        }
    }
}

/// May a request refused before it ran be sent again?
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A single command or script: a refusal means none of it ran.
    Once,
    /// A pipeline: commands before the refused one may have run.
    Never,
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
