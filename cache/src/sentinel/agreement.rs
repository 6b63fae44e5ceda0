//! Which node is the primary, decided by agreement among the sentinels rather than by whichever
//! sentinel answers first.
//!
//! Every sentinel is asked at once, on one connection each (kept between lookups), for two things
//! in one pipeline: `SENTINEL MASTER <service>` for the `config-epoch` of its configuration, then
//! `SENTINEL GET-MASTER-ADDR-BY-NAME <service>` for the address it advertises. The address has to
//! come from the second command: while a failover is reconfiguring replicas, the leading sentinel
//! already advertises the promoted replica and reports the new epoch, but `SENTINEL MASTER` still
//! shows the old address. Both commands run back to back in the sentinel's event loop, epoch first,
//! so a switch between them can only pair a new address with an old epoch — which loses the vote —
//! never an old address with a new epoch.
//!
//! [`decide`] then applies the rule: take the highest config epoch any sentinel reported; the node
//! named at that epoch is the primary if at least `quorum` sentinels name it *at that epoch*.
//! Otherwise there is no primary. Config epochs only grow through a failover that a majority of
//! sentinels authorised, so the highest one is the newest configuration; a sentinel still
//! reporting an older epoch has not heard of it yet and cannot outvote it.
//!
//! A frozen or partitioned sentinel must not stall this, so [`Lookup`] does not wait for every
//! answer: once a quorum agrees it gives the stragglers [`STRAGGLER_GRACE`] more (a sentinel that
//! answers in that time with a newer epoch still wins) and then decides. Each question is bounded
//! by the connect and response timeouts, so a silent sentinel costs at most that when no quorum
//! forms without it.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

use crate::url::Node;

/// How long stragglers may still answer once a quorum agrees.
pub(crate) const STRAGGLER_GRACE: Duration = Duration::from_millis(50);

/// What one sentinel says: the address it advertises and the config epoch of that configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub node: Node,
    pub epoch: u64,
}

/// The outcome of one round of questions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `votes` sentinels (at least the quorum) name `node` at `epoch`, the highest epoch reported.
    Agreed {
        node: Node,
        epoch: u64,
        votes: usize,
    },
    /// No node reached the quorum at the highest epoch; the text says who said what.
    NoQuorum(String),
}

/// The rule (see the module docs): the node named at the highest reported config epoch, if a quorum
/// of sentinels names it at that epoch.
pub(crate) fn decide(views: &[View], quorum: usize) -> Verdict {
    let Some(epoch) = views.iter().map(|v| v.epoch).max() else {
        return Verdict::NoQuorum("no sentinel answered".into());
    };
    let newest: Vec<&Node> = views
        .iter()
        .filter(|v| v.epoch == epoch)
        .map(|v| &v.node)
        .collect();
    let votes = |n: &Node| newest.iter().filter(|m| **m == n).count();
    // Two nodes at one epoch cannot happen in a healthy Sentinel group; the larger vote still wins
    // only if it reaches the quorum on its own.
    let best = newest
        .iter()
        .copied()
        .max_by_key(|n| votes(n))
        .expect("at least one view has the highest epoch");
    let best_votes = votes(best);
    if best_votes >= quorum {
        return Verdict::Agreed {
            node: best.clone(),
            epoch,
            votes: best_votes,
        };
    }
    Verdict::NoQuorum(format!(
        "{best_votes} of {} answering sentinels name {best} at the newest config epoch {epoch}, \
         {quorum} must agree",
        views.len()
    ))
}

/// One query connection per sentinel, kept between lookups and dropped after any failure.
pub(crate) struct QueryConnections(Vec<Mutex<Option<MultiplexedConnection>>>);

impl QueryConnections {
    pub(crate) fn new(sentinels: usize) -> Self {
        QueryConnections((0..sentinels).map(|_| Mutex::new(None)).collect())
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // Poisoned only if a thread panicked while swapping an Option: still coherent.
        self.0[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, i: usize) -> Option<MultiplexedConnection> {
        self.slot(i).clone()
    }

    fn keep(&self, i: usize, conn: MultiplexedConnection) {
        *self.slot(i) = Some(conn);
    }

    /// The next lookup opens a new connection to sentinel `i`.
    pub(crate) fn forget(&self, i: usize) {
        *self.slot(i) = None;
    }
}

/// The questions one lookup asks: which sentinels, for which service, with which timeouts.
pub(crate) struct Lookup<'a> {
    pub service: &'a str,
    pub quorum: usize,
    pub sentinels: &'a [Node],
    pub connections: &'a QueryConnections,
    /// Bound on one sentinel's answer, connecting included.
    pub budget: Duration,
}

