//! The Cluster handle: redis-rs's async cluster connection with its own retries turned off, and
//! ours in their place, which send a command again only when it provably never ran.
//!
//! redis-rs 1.8 (`cluster_handling/async_connection/request.rs`, `choose_response`) retries by
//! error kind, up to `retries(n)` times: a dropped connection (`Reconnect`) and any other I/O error
//! such as a per-node timeout (`RetryImmediately`) re-send the command — which may already have
//! run. A rate-limit increment whose reply was lost then counts twice and the caller is told it
//! succeeded; a session `destroy` reports NotFound, a token `put` AlreadyCached. So the connection
//! is built with `retries(0)`, and this module re-sends only after replies that mean "refused
//! before running":
//!
//! | reply | what we do |
//! |---|---|
//! | `MOVED slot host:port` | send to that node (redis-rs also rebuilds its slot map) |
//! | `ASK slot host:port` | send `ASKING` + the command to that node (a slot in migration) |
//! | `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY` | wait (10 ms, doubling), send again |
//! | no connection to the slot's node, connection refused | wait, send again (nothing was sent) |
//! | timeout, dropped connection, any other I/O error | return it: indeterminate, never re-sent |
//!
//! All within one response timeout in total, so a caller's worst case stays predictable; what is
//! still refused then is returned (`ErrorKind::Cluster`, or `NoPrimary` when no node could even be
//! reached — in both cases the command did not run). Even with retries off, redis-rs still
//! rebuilds its slot map after `MOVED` and `READONLY` (the `PollFlushAction` does not depend on
//! retries remaining), so after a failover the next attempt is routed to the promoted replica.
//!
//! A single command or script is re-sent after any of the refusals above: a node refuses the
//! whole of it before it runs. A *pipeline* is re-sent only when nothing was sent at all (no
//! connection, refused): a redirect can hit one of its commands after others already ran.

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Cmd, ErrorKind as RedisKind, Pipeline, RedisError, RedisResult, ServerErrorKind, Value,
};

use crate::error::no_primary_error;

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// A cluster connection that never re-sends a command that may have run. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ClusterNodes {
    conn: ClusterConnection,
    /// Total time the refusals above may be retried for.
    budget: Duration,
}

/// Where the next attempt goes.
enum Next {
    /// By slot, through redis-rs's slot map.
    BySlot,
    /// To the node a `MOVED` (or, with `asking`, an `ASK`) named.
    To {
        host: String,
        port: u16,
        asking: bool,
    },
}

/// What a failed attempt says about sending again.
enum Verdict {
    /// Redirected before running: go where the reply says.
    Redirect(Next),
    /// Refused before running, or never sent: wait and send again.
    Wait,
    /// May have run, or will fail the same way again: give up.
    Final,
}

fn node_of(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// How to treat `e` for a single command or script (`whole`), or for a pipeline.
fn verdict(e: &RedisError, whole: bool) -> Verdict {
    let never_sent =
        e.is_connection_refusal() || matches!(e.kind(), RedisKind::ClusterConnectionNotFound);
    if never_sent {
        return Verdict::Wait;
    }
    if !whole {
        return Verdict::Final;
    }
    let redirect = |asking| {
        e.redirect_node()
            .and_then(|(addr, _slot)| node_of(addr))
            .map_or(Verdict::Wait, |(host, port)| {
                Verdict::Redirect(Next::To { host, port, asking })
            })
    };
    match e.kind() {
        RedisKind::Server(ServerErrorKind::Moved) => redirect(false),
        RedisKind::Server(ServerErrorKind::Ask) => redirect(true),
        RedisKind::Server(
            ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly,
        ) => Verdict::Wait,
        _ => Verdict::Final,
    }
}

impl ClusterNodes {
    pub(crate) fn new(conn: ClusterConnection, budget: Duration) -> Self {
        ClusterNodes { conn, budget }
    }

    pub(crate) async fn request(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.with_retries(true, |mut conn, next| async move {
            match next {
                Next::BySlot => conn.req_packed_command(cmd).await,
                Next::To {
                    host,
                    port,
                    asking: false,
                } => {
                    let to =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    conn.route_command(cmd.clone(), to).await
                }
                Next::To {
                    host,
                    port,
                    asking: true,
                } => {
                    let mut pipe = redis::pipe();
                    pipe.add_command(redis::cmd("ASKING"))
                        .add_command(cmd.clone());
                    let to = SingleNodeRoutingInfo::ByAddress { host, port };
                    let mut replies = conn.route_pipeline(pipe, 1, 1, to).await?;
                    Ok(replies.pop().unwrap_or(Value::Nil))
                }
            }
        })
        .await
    }

    pub(crate) async fn request_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        // A pipeline is only ever re-sent by slot, when nothing of it was sent.
        self.with_retries(false, |mut conn, _| async move {
            conn.req_packed_commands(pipeline, offset, count).await
        })
        .await
    }

    async fn with_retries<T, F, Fut>(&self, whole: bool, attempt: F) -> RedisResult<T>
    where
        F: Fn(ClusterConnection, Next) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut backoff = BACKOFF_FIRST;
        let mut next = Next::BySlot;
        loop {
            let err = match attempt(self.conn.clone(), next).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            next = match verdict(&err, whole) {
                Verdict::Final => return Err(err),
                Verdict::Redirect(to) => to,
                Verdict::Wait if Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Next::BySlot
                }
                Verdict::Wait => return Err(give_up(err)),
            };
        }
    }
}

/// The error for a command that was refused until the budget ran out. One that never reached a
/// node is "no primary" (not sent, so not indeterminate); a refusal keeps its own kind.
fn give_up(e: RedisError) -> RedisError {
    if matches!(e.kind(), RedisKind::ClusterConnectionNotFound) || e.is_connection_refusal() {
        no_primary_error(format!("no connection to the node serving the slot: {e}"))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        redis::parse_redis_value(format!("-{code} {detail}\r\n").as_bytes())
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    #[test]
    fn only_refusals_before_running_are_sent_again() {
        let io = |k| RedisError::from(std::io::Error::from(k));
        assert!(matches!(
            verdict(&io(std::io::ErrorKind::TimedOut), true),
            Verdict::Final
        ));
        assert!(matches!(
            verdict(&io(std::io::ErrorKind::ConnectionReset), true),
            Verdict::Final
        ));
        assert!(matches!(
            verdict(&io(std::io::ErrorKind::ConnectionRefused), false),
            Verdict::Wait
        ));
        let moved = server("MOVED", "3999 127.0.0.1:6381");
        match verdict(&moved, true) {
            Verdict::Redirect(Next::To { host, port, asking }) => {
                assert_eq!((host.as_str(), port, asking), ("127.0.0.1", 6381, false))
            }
            _ => panic!("MOVED is a redirect"),
        }
        assert!(matches!(
            verdict(&server("ASK", "3999 127.0.0.1:6381"), true),
            Verdict::Redirect(Next::To { asking: true, .. })
        ));
        assert!(
            matches!(verdict(&moved, false), Verdict::Final),
            "pipelines are not re-sent"
        );
        assert!(matches!(
            verdict(&server("TRYAGAIN", "multiple keys"), true),
            Verdict::Wait
        ));
        assert!(matches!(
            verdict(&server("WRONGTYPE", "Operation against a key"), true),
            Verdict::Final
        ));
    }
}
