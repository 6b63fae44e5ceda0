//! generator: what the K clients do during the experiment, and the recording of every call.
//!
//! Each worker cycles through a fixed mix of ten operations that stands for an OAuth server's
//! traffic: three session creates (the writes whose loss is checked), one short-lived session
//! create (whose expiry is checked), two reads of its own sessions, one update, one rate-limit
//! check, one token put and one revoke. A fixed cycle rather than random choice keeps runs
//! comparable: the same experiment on the two backends issues the same mix.
//!
//! Every call is recorded with invoke and completion times, its outcome and the node the handle
//! sent it to (read *before* the call, see [`crate::history`]); every acknowledged write of every
//! kind is registered for the final reads. Nothing is retried here: the store reports what
//! happened, the recorder writes it down, the checker judges later.
//! During an outage calls fail fast (connection refused) and the worker keeps pacing at
//! `interval`, so the history shows the exact error window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cache::{KeySchema, NewSession, SessionId};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::client::{Client, ENDPOINT, expiry_in};
use crate::db::cluster::key_slot;
use crate::db::random_hex;
use crate::history::{AckedWrite, Clock, History, Op, OpKind, Outcome, SessionRecord};

/// Lifetime of the workload's synthetic tokens (and of their revocation tombstones).
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// The running workers.
pub struct Generator {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Generator {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

impl Generator {
    /// Starts one worker per client. `short_sessions` receives the registry index of every
    /// acknowledged short session, for the TTL prober.
    pub fn start(
        clients: Vec<Client>,
        interval: Duration,
        clock: Clock,
        history: Arc<History>,
        short_sessions: UnboundedSender<usize>,
    ) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = clients
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let w = Worker {
                    id: i,
                    user: format!("chaos-user-{i}"),
                    ip: format!("10.0.{i}.1"),
                    client: c,
                    clock,
                    history: history.clone(),
                    short_tx: short_sessions.clone(),
                    own: Vec::new(),
                    last_token: None,
                    sent_to: None,
                };
                let stop = stop.clone();
                tokio::spawn(w.run(interval, stop))
            })
            .collect();
        Generator { stop, workers }
    }

    /// Asks the workers to stop after their current call and waits for them.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
    }
}

struct Worker {
    id: usize,
    /// The user its sessions and tokens belong to, and the client IP it is rate-limited as: made
    /// once, not on every call.
    user: String,
    ip: String,
    client: Client,
    clock: Clock,
    history: Arc<History>,
    short_tx: UnboundedSender<usize>,
    /// This worker's acknowledged long sessions: (registry index, id).
    own: Vec<(usize, SessionId)>,
    last_token: Option<String>,
    /// The node the handle uses as the current call is sent.
    sent_to: Option<u16>,
}

/// What one call produced, before it is written to the history.
struct Done {
    outcome: Outcome,
    session: Option<usize>,
    note: Option<String>,
    pttl_ms: Option<i64>,
}

impl Done {
    fn err(e: &cache::Error) -> Done {
        Done {
            outcome: Outcome::of_error(e),
            session: None,
            note: Some(e.to_string()),
            pttl_ms: None,
        }
    }
    fn ok(session: Option<usize>, note: Option<String>) -> Done {
        Done::of(Outcome::Ok, session, note)
    }
    fn of(outcome: Outcome, session: Option<usize>, note: Option<String>) -> Done {
        Done {
            outcome,
            session,
            note,
            pttl_ms: None,
        }
    }
}

