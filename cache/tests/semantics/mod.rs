//! Checks of the stores' promises under races and at their bounds, shared by the standalone and the
//! Cluster test files (each check takes `cache::Redis` handles, so it runs on any topology):
//! - [`logout_race`]: logins racing "log out everywhere", judged against real time;
//! - [`index_stays_bounded`]: the per-user index after thousands of login/logout cycles;
//! - [`each_operation_is_one_round_trip`] (in `round_trips.rs`): every operation's commands and
//!   round trips, counted by the servers ([`Traffic`]).
#![allow(dead_code)] // each test binary uses a different subset

mod round_trips;
#[allow(unused_imports)] // not every test binary checks round trips
pub use round_trips::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cache::{KeySchema, Redis, SessionId, SessionStore};
use redis::FromRedisValue;

use super::support::new_session;

/// A handle that waits up to 10 s for a reply: these checks judge outcomes, not latency, and on a
/// loaded machine a slow reply must not turn into an indeterminate error.
pub async fn patient(url: &str) -> Redis {
    let opts = cache::ConnectOptions {
        response_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    };
    super::support::connect_with(url, &opts).await
}

/// `command key args...` on `redis` (routed by the key on a Cluster).
async fn on_key<T: FromRedisValue>(redis: &Redis, command: &str, key: &str, args: &[&str]) -> T {
    let mut conn = redis.clone();
    redis::cmd(command)
        .arg(key)
        .arg(args)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
}

pub async fn exists(redis: &Redis, key: &str) -> bool {
    on_key::<i64>(redis, "EXISTS", key, &[]).await == 1
}

pub async fn index_len(redis: &Redis, index: &str) -> usize {
    on_key(redis, "ZCARD", index, &[]).await
}

pub async fn listed(redis: &Redis, index: &str, key: &str) -> bool {
    on_key::<Option<f64>>(redis, "ZSCORE", index, &[key])
        .await
        .is_some()
}

/// `PEXPIRETIME` of `key`: Unix ms, -1 without a TTL, -2 when absent.
pub async fn expires_at(redis: &Redis, key: &str) -> i64 {
    on_key(redis, "PEXPIRETIME", key, &[]).await
}

/// One login as a task saw it.
struct Login {
    id: SessionId,
    invoked: Instant,
    acked: Instant,
}

/// What [`logout_race`] saw.
#[derive(Debug, Default)]
pub struct RaceFigures {
    pub rounds: usize,
    pub logins: usize,
    /// Logins acknowledged before the logout was invoked: all must be gone.
    pub before: usize,
    /// Logins invoked after the logout was acknowledged: all must survive.
    pub after: usize,
    /// Logins whose call overlapped the logout's: either outcome is right.
    pub racing: usize,
    pub racing_gone: usize,
    /// Sessions created before the logout's linearisation point that survived it (must be 0).
    pub survivors_from_before: usize,
    /// Sessions created after the logout returned that did not survive (must be 0).
    pub lost_after: usize,
    /// Sessions alive but missing from the index (must be 0), or listed but gone (must be 0).
    pub lost_index_entries: usize,
    pub dangling_index_entries: usize,
    /// Logouts whose count differs from the sessions that disappeared (must be 0).
    pub miscounted: usize,
    /// Sessions still alive after a second logout with nothing racing it (must be 0).
    pub unreachable: usize,
}

impl RaceFigures {
    pub fn violations(&self) -> usize {
        self.survivors_from_before
            + self.lost_after
            + self.lost_index_entries
            + self.dangling_index_entries
            + self.miscounted
            + self.unreachable
    }
}

