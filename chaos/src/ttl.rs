//! TTL prober: watches every acknowledged short-lived session expire.
//!
//! A session created with TTL T must be readable at T/2 (with a remaining TTL no longer than what
//! is left of T: a failover must not extend a life) and must be gone at T + tolerance (a restart
//! from RDB/AOF must not resurrect it; a promoted replica must expire it on its own). The prober
//! looks at each short session exactly twice, at those two moments, with `EXISTS`/`PTTL` through
//! its own handle — never `SessionStore::get`, whose read would itself refresh the expiry.
//!
//! Both looks are timed from the *acknowledgement* of the create: Redis started the TTL somewhere
//! between invoke and ack, so ack + T is the latest the session may live, and a slow create must
//! not turn into a false "resurrection". If Redis is unavailable when a probe is due, the probe
//! retries every 100 ms and records when it finally ran; if it never got an answer (30 s) it
//! records `present: null` — unknown, which the checker does not count either way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use cache::{KeySchema, Redis};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::history::{Clock, History};

/// Which of the two looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// At T/2: must exist, remaining TTL ≤ T − age + tolerance.
    Midlife,
    /// At T + tolerance: must be gone.
    AfterExpiry,
}

/// One look at one short session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeResult {
    pub session: usize,
    pub probe: Probe,
    pub due_ms: f64,
    pub at_ms: f64,
    /// `None`: Redis never answered this probe (unknown, not "absent").
    pub present: Option<bool>,
    /// `PTTL` in ms when present.
    pub pttl_ms: Option<i64>,
}

pub struct TtlProber {
    task: Option<JoinHandle<Vec<ProbeResult>>>,
}

impl Drop for TtlProber {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl TtlProber {
    pub fn start(
        redis: Redis,
        ttl: Duration,
        tolerance: Duration,
        clock: Clock,
        history: Arc<History>,
        mut rx: UnboundedReceiver<usize>,
    ) -> TtlProber {
        let ttl_ms = ttl.as_secs_f64() * 1000.0;
        let tol_ms = tolerance.as_secs_f64() * 1000.0;
        let task = tokio::spawn(async move {
            let keys = KeySchema::default();
            // (due time in µs, session, probe), earliest first.
            let mut due: BinaryHeap<Reverse<(u64, usize, Probe)>> = BinaryHeap::new();
            let mut results = Vec::new();
            let mut open = true;
            while open || !due.is_empty() {
                let next = due.peek().map(|Reverse((t, _, _))| *t as f64 / 1000.0);
                let wake = async {
                    match next {
                        Some(t) => tokio::time::sleep_until(clock.instant_at(t).into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    msg = rx.recv(), if open => match msg {
                        Some(i) => {
                            if let Some(s) = history.session_at(i) {
                                let at = |ms: f64| (ms * 1000.0) as u64;
                                due.push(Reverse((at(s.acked_ms + ttl_ms / 2.0), i, Probe::Midlife)));
                                due.push(Reverse((at(s.acked_ms + ttl_ms + tol_ms), i, Probe::AfterExpiry)));
                            }
                        }
                        None => open = false,
                    },
                    _ = wake => {
                        let Some(Reverse((t, i, probe))) = due.pop() else { continue };
                        let Some(id) = history.session_at(i).and_then(|s| s.id) else { continue };
                        let (present, pttl_ms) = look(&redis, &keys.session(id.expose())).await;
                        results.push(ProbeResult {
                            session: i,
                            probe,
                            due_ms: t as f64 / 1000.0,
                            at_ms: clock.now(),
                            present,
                            pttl_ms,
                        });
                    }
                }
            }
            results
        });
        TtlProber { task: Some(task) }
    }

    /// Waits for every scheduled probe (the sender side must be dropped first).
    pub async fn finish(mut self) -> Vec<ProbeResult> {
        match self.task.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

/// `PTTL` until it answers: (present, remaining ms); `None` if it never did.
async fn look(redis: &Redis, key: &str) -> (Option<bool>, Option<i64>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut conn = redis.clone();
        let r: redis::RedisResult<i64> = redis::cmd("PTTL").arg(key).query_async(&mut conn).await;
        match r {
            Ok(-2) => return (Some(false), None),
            Ok(ms) => return (Some(true), Some(ms)),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(_) => return (None, None),
        }
    }
}