impl Worker {
    async fn run(mut self, interval: Duration, stop: Arc<AtomicBool>) {
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let kind = match n % 10 {
                0..=2 => OpKind::SessionCreate,
                3 => OpKind::ShortSessionCreate,
                4 | 5 => OpKind::SessionRead,
                6 => OpKind::SessionUpdate,
                7 => OpKind::RateLimitCheck,
                8 => OpKind::TokenPut,
                _ => OpKind::TokenRevoke,
            };
            n += 1;
            self.step(kind).await;
            tokio::time::sleep(interval).await;
        }
    }

    async fn step(&mut self, kind: OpKind) {
        let invoke_ms = self.clock.now();
        let changes = self.client.primary_changes();
        self.sent_to = self.client.node_port();
        let done = match kind {
            OpKind::SessionCreate | OpKind::ShortSessionCreate => {
                self.create(kind == OpKind::ShortSessionCreate, invoke_ms, changes)
                    .await
            }
            OpKind::SessionRead => self.read().await,
            OpKind::SessionUpdate => self.update(invoke_ms, changes).await,
            OpKind::RateLimitCheck => self.rate_limit().await,
            OpKind::TokenPut => self.token_put(invoke_ms, changes).await,
            OpKind::TokenRevoke => self.token_revoke(invoke_ms, changes).await,
        };
        let Some(done) = done else { return };
        let after = self.client.node_port();
        let node_port = self.sent_to.or(after);
        self.history.op(Op {
            client: self.id,
            kind,
            invoke_ms,
            complete_ms: self.clock.now(),
            outcome: done.outcome,
            node_port,
            node_after: after.filter(|a| Some(*a) != node_port),
            session: done.session,
            note: done.note,
            pttl_ms: done.pttl_ms,
        });
    }

    /// Registers an acknowledged write for the final reads.
    fn acked(&self, kind: OpKind, invoke_ms: f64, session: Option<usize>, token: Option<String>) {
        self.history.write(AckedWrite {
            kind,
            invoke_ms,
            acked_ms: self.clock.now(),
            node_port: self.sent_to.or(self.client.node_port()),
            session,
            token,
        });
    }

    async fn create(&mut self, short: bool, invoke_ms: f64, changes: u64) -> Option<Done> {
        let store = if short {
            &self.client.short_sessions
        } else {
            &self.client.sessions
        };
        let new = NewSession {
            user_id: self.user.clone(),
            ..Default::default()
        };
        let mark = self.client.mark().await;
        let id = match store.create(new).await {
            Ok((id, _)) => id,
            Err(e) => return Some(Done::err(&e)),
        };
        let (outcome, note) = self.client.confirm_write(changes, mark).await;
        if outcome != Outcome::Ok {
            return Some(Done::of(outcome, None, note));
        }
        let index = self.history.session(SessionRecord {
            id: Some(id.clone()),
            short,
            created_ms: invoke_ms,
            acked_ms: self.clock.now(),
            node_port: self.sent_to.or(self.client.node_port()),
            slot: Some(key_slot(&KeySchema::default().session(id.expose()))),
        });
        if short {
            let _ = self.short_tx.send(index);
        } else {
            self.acked(OpKind::SessionCreate, invoke_ms, Some(index), None);
            self.own.push((index, id));
        }
        Some(Done::ok(Some(index), None))
    }

    /// Reads back one of this worker's sessions (cycling through them).
    fn pick(&self) -> Option<(usize, &SessionId)> {
        if self.own.is_empty() {
            return None;
        }
        let (index, id) = &self.own[(self.clock.now() as usize) % self.own.len()];
        Some((*index, id))
    }

    async fn read(&self) -> Option<Done> {
        let (index, id) = self.pick()?;
        Some(match self.client.sessions.get(id).await {
            Ok(Some(_)) => Done::ok(Some(index), None),
            Ok(None) => Done::ok(Some(index), Some("not found".into())),
            Err(e) => Done {
                session: Some(index),
                ..Done::err(&e)
            },
        })
    }

    async fn update(&self, invoke_ms: f64, changes: u64) -> Option<Done> {
        let (index, id) = self.pick()?;
        let session = match self.client.sessions.get(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Some(Done::ok(Some(index), Some("not found".into()))),
            Err(e) => return Some(Done::err(&e)),
        };
        let mut updated = session.clone();
        updated
            .data
            .insert("authenticated".into(), serde_json::Value::Bool(true));
        let mark = self.client.mark().await;
        Some(match self.client.sessions.update(id, &updated).await {
            Ok(()) => {
                let (outcome, note) = self.client.confirm_write(changes, mark).await;
                if outcome == Outcome::Ok {
                    self.acked(OpKind::SessionUpdate, invoke_ms, Some(index), None);
                }
                Done::of(outcome, Some(index), note)
            }
            Err(cache::Error::NotFound(_)) => Done::ok(Some(index), Some("not found".into())),
            Err(e) => Done::err(&e),
        })
    }

    async fn rate_limit(&self) -> Option<Done> {
        Some(match self.client.limiter.check(&self.ip, ENDPOINT).await {
            // A degraded decision means Redis failed: the counter may or may not have moved —
            // unless the command was never sent (no primary).
            Ok(d) if d.degraded.is_some() => {
                let never_sent = d
                    .degraded
                    .as_ref()
                    .is_some_and(|g| g.kind() == cache::ErrorKind::NoPrimary);
                let outcome = if never_sent {
                    Outcome::Fail
                } else {
                    Outcome::Indeterminate
                };
                Done::of(outcome, None, Some("redis unavailable: failed open".into()))
            }
            Ok(_) => Done {
                pttl_ms: self.client.counter_pttl(&self.ip).await,
                ..Done::ok(None, None)
            },
            Err(e) => Done::err(&e),
        })
    }

    async fn token_put(&mut self, invoke_ms: f64, changes: u64) -> Option<Done> {
        let token = format!("chaos-token-{}", random_hex(16));
        let claims = Client::claims(&self.user, TOKEN_TTL);
        let mark = self.client.mark().await;
        Some(match self.client.tokens.put(&token, &claims).await {
            Ok(_) => {
                let (outcome, note) = self.client.confirm_write(changes, mark).await;
                if outcome == Outcome::Ok {
                    self.acked(OpKind::TokenPut, invoke_ms, None, Some(token.clone()));
                }
                self.last_token = Some(token);
                Done::of(outcome, None, note)
            }
            Err(e) => Done::err(&e),
        })
    }

    async fn token_revoke(&mut self, invoke_ms: f64, changes: u64) -> Option<Done> {
        let token = self.last_token.take()?;
        let exp = expiry_in(TOKEN_TTL);
        let mark = self.client.mark().await;
        Some(match self.client.tokens.revoke(&token, Some(exp)).await {
            Ok(_) => {
                let (outcome, note) = self.client.confirm_write(changes, mark).await;
                if outcome == Outcome::Ok {
                    self.acked(OpKind::TokenRevoke, invoke_ms, None, Some(token));
                }
                Done::of(outcome, None, note)
            }
            Err(e) => Done::err(&e),
        })
    }
}
