//! Signing every account in on a server that may be full, and the audit after the load.
//!
//! `loadgen run` stops at the first failed seed write, which is right for a capacity test and
//! wrong here: under `noeviction` a keyspace larger than `maxmemory` *must* hit `OOM`, and that
//! refusal is one of the findings. So this seeding counts failures instead of stopping, and only
//! the sessions that were stored enter the keyspace (a refused sign-in never had a session to
//! lose). Sessions have the shape a login writes ([`crate::capacity::measure::realistic_session`]),
//! the same shape the memory projection measured.
//!
//! The audit has every account come back once after the load — one session read per account, as
//! a user reloading a page — and counts the sessions that should have been alive but were gone:
//! a live session evicted during seeding that the load happened not to read still logged its user
//! out, and the audit is what finds it. Same rule as the load's invariant
//! ([`crate::keyspace::Keyspace::should_be_alive`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cache::Claims;
use futures_util::stream::{self, StreamExt};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::capacity::measure::realistic_session;
use crate::keyspace::{Keyspace, TokenSlot};
use crate::workload::Workload;

const CONCURRENCY: usize = 64;

/// Whether an error message is Redis refusing a write because `maxmemory` is reached.
pub fn is_oom(message: &str) -> bool {
    message.contains("out of memory") || message.contains("OOM")
}

#[derive(Default)]
pub struct Seeded {
    pub stored: u64,
    pub oom: u64,
    pub other: u64,
}

/// Creates every account's sessions and token, counting refusals instead of stopping.
pub async fn seed(w: &Workload, seed: u64) -> Seeded {
    let ks = &w.keyspace;
    let per = ks.sessions_per_account();
    let (stored, oom, other) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let failed = |e: cache::Error| {
        let counter = if is_oom(&e.to_string()) { &oom } else { &other };
        counter.fetch_add(1, Ordering::Relaxed);
    };
    stream::iter(0..ks.accounts() * per)
        .for_each_concurrent(CONCURRENCY, |i| {
            let failed = &failed;
            let stored = &stored;
            async move {
                if crate::run::interrupted() {
                    return;
                }
                let a = i / per;
                let mut rng = SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x2545_F491));
                let user = Keyspace::user_id(a);
                let (_, ip) = ks.pick_ip(&mut rng);
                let new = realistic_session(&user, &ip, ks.payload(&mut rng));
                let sent = Instant::now();
                match w.sessions.create(new).await {
                    Ok((id, _)) => {
                        ks.install_session(a, id, sent);
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return failed(e),
                }
                if i % per == 0 {
                    let token = Keyspace::new_token(&mut rng);
                    let exp = unix_now() + ks.token_ttl.as_secs();
                    let claims = Claims {
                        user_id: user,
                        client_id: "loadgen".into(),
                        scope: "openid profile".into(),
                        exp,
                    };
                    match w.tokens.put(&token, &claims).await {
                        Ok(_) => ks.set_token(a, TokenSlot { token, exp }),
                        Err(e) => failed(e),
                    }
                }
            }
        })
        .await;
    Seeded {
        stored: stored.into_inner(),
        oom: oom.into_inner(),
        other: other.into_inner(),
    }
}

#[derive(Default)]
pub struct Audit {
    /// Sessions found alive.
    pub read: u64,
    /// Sessions that should have been alive and were gone.
    pub lost: u64,
}

/// Reads one session of every account that holds one.
pub async fn audit(w: &Workload, seed: u64) -> Audit {
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
                match w.sessions.get(&s.id).await {
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
