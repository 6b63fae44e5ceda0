//! Signing every account in before the load, and the audit after it.
//!
//! **Seeding** creates every account's sessions (the shape a login writes,
//! [`super::workload::login_session`] — the same shape the memory projection measures) and one
//! access token each, 64 at a time, so the measured ops work on a realistic, fully populated
//! keyspace. What to do when a write is refused depends on the question:
//! - a load or capacity run ([`OnFailure::Stop`]) stops at the first failure: a keyspace that does
//!   not fit is a finding of its own, and measuring on half of it would mislead;
//! - an eviction run ([`OnFailure::Count`]) goes on and counts: under `noeviction` a keyspace
//!   larger than `maxmemory` *must* hit `OOM`, and that refusal is what it reports. Only sessions
//!   that were stored enter the keyspace (a refused sign-in never had a session to lose).
//!
//! The **audit** has every account come back once after the load — one session read per account,
//! as a user reloading a page — and counts the sessions that should have been alive but were gone:
//! a live session evicted during seeding that the load happened not to read still logged its user
//! out. Same rule as the load's invariant ([`super::keyspace::Keyspace::should_be_alive`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::progress::{Event, Progress};
use super::workload::{Workload, login_session};

const CONCURRENCY: usize = 64;

/// What seeding does when a write is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Stop at the first failure and return it.
    Stop,
    /// Count failures (OOM apart) and go on.
    Count,
}

#[derive(Debug, Default)]
pub(crate) struct Seeded {
    /// Sessions stored.
    pub(crate) sessions: u64,
    /// Accounts that got at least one session.
    pub(crate) accounts: u64,
    /// Writes refused with OOM.
    pub(crate) oom: u64,
    /// Other failed writes.
    pub(crate) other: u64,
    /// The first write refused for another reason than OOM (with [`OnFailure::Count`]), kept so
    /// a caller can tell an ACL refusal from a passing outage.
    pub(crate) first_other: Option<cache::Error>,
    pub(crate) seconds: f64,
}

/// Seeds `w`'s keyspace with every account's sessions and token. With [`OnFailure::Stop`] the
/// first failed write is returned as the error; the cancellation token stops it early.
pub(crate) async fn seed(
    w: &Workload,
    seed: u64,
    on_failure: OnFailure,
    progress: &Progress,
) -> cache::Result<Seeded> {
    let started = Instant::now();
    let ks = &w.keyspace;
    let per = ks.sessions_per_account();
    let (stored, oom, other) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let first_error: Mutex<Option<cache::Error>> = Mutex::new(None);
    let first_other: Mutex<Option<cache::Error>> = Mutex::new(None);
    let failed = |e: cache::Error| {
        let is_oom = e.kind() == cache::ErrorKind::OutOfMemory;
        if is_oom { &oom } else { &other }.fetch_add(1, Ordering::Relaxed);
        let keep = if on_failure == OnFailure::Stop {
            &first_error
        } else if !is_oom {
            &first_other
        } else {
            return;
        };
        let mut first = keep.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    };
    let stop = || {
        w.cancel.is_cancelled()
            || (on_failure == OnFailure::Stop
                && oom.load(Ordering::Relaxed) + other.load(Ordering::Relaxed) > 0)
    };
    stream::iter(0..ks.accounts() * per)
        .for_each_concurrent(CONCURRENCY, |i| {
            let (failed, stored, stop) = (&failed, &stored, &stop);
            async move {
                if stop() {
                    return;
                }
                let a = i / per;
                let mut rng = SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x2545_F491));
                let user = ks.user_id(a);
                let (_, ip) = ks.pick_ip(&mut rng);
                let sent = Instant::now();
                match w.lanes[i % w.lanes.len()]
                    .sessions
                    .create(login_session(&user, &ip, ks.payload(&mut rng)))
                    .await
                {
                    Ok((id, _)) => {
                        ks.install_session(a, id, sent);
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return failed(e),
                }
                if i % per == 0 {
                    match w.on_lane(i).issue_token(a, &mut rng).await {
                        Ok(t) => ks.set_token(a, t),
                        Err(e) => failed(e),
                    }
                }
            }
        })
        .await;
    if on_failure == OnFailure::Stop
        && let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner())
    {
        return Err(e);
    }
    let sessions = stored.into_inner();
    let seeded = Seeded {
        sessions,
        accounts: sessions.div_ceil(per as u64),
        oom: oom.into_inner(),
        other: other.into_inner(),
        first_other: first_other.into_inner().unwrap_or_else(|p| p.into_inner()),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.emit(Event::Seeded {
        sessions: seeded.sessions,
        accounts: seeded.accounts,
        seconds: seeded.seconds,
        refused_oom: seeded.oom,
        other_errors: seeded.other,
    });
    Ok(seeded)
}

#[derive(Default)]
pub(crate) struct Audit {
    /// Sessions found alive.
    pub(crate) read: u64,
    /// Sessions that should have been alive and were gone.
    pub(crate) lost: u64,
}

/// Reads one session of every account that holds one.
pub(crate) async fn audit(w: &Workload, seed: u64) -> Audit {
    let ks = &w.keyspace;
    let (read, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    stream::iter(0..ks.accounts())
        .for_each_concurrent(CONCURRENCY, |a| {
            let (read, lost) = (&read, &lost);
            async move {
                let mut rng = SmallRng::seed_from_u64(seed ^ (a as u64) ^ 0xA0D1);
                let Some((slot, s)) = ks.pick_session(a, &mut rng) else {
                    return;
                };
                match w.stores().sessions.get(&s.id).await {
                    Ok(Some(_)) => {
                        read.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {
                        if ks.should_be_alive(a, slot, &s, Instant::now()) {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                        ks.forget_session(a, slot, s.generation);
                    }
                    Err(_) => {}
                }
            }
        })
        .await;
    Audit {
        read: read.into_inner(),
        lost: lost.into_inner(),
    }
}
