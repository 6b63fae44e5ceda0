//! The recorded history: every operation any client invoked, with its invoke and completion time
//! and its outcome, plus every fault and every Sentinel event, all on one clock.
//!
//! This is Jepsen's central idea: the checker judges the *whole history* after the fact instead of
//! asserting on single calls while the system is breaking. So recording must be cheap and must
//! never lose an entry: one `std::sync::Mutex<Vec<_>>` per kind of record, held only to push (never
//! across an `.await`).
//!
//! Times are milliseconds since the workload started ([`Clock`]), from a monotonic clock, so a
//! wall-clock step during an experiment cannot reorder the timeline.
//!
//! Session ids and tokens are secrets: the history keeps them in [`SessionRecord::id`] and
//! [`AckedWrite::token`], which are never serialized; reports refer to a session by its index
//! (`s17`). Everything else is serialized, so that `chaos check` can judge a run again from its
//! `history.json` alone (see [`crate::recorded`]).
//!
//! The node of an operation is the one the client's handle had *when the command was sent*: read
//! after the call, it is usually the node the handle switched to because of that very call, and
//! a write the old primary acknowledged a moment before the switch would be attributed to the new
//! one (issue 11: split brain went unseen that way).

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Milliseconds since the workload started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }
    /// Now, in ms since start.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
    pub fn instant_at(&self, ms: f64) -> Instant {
        self.start + std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// Jepsen's three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied, and the client was told so.
    Ok,
    /// Certainly not applied.
    Fail,
    /// Unknown: timed out or the connection dropped mid-flight; it may or may not have been applied.
    Indeterminate,
}

impl Outcome {
    /// Classifies a store error: only an error that may have been applied is indeterminate; one
    /// that was never sent ("no Redis primary available") or refused is `Fail`.
    pub fn of_error(e: &cache::Error) -> Outcome {
        if e.is_indeterminate() {
            Outcome::Indeterminate
        } else {
            Outcome::Fail
        }
    }
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    SessionCreate,
    ShortSessionCreate,
    SessionRead,
    SessionUpdate,
    RateLimitCheck,
    TokenPut,
    TokenRevoke,
}

impl OpKind {
    pub fn is_write(self) -> bool {
        !matches!(self, OpKind::SessionRead)
    }
    pub fn name(self) -> &'static str {
        match self {
            OpKind::SessionCreate => "session_create",
            OpKind::ShortSessionCreate => "short_session_create",
            OpKind::SessionRead => "session_read",
            OpKind::SessionUpdate => "session_update",
            OpKind::RateLimitCheck => "ratelimit_check",
            OpKind::TokenPut => "token_put",
            OpKind::TokenRevoke => "token_revoke",
        }
    }
}

/// One operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub kind: OpKind,
    pub invoke_ms: f64,
    pub complete_ms: f64,
    pub outcome: Outcome,
    /// Port of the primary the client's handle was using when the command was sent (Sentinel:
    /// `current_primary()` before the call; after it only if the handle had none before).
    pub node_port: Option<u16>,
    /// The handle's primary after the call, when it differs from `node_port` (it switched during
    /// the call: a retry after a refusal, or an announcement that arrived meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_after: Option<u16>,
    /// For session ops: index into the session registry.
    pub session: Option<usize>,
    /// Error text for fail/indeterminate (never a secret: `cache` errors name key kinds, not
    /// keys), or what an `ok` read saw (`not found`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Rate-limit checks: the counter's `PTTL` read right after the check, with a command of
    /// its own (the limiter's own `reset_after` is computed by the script that sets the TTL, so
    /// it could never disagree with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pttl_ms: Option<i64>,
}

/// A session the workload created and got an `ok` for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The secret id: `Some` while the run is live, never serialized (so `None` in a history
    /// read back from disk).
    #[serde(skip)]
    pub id: Option<cache::SessionId>,
    pub short: bool,
    pub created_ms: f64,
    /// Time of the `ok`.
    pub acked_ms: f64,
    pub node_port: Option<u16>,
    /// The session key's Redis Cluster hash slot (kept, unlike the id, so a cluster history can
    /// be re-judged by slot range; it says nothing about the id beyond 14 bits of a hash).
    #[serde(default)]
    pub slot: Option<u16>,
}

/// A write of any kind whose `ok` the client got: what the final reads look for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AckedWrite {
    /// `session_create`, `session_update`, `token_put` or `token_revoke`.
    pub kind: OpKind,
    pub invoke_ms: f64,
    pub acked_ms: f64,
    /// As [`Op::node_port`]: the node the write was sent to.
    pub node_port: Option<u16>,
    /// Session writes: index into the session registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<usize>,
    /// Token writes: the raw synthetic token. Never serialized.
    #[serde(skip)]
    pub token: Option<String>,
}

/// What the nemesis did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at_ms: f64,
    pub done_ms: f64,
    pub action: String,
    pub node: String,
    pub port: u16,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A message a sentinel published about itself (`+sdown`, `+odown`, `+switch-master`...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SentinelEvent {
    pub at_ms: f64,
    pub sentinel: String,
    pub event: String,
    pub detail: String,
}

/// Everything recorded during one experiment. Shared by reference among the tasks.
#[derive(Default)]
pub struct History {
    ops: Mutex<Vec<Op>>,
    sessions: Mutex<Vec<SessionRecord>>,
    writes: Mutex<Vec<AckedWrite>>,
    faults: Mutex<Vec<FaultEvent>>,
    sentinel_events: Mutex<Vec<SentinelEvent>>,
}

fn push<T>(m: &Mutex<Vec<T>>, v: T) -> usize {
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    g.push(v);
    g.len() - 1
}

fn snapshot<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl History {
    pub fn op(&self, op: Op) {
        push(&self.ops, op);
    }
    /// Registers an acknowledged session and returns its index.
    pub fn session(&self, s: SessionRecord) -> usize {
        push(&self.sessions, s)
    }
    /// Registers an acknowledged write (any kind) for the final reads.
    pub fn write(&self, w: AckedWrite) {
        push(&self.writes, w);
    }
    pub fn fault(&self, f: FaultEvent) {
        push(&self.faults, f);
    }
    pub fn sentinel_event(&self, e: SentinelEvent) {
        push(&self.sentinel_events, e);
    }
    pub fn ops(&self) -> Vec<Op> {
        snapshot(&self.ops)
    }
    pub fn sessions(&self) -> Vec<SessionRecord> {
        snapshot(&self.sessions)
    }
    pub fn session_at(&self, i: usize) -> Option<SessionRecord> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(i)
            .cloned()
    }
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
    pub fn writes(&self) -> Vec<AckedWrite> {
        snapshot(&self.writes)
    }
    pub fn faults(&self) -> Vec<FaultEvent> {
        snapshot(&self.faults)
    }
    pub fn sentinel_events(&self) -> Vec<SentinelEvent> {
        let mut v = snapshot(&self.sentinel_events);
        v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        v
    }
}