impl Lookup<'_> {
    /// Asks every sentinel at once and decides as soon as the answer cannot change any more (see
    /// the module docs). `connect` opens a connection to sentinel `i`.
    pub(crate) async fn run<C, F>(&self, connect: C) -> Result<(Node, u64, usize), String>
    where
        C: Fn(usize) -> F,
        F: Future<Output = RedisResult<MultiplexedConnection>>,
    {
        let mut pending: FuturesUnordered<_> = (0..self.sentinels.len())
            .map(|i| {
                let connect = &connect;
                async move {
                    let answer = tokio::time::timeout(self.budget, self.ask(i, connect)).await;
                    (i, answer)
                }
            })
            .collect();
        let mut views = Vec::new();
        let mut problems = Vec::new();
        let mut settle_by = None;
        loop {
            let next = match settle_by {
                None => pending.next().await,
                Some(at) => match tokio::time::timeout_at(at, pending.next()).await {
                    Ok(next) => next,
                    Err(_) => break, // stragglers had their chance
                },
            };
            let Some((i, answer)) = next else { break };
            let sentinel = &self.sentinels[i];
            match answer {
                Ok(Ok(Some(view))) => views.push(view),
                Ok(Ok(None)) => problems.push(format!(
                    "sentinel {sentinel} does not know service `{}`",
                    self.service
                )),
                Ok(Err(e)) => {
                    self.connections.forget(i);
                    problems.push(format!("sentinel {sentinel}: {e}"));
                }
                Err(_) => {
                    self.connections.forget(i);
                    problems.push(format!(
                        "sentinel {sentinel}: no answer within {:?}",
                        self.budget
                    ));
                }
            }
            if settle_by.is_none() && matches!(decide(&views, self.quorum), Verdict::Agreed { .. })
            {
                settle_by = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
            }
        }
        match decide(&views, self.quorum) {
            Verdict::Agreed { node, epoch, votes } => Ok((node, epoch, votes)),
            Verdict::NoQuorum(why) if problems.is_empty() => Err(why),
            Verdict::NoQuorum(why) => Err(format!("{why} ({})", problems.join("; "))),
        }
    }

    /// Sentinel `i`'s view, or `None` if it does not monitor the service.
    async fn ask<C, F>(&self, i: usize, connect: &C) -> RedisResult<Option<View>>
    where
        C: Fn(usize) -> F,
        F: Future<Output = RedisResult<MultiplexedConnection>>,
    {
        let mut conn = match self.connections.get(i) {
            Some(conn) => conn,
            None => {
                let conn = connect(i).await?;
                self.connections.keep(i, conn.clone());
                conn
            }
        };
        let (master, addr): (Value, Option<(String, u16)>) = redis::pipe()
            .cmd("SENTINEL")
            .arg("MASTER")
            .arg(self.service)
            .cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(self.service)
            .query_async(&mut conn)
            .await
            .or_else(|e| match e.kind() {
                // "No such master with that name": this sentinel does not monitor the service.
                redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                    Ok((Value::Nil, None))
                }
                _ => Err(e),
            })?;
        let Some((host, port)) = addr else {
            return Ok(None);
        };
        let epoch = config_epoch(&master).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "SENTINEL MASTER reply has no numeric config-epoch",
            ))
        })?;
        Ok(Some(View {
            node: Node { host, port },
            epoch,
        }))
    }
}

/// The `config-epoch` field of a `SENTINEL MASTER` reply (a flat field/value array in RESP2, a map
/// in RESP3).
fn config_epoch(reply: &Value) -> Option<u64> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_string),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    };
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Array(items) => items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| text(k).as_deref() == Some("config-epoch"))
        .and_then(|(_, v)| text(v)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(port: u16, epoch: u64) -> View {
        View {
            node: Node {
                host: "10.0.0.1".into(),
                port,
            },
            epoch,
        }
    }

    fn agreed(port: u16, epoch: u64, votes: usize) -> Verdict {
        Verdict::Agreed {
            node: view(port, epoch).node,
            epoch,
            votes,
        }
    }

    #[test]
    fn the_newest_epoch_wins_when_a_quorum_names_it() {
        // The issue-15 case: the first sentinel lags at epoch 1, the other two moved on.
        let views = [view(1, 1), view(2, 2), view(2, 2)];
        assert_eq!(decide(&views, 2), agreed(2, 2, 2));
    }

    #[test]
    fn a_lone_sentinel_with_a_newer_epoch_blocks_the_older_majority() {
        // One sentinel led a failover the others have not heard of: the old primary is fenced,
        // and the new one is not confirmed yet, so nobody gets writes.
        let views = [view(1, 1), view(1, 1), view(2, 2)];
        assert!(matches!(decide(&views, 2), Verdict::NoQuorum(_)));
        // With a quorum of one (a single-sentinel URL) the newest view is enough.
        assert_eq!(decide(&views, 1), agreed(2, 2, 1));
    }

    #[test]
    fn an_old_address_reported_with_the_new_epoch_does_not_count_for_the_new_address() {
        let views = [view(1, 2), view(2, 2), view(2, 1)];
        assert!(matches!(decide(&views, 2), Verdict::NoQuorum(_)));
    }

    #[test]
    fn nothing_answered_is_no_quorum() {
        let Verdict::NoQuorum(why) = decide(&[], 1) else {
            panic!("agreed on nothing");
        };
        assert!(why.contains("no sentinel answered"), "{why}");
    }

    #[test]
    fn config_epoch_is_read_from_resp2_and_resp3_replies() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let resp2 = Value::Array(vec![
            bulk("name"),
            bulk("mymaster"),
            bulk("config-epoch"),
            bulk("7"),
        ]);
        assert_eq!(config_epoch(&resp2), Some(7));
        let resp3 = Value::Map(vec![(bulk("config-epoch"), Value::Int(9))]);
        assert_eq!(config_epoch(&resp3), Some(9));
        assert_eq!(config_epoch(&Value::Array(vec![bulk("name")])), None);
    }
}