/// The login-during-logout-everywhere race, `rounds` times: each of `logins` (one store per task,
/// each on its own connection, as separate server instances would be) logs a fresh user in
/// `per_task` times while `logout` runs one log-out-everywhere for that user once half of the logins
/// are done. Judged against real time (Jepsen-style: invocation and completion instants):
/// a login acknowledged before the logout was invoked must be gone; one invoked after the logout
/// returned must survive; every survivor must be in the index and nothing gone may be; the logout's
/// count must equal the sessions that disappeared.
pub async fn logout_race(
    logins: &[SessionStore],
    logout: &SessionStore,
    raw: &Redis,
    keys: &KeySchema,
    rounds: usize,
    per_task: usize,
) -> RaceFigures {
    let mut f = RaceFigures {
        rounds,
        ..Default::default()
    };
    for round in 0..rounds {
        let user = format!("race-{round}");
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for store in logins {
            let (store, user, done) = (store.clone(), user.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..per_task {
                    let invoked = Instant::now();
                    let (id, _) = store.create(new_session(&user)).await.expect("login");
                    seen.push(Login {
                        id,
                        invoked,
                        acked: Instant::now(),
                    });
                    done.fetch_add(1, Ordering::Relaxed);
                }
                seen
            }));
        }
        let half = logins.len() * per_task / 2;
        while done.load(Ordering::Relaxed) < half {
            tokio::task::yield_now().await;
        }
        let invoked = Instant::now();
        let count = logout.destroy_all_for_user(&user).await.expect("logout");
        let acked = Instant::now();
        let mut seen = Vec::new();
        for t in tasks {
            seen.extend(t.await.expect("login task"));
        }
        let index = keys.user_sessions(&user).expect("user id");
        let mut gone = 0;
        for l in &seen {
            let key = keys.session(l.id.expose());
            let alive = exists(raw, &key).await;
            let in_index = listed(raw, &index, &key).await;
            gone += usize::from(!alive);
            if l.acked < invoked {
                f.before += 1;
                f.survivors_from_before += usize::from(alive);
            } else if l.invoked > acked {
                f.after += 1;
                f.lost_after += usize::from(!alive);
            } else {
                f.racing += 1;
                f.racing_gone += usize::from(!alive);
            }
            f.lost_index_entries += usize::from(alive && !in_index);
            f.dangling_index_entries += usize::from(!alive && in_index);
        }
        f.miscounted += usize::from(count != gone);
        f.logins += seen.len();
        // A second logout must end every survivor, and leave no index behind.
        let left = logout.destroy_all_for_user(&user).await.expect("cleanup");
        f.miscounted += usize::from(left != seen.len() - gone);
        for l in &seen {
            let key = keys.session(l.id.expose());
            f.unreachable += usize::from(exists(raw, &key).await);
        }
        assert!(
            !exists(raw, &index).await,
            "round {round}: index left behind"
        );
    }
    f
}

/// What [`index_stays_bounded`] saw.
#[derive(Debug)]
pub struct IndexFigures {
    pub cycles: usize,
    pub live: usize,
    pub largest: usize,
    pub last: usize,
    /// The index's expiry minus the latest deadline of a live session, ms (must be 0).
    pub expiry_beyond_last_session_ms: i64,
}

/// `live` sessions of `user` stay logged in while `stores.len()` tasks run `cycles` login/logout
/// cycles in total for the same user; the index is sampled every 100 cycles per task.
pub async fn index_stays_bounded(
    stores: &[SessionStore],
    raw: &Redis,
    keys: &KeySchema,
    user: &str,
    live: usize,
    cycles: usize,
) -> IndexFigures {
    let index = keys.user_sessions(user).expect("user id");
    let mut deadlines = Vec::new();
    for _ in 0..live {
        deadlines.push(
            stores[0]
                .create(new_session(user))
                .await
                .expect("login")
                .0
                .deadline_ms(),
        );
    }
    let per_task = cycles / stores.len();
    let mut tasks = Vec::new();
    for store in stores {
        let (store, raw, user, index) =
            (store.clone(), raw.clone(), user.to_string(), index.clone());
        tasks.push(tokio::spawn(async move {
            let mut largest = 0;
            for i in 0..per_task {
                let (id, _) = store.create(new_session(&user)).await.expect("login");
                assert!(store.destroy(&id).await.expect("logout"), "cycle {i}");
                if i % 100 == 0 {
                    largest = largest.max(index_len(&raw, &index).await);
                }
            }
            largest
        }));
    }
    let mut largest = 0;
    for t in tasks {
        largest = largest.max(t.await.expect("cycle task"));
    }
    let last_deadline = deadlines.iter().copied().max().unwrap_or(0) as i64;
    IndexFigures {
        cycles: per_task * stores.len(),
        live,
        largest,
        last: index_len(raw, &index).await,
        expiry_beyond_last_session_ms: expires_at(raw, &index).await - last_deadline,
    }
}
