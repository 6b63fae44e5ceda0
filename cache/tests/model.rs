//! Model-checked stores: random sequences of session, token and rate-limit operations, run against
//! the real stores on one real redis-server *and* against a small in-memory reference model. Every
//! result must agree, and so must the key space the sequence leaves behind.
//!
//! How it works: proptest generates a `Vec<Op>`; each case gets a fresh key prefix
//! (`KeySchema::new("model<n>")`), so cases share one server without seeing each other. Ops name
//! sessions and tokens by small indices, so a sequence reuses, revokes and destroys the same things
//! (which is where the bugs are). After the last op the key space is audited with `SCAN`: exactly
//! the keys the model expects exist, and each one's `PTTL` is within its bound.
//!
//! TTL timing: every TTL in the property test is at least an hour (idle 1 h, absolute 2 h, tokens
//! expire 1-2 h out, limiter windows 1 h), and a case runs for well under a second (asserted: < 30
//! s), so the model treats nothing as expiring. The tolerance is stated where it is used: a key's
//! `PTTL` may be lower than its configured TTL by the case's elapsed time plus 1 s. Expiry itself is
//! checked against the model separately, with short TTLs, in `expiry_agrees_with_the_model`.
//!
//! "Log out everywhere" is also run *concurrently* with logins of the same user
//! ([`Op::LogoutDuringLogins`]): the logout and the creates are all in flight at once, and the model
//! accepts any linearisation — each racing login either precedes the logout (so it is gone and
//! counted in the logout's result) or follows it (so it is alive and listed in the index) — and then
//! adopts the one Redis chose. The key-space audit also compares every index's members and scores
//! with the model's, so a login that survived a logout without being listed fails the case.
//!
//! On failure proptest shrinks the sequence and the test prints the minimal one as Rust
//! (`vec![CreateSession { user: 0, data: 1 }, ...]`, the `Debug` of `Vec<Op>`): paste it into
//! [`replay_ops`] and run `cargo test -p cache --test model replay -- --ignored --nocapture`.
//!
//! Runs 64 cases by default (~1-2 s); `PROPTEST_CASES=5000 cargo test -p cache --test model` runs more.
//!
//! One file of ~1,100 lines on purpose: the operations, the model, the key-space audit and the timed
//! expiry variant are one concept, and the model is only meaningful next to its operations.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cache::ratelimit::Decision;
use cache::token::token_hash;
use cache::{
    Algorithm, Claims, Error, FailureMode, IpPolicy, KeySchema, NewSession, PutOutcome,
    RateLimiter, Redis, Rule, Session, SessionConfig, SessionId, SessionStore, TokenCache,
    TokenStatus,
};
use localredis::resp::Reply;
use localredis::{RedisServer, ServerConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use support::*;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// Tokens, some hostile-looking: only their SHA-256 may reach a key.
const TOKENS: [&str; 4] = ["tok-a", "tok-b", "eyJhbGciOi.c2lnbmVk.sig", "tok\r\n*:d"];
/// (client IP as sent, bucket): several spellings of one address share one bucket.
const IPS: [(&str, usize); 6] = [
    ("10.0.0.1", 0),
    ("::ffff:10.0.0.1", 0),
    ("2001:db8::1", 1),
    ("2001:DB8:0:0:0:0:0:1", 1),
    ("[2001:db8::1]", 1),
    ("192.0.2.9", 2),
];
/// Canonical text of each bucket, as it appears in the key.
const BUCKETS: [&str; 3] = ["10.0.0.1", "2001:db8::1", "192.0.2.9"];
/// Endpoints: one per algorithm, and one the limiter has no rule for.
const ENDPOINTS: [&str; 4] = ["fixed", "sliding", "gcra", "unknown"];
const LIMIT: u32 = 3;
const HOUR: Duration = Duration::from_secs(3600);

/// One operation. Indices are taken modulo the number of things they can name, so every
/// generated value is meaningful and shrinking towards 0 keeps it so.
#[derive(Clone, Debug)]
enum Op {
    CreateSession {
        user: usize,
        data: u8,
    },
    /// `session` indexes the sessions created so far in this case (an unknown id if none).
    GetSession {
        session: usize,
    },
    GetUnknownSession,
    UpdateSession {
        session: usize,
        data: u8,
    },
    DestroySession {
        session: usize,
    },
    DestroyAll {
        user: usize,
    },
    /// `logins` creates for `user` and one `destroy_all_for_user(user)`, all in flight at once; the
    /// logout is sent after `logout_after` of the creates.
    LogoutDuringLogins {
        user: usize,
        logins: usize,
        logout_after: usize,
    },
    /// `claims` 0-2 are valid for 1-2 h, 3 expired a minute ago.
    PutToken {
        token: usize,
        claims: usize,
    },
    /// `lookup` distinguishes revoked from unknown; `get` only returns valid claims.
    GetToken {
        token: usize,
        lookup: bool,
    },
    RevokeToken {
        token: usize,
        with_exp: bool,
    },
    Check {
        ip: usize,
        endpoint: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    use Op::*;
    prop_oneof![
        3 => (0..USERS.len(), any::<u8>()).prop_map(|(user, data)| CreateSession { user, data }),
        3 => (0..8usize).prop_map(|session| GetSession { session }),
        1 => Just(GetUnknownSession),
        2 => (0..8usize, any::<u8>()).prop_map(|(session, data)| UpdateSession { session, data }),
        2 => (0..8usize).prop_map(|session| DestroySession { session }),
        1 => (0..USERS.len()).prop_map(|user| DestroyAll { user }),
        2 => (0..USERS.len(), 1..5usize, 0..5usize).prop_map(|(user, logins, logout_after)| {
            LogoutDuringLogins { user, logins, logout_after: logout_after.min(logins) }
        }),
        3 => (0..TOKENS.len(), 0..4usize).prop_map(|(token, claims)| PutToken { token, claims }),
        3 => (0..TOKENS.len(), any::<bool>()).prop_map(|(token, lookup)| GetToken { token, lookup }),
        2 => (0..TOKENS.len(), any::<bool>())
            .prop_map(|(token, with_exp)| RevokeToken { token, with_exp }),
        4 => (0..IPS.len(), 0..ENDPOINTS.len()).prop_map(|(ip, endpoint)| Check { ip, endpoint }),
    ]
}

/// Paste a shrunk sequence here to replay it (see the module docs).
fn replay_ops() -> Vec<Op> {
    #[allow(unused_imports)]
    use Op::*;
    vec![]
}

// ---------------------------------------------------------------------------------------------
// The reference model: plain maps, no time.

struct ModelSession {
    id: SessionId,
    alive: bool,
    /// What a `get` must return. `last_seen_ms` is set by the store's clock at update time; the
    /// model knows it only within `last_seen` bounds and adopts the store's value once checked.
    value: Session,
    last_seen: (u64, u64),
}

#[derive(Clone, Debug, PartialEq)]
enum TokenState {
    Cached(Claims),
    Revoked,
}

#[derive(Default)]
struct Model {
    sessions: Vec<ModelSession>,
    /// Sessions each user's index lists: created, and neither destroyed nor logged out everywhere
    /// since. The index key exists while the user's set is not empty.
    index: BTreeMap<usize, BTreeSet<usize>>,
    tokens: BTreeMap<usize, TokenState>,
    /// (bucket, endpoint) → checks counted (fixed window: every check; others: admitted ones).
    counts: BTreeMap<(usize, usize), u32>,
    /// Longest token TTL the model granted, for the TTL audit.
    max_token_exp_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn data(n: u8, updated: bool) -> BTreeMap<String, serde_json::Value> {
    let mut d = BTreeMap::new();
    d.insert("n".to_string(), serde_json::json!(n));
    d.insert("authenticated".to_string(), serde_json::json!(true));
    if updated {
        d.insert("mfa".to_string(), serde_json::json!("passed"));
    }
    d
}

fn claims_variant(i: usize) -> Claims {
    let now_s = now_ms() / 1000;
    let (user, scope, exp) = match i % 4 {
        0 => ("alice", "openid", now_s + 3600),
        1 => ("bob", "openid profile", now_s + 7200),
        2 => ("carol", "openid email offline_access", now_s + 5400),
        _ => ("mallory", "openid", now_s - 60),
    };
    Claims {
        user_id: user.into(),
        client_id: "web".into(),
        scope: scope.into(),
        exp,
    }
}

/// The stores of one case, under their own prefix.
struct Stores {
    prefix: String,
    /// A raw handle, to look at keys without touching them (`EXISTS` refreshes nothing).
    redis: Redis,
    sessions: SessionStore,
    /// Same server, another prefix: a source of well-formed ids that do not exist in `sessions`.
    elsewhere: SessionStore,
    tokens: TokenCache,
    limiter: RateLimiter,
}

fn session_config() -> SessionConfig {
    SessionConfig {
        idle_timeout: HOUR,
        absolute_lifetime: 2 * HOUR,
        ..Default::default()
    }
}

fn stores(redis: &Redis, prefix: String) -> Stores {
    let keys = KeySchema::new(&prefix).unwrap();
    let rule = |algorithm| Rule {
        limit: LIMIT,
        window: HOUR,
        algorithm,
    };
    let rules = [
        ("fixed".to_string(), rule(Algorithm::FixedWindow)),
        ("sliding".to_string(), rule(Algorithm::SlidingWindow)),
        ("gcra".to_string(), rule(Algorithm::Gcra)),
    ];
    Stores {
        sessions: SessionStore::new(redis.clone(), keys.clone(), session_config()).unwrap(),
        elsewhere: SessionStore::new(
            redis.clone(),
            KeySchema::new(&format!("{prefix}-elsewhere")).unwrap(),
            session_config(),
        )
        .unwrap(),
        tokens: TokenCache::new(redis.clone(), keys.clone()),
        limiter: RateLimiter::new(
            redis.clone(),
            keys,
            rules.into_iter().collect(),
            FailureMode::Closed,
            IpPolicy::default(),
        )
        .unwrap(),
        redis: redis.clone(),
        prefix,
    }
}

impl Stores {
    async fn exists(&self, key: &str) -> bool {
        let mut conn = self.redis.clone();
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .expect("EXISTS")
            == 1
    }
}

macro_rules! agree {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// A session's fields as the model predicts them, `last_seen_ms` aside (checked by bounds).
fn same_session(real: &Session, model: &Session) -> bool {
    let mut real = real.clone();
    real.last_seen_ms = model.last_seen_ms;
    &real == model
}

impl Model {
    /// The user (index into `USERS`) a session belongs to.
    fn user_of(&self, slot: usize) -> usize {
        let user = &self.sessions[slot].value.user_id;
        USERS.iter().position(|u| u == user).expect("a model user")
    }

    /// `destroy` takes a session out of its user's index; an emptied index is gone.
    fn unlist(&mut self, slot: usize) {
        let user = self.user_of(slot);
        if let Some(listed) = self.index.get_mut(&user) {
            listed.remove(&slot);
            if listed.is_empty() {
                self.index.remove(&user);
            }
        }
    }

    /// Ends every session the user's index lists, as log-out-everywhere does; returns how many
    /// were alive.
    fn log_out_everywhere(&mut self, user: usize) -> usize {
        let listed = self.index.remove(&user).unwrap_or_default();
        listed
            .into_iter()
            .filter(|slot| std::mem::replace(&mut self.sessions[*slot].alive, false))
            .count()
    }

    /// A session just created for `user`.
    fn created(&mut self, user: usize, id: SessionId, value: Session) -> usize {
        let slot = self.sessions.len();
        let last_seen = (value.last_seen_ms, value.last_seen_ms);
        self.sessions.push(ModelSession {
            id,
            alive: true,
            value,
            last_seen,
        });
        self.index.entry(user).or_default().insert(slot);
        slot
    }

    /// The session an index names, if any exists in the model.
    fn pick(&self, i: usize) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| i % self.sessions.len())
    }

    fn check_get(&mut self, slot: usize, real: Option<Session>) -> Result<(), TestCaseError> {
        let s = &mut self.sessions[slot];
        match (s.alive, real) {
            (false, None) => Ok(()),
            (false, Some(_)) => Err(TestCaseError::fail(format!(
                "session #{slot} was destroyed but get returned it"
            ))),
            (true, None) => Err(TestCaseError::fail(format!(
                "session #{slot} is alive in the model but get returned None"
            ))),
            (true, Some(real)) => {
                agree!(
                    same_session(&real, &s.value),
                    "session #{slot}: get returned {real:?}, model has {:?}",
                    s.value
                );
                let (lo, hi) = s.last_seen;
                agree!(
                    (lo..=hi).contains(&real.last_seen_ms),
                    "session #{slot}: last_seen_ms {} outside [{lo}, {hi}]",
                    real.last_seen_ms
                );
                s.value.last_seen_ms = real.last_seen_ms;
                s.last_seen = (real.last_seen_ms, real.last_seen_ms);
                Ok(())
            }
        }
    }

    fn expect_decision(
        &mut self,
        bucket: usize,
        endpoint: usize,
        d: &Decision,
    ) -> Result<(), TestCaseError> {
        let count = self.counts.entry((bucket, endpoint)).or_insert(0);
        let (allowed, remaining) = if ENDPOINTS[endpoint] == "fixed" {
            // The counter counts every request, refused ones too.
            *count += 1;
            (*count <= LIMIT, LIMIT.saturating_sub(*count))
        } else if *count < LIMIT {
            // Sliding window and GCRA count admitted requests only; over a 1 h window nothing
            // replenishes within a case.
            *count += 1;
            (true, LIMIT - *count)
        } else {
            (false, 0)
        };
        agree!(
            d.allowed == allowed
                && d.remaining == remaining
                && d.limit == LIMIT
                && d.degraded.is_none()
                && d.retry_after.is_some() != allowed,
            "{} check #{count} from bucket {bucket}: got {d:?}, model says allowed={allowed} remaining={remaining}",
            ENDPOINTS[endpoint]
        );
        Ok(())
    }
}

/// A well-formed id that was never created under this prefix: not found, not destroyable.
async fn unknown_session(s: &Stores) -> Result<(), TestCaseError> {
    let fail = |what: &str, e: Error| TestCaseError::fail(format!("{what} failed: {e}"));
    let elsewhere = NewSession {
        user_id: "elsewhere".into(),
        ..Default::default()
    };
    let (id, _) = s
        .elsewhere
        .create(elsewhere)
        .await
        .map_err(|e| fail("create elsewhere", e))?;
    let real = s.sessions.get(&id).await.map_err(|e| fail("get", e))?;
    agree!(
        real.is_none(),
        "get of a never-created id returned {real:?}"
    );
    let destroyed = s
        .sessions
        .destroy(&id)
        .await
        .map_err(|e| fail("destroy", e))?;
    agree!(!destroyed, "destroy of a never-created id returned true");
    Ok(())
}

/// Racing logins seen over the run: [ran before the logout, ran after it].
static RACING_LOGINS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

/// How far the store's estimate of Redis's clock may be from this process's clock: Redis runs on
/// this machine, so the estimate is within half a round trip; the bound is generous for load.
const CLOCK_SLACK_MS: u64 = 1000;

fn model_session(user: usize, n: u8) -> NewSession {
    NewSession {
        user_id: USERS[user].into(),
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("model".into()),
        data: data(n, false),
    }
}

/// What `create` returned is the session asked for, stamped within `(before, after)`.
fn check_created(
    value: &Session,
    user: usize,
    n: u8,
    (before, after): (u64, u64),
) -> Result<(), TestCaseError> {
    agree!(
        value.user_id == USERS[user]
            && value.data == data(n, false)
            && (before - CLOCK_SLACK_MS..=after + CLOCK_SLACK_MS).contains(&value.created_ms)
            && value.last_seen_ms == value.created_ms
            && value.absolute_expires_ms == value.created_ms + 2 * 3_600_000,
        "create returned {value:?}"
    );
    Ok(())
}

/// Creates for `user` racing one log-out-everywhere of `user`: every future is polled before any
/// completes, so all requests are in flight together. The model accepts any linearisation and
/// adopts Redis's: a racing login is either gone (it ran before the logout, which then counted
/// it) or alive and listed.
async fn race_logout(
    m: &mut Model,
    s: &Stores,
    user: usize,
    logins: usize,
    logout_after: usize,
) -> Result<(), TestCaseError> {
    let fail = |what: &str, e: Error| TestCaseError::fail(format!("{what} failed: {e}"));
    let before = now_ms();
    let creates = (0..logins).map(|i| s.sessions.create(model_session(user, i as u8)));
    let mut creates: Vec<_> = creates.map(Box::pin).collect();
    let mut logout = Box::pin(s.sessions.destroy_all_for_user(USERS[user]));
    // Poll in the chosen order once, so the requests leave in that order, then drive all.
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut early = Vec::new();
    for (i, c) in creates.iter_mut().enumerate() {
        if i == logout_after {
            early.push(logout.as_mut().poll(&mut cx).is_ready());
        }
        early.push(c.as_mut().poll(&mut cx).is_ready());
    }
    if logout_after == logins {
        early.push(logout.as_mut().poll(&mut cx).is_ready());
    }
    agree!(
        !early.iter().any(|r| *r),
        "a store operation completed without waiting for Redis"
    );
    let (created, logged_out) =
        futures_util::future::join(futures_util::future::join_all(creates), logout).await;
    let after = now_ms();
    let logged_out = logged_out.map_err(|e| fail("destroy_all_for_user", e))?;
    let listed_before = m.log_out_everywhere(user);
    let mut survivors = 0;
    for (i, c) in created.into_iter().enumerate() {
        let (id, value) = c.map_err(|e| fail("create", e))?;
        check_created(&value, user, i as u8, (before, after))?;
        let key = KeySchema::new(&s.prefix).unwrap().session(id.expose());
        let slot = m.created(user, id, value);
        if s.exists(&key).await {
            survivors += 1;
        } else {
            // Ran before the logout: gone, and not listed.
            m.sessions[slot].alive = false;
            m.unlist(slot);
        }
    }
    RACING_LOGINS[0].fetch_add((logins - survivors) as u32, Ordering::Relaxed);
    RACING_LOGINS[1].fetch_add(survivors as u32, Ordering::Relaxed);
    let expected = listed_before + logins - survivors;
    agree!(
        logged_out == expected,
        "log-out-everywhere racing {logins} logins returned {logged_out}: {listed_before} \
         listed before + {} logins it ran after = {expected}",
        logins - survivors
    );
    Ok(())
}

async fn apply(op: &Op, m: &mut Model, s: &Stores) -> Result<(), TestCaseError> {
    let fail = |what: &str, e: Error| TestCaseError::fail(format!("{what} failed: {e}"));
    match *op {
        Op::CreateSession { user, data: n } => {
            let before = now_ms();
            let (id, value) = s
                .sessions
                .create(model_session(user, n))
                .await
                .map_err(|e| fail("create", e))?;
            check_created(&value, user, n, (before, now_ms()))?;
            m.created(user, id, value);
        }
        Op::GetSession { session } => match m.pick(session) {
            Some(slot) => {
                let real = s.sessions.get(&m.sessions[slot].id).await;
                m.check_get(slot, real.map_err(|e| fail("get", e))?)?;
            }
            None => unknown_session(s).await?,
        },
        Op::GetUnknownSession => unknown_session(s).await?,
        Op::UpdateSession { session, data: n } => {
            let Some(slot) = m.pick(session) else {
                return Ok(());
            };
            let ms = &mut m.sessions[slot];
            let mut value = ms.value.clone();
            value.data = data(n, true);
            let before = now_ms();
            let real = s.sessions.update(&ms.id, &value).await;
            let after = now_ms();
            match (ms.alive, real) {
                (true, Ok(())) => {
                    ms.value = value;
                    // Stamped with the store's estimate of Redis's clock (same machine here).
                    ms.last_seen = (before - CLOCK_SLACK_MS, after + CLOCK_SLACK_MS);
                }
                (false, Err(Error::NotFound(_))) => {}
                (alive, real) => {
                    return Err(TestCaseError::fail(format!(
                        "update of session #{slot} (alive in model: {alive}) returned {real:?}"
                    )));
                }
            }
        }
        Op::DestroySession { session } => {
            let Some(slot) = m.pick(session) else {
                return Ok(());
            };
            let real = s
                .sessions
                .destroy(&m.sessions[slot].id)
                .await
                .map_err(|e| fail("destroy", e))?;
            let ms = &mut m.sessions[slot];
            agree!(
                real == ms.alive,
                "destroy of session #{slot} returned {real}, model alive={}",
                ms.alive
            );
            ms.alive = false;
            m.unlist(slot);
        }
        Op::DestroyAll { user } => {
            let real = s
                .sessions
                .destroy_all_for_user(USERS[user])
                .await
                .map_err(|e| fail("destroy_all_for_user", e))?;
            let expected = m.log_out_everywhere(user);
            agree!(
                real == expected,
                "destroy_all_for_user({}) returned {real}, model says {expected}",
                USERS[user]
            );
            // Other users' sessions are untouched: checked by later gets and by the key audit.
        }
        Op::LogoutDuringLogins {
            user,
            logins,
            logout_after,
        } => race_logout(m, s, user, logins, logout_after).await?,
        Op::PutToken { token, claims } => {
            let c = claims_variant(claims);
            let real = s.tokens.put(TOKENS[token], &c).await;
            let expired = c.exp * 1000 <= now_ms();
            let state = m.tokens.get(&token).cloned();
            match (expired, &state, real) {
                (
                    true,
                    _,
                    Err(Error::Invalid {
                        field: "claims.exp",
                        ..
                    }),
                ) => {}
                (false, None, Ok(PutOutcome::Stored)) => {
                    m.max_token_exp_ms = m.max_token_exp_ms.max(c.exp * 1000);
                    m.tokens.insert(token, TokenState::Cached(c));
                }
                (false, Some(TokenState::Cached(_)), Ok(PutOutcome::AlreadyCached)) => {}
                (false, Some(TokenState::Revoked), Ok(PutOutcome::Revoked)) => {}
                (_, state, real) => {
                    return Err(TestCaseError::fail(format!(
                        "put token #{token} (expired: {expired}, model: {state:?}) returned {real:?}"
                    )));
                }
            }
        }
        Op::GetToken { token, lookup } => {
            let state = m.tokens.get(&token);
            if lookup {
                let real = s
                    .tokens
                    .lookup(TOKENS[token])
                    .await
                    .map_err(|e| fail("lookup", e))?;
                let expected = match state {
                    None => TokenStatus::Unknown,
                    Some(TokenState::Revoked) => TokenStatus::Revoked,
                    Some(TokenState::Cached(c)) => TokenStatus::Valid(c.clone()),
                };
                agree!(
                    real == expected,
                    "lookup token #{token}: got {real:?}, model {expected:?}"
                );
            } else {
                let real = s
                    .tokens
                    .get(TOKENS[token])
                    .await
                    .map_err(|e| fail("get", e))?;
                let expected = match state {
                    Some(TokenState::Cached(c)) => Some(c.clone()),
                    _ => None,
                };
                agree!(
                    real == expected,
                    "get token #{token}: got {real:?}, model {expected:?}"
                );
            }
        }
        Op::RevokeToken { token, with_exp } => {
            let exp = with_exp.then(|| now_ms() / 1000 + 3600);
            let real = s
                .tokens
                .revoke(TOKENS[token], exp)
                .await
                .map_err(|e| fail("revoke", e))?;
            let was_cached = matches!(m.tokens.get(&token), Some(TokenState::Cached(_)));
            agree!(
                real == was_cached,
                "revoke token #{token} returned {real}, model says cached={was_cached}"
            );
            m.tokens.insert(token, TokenState::Revoked);
        }
        Op::Check { ip, endpoint } => {
            let (ip_text, bucket) = IPS[ip];
            let real = s.limiter.check(ip_text, ENDPOINTS[endpoint]).await;
            if ENDPOINTS[endpoint] == "unknown" {
                agree!(
                    matches!(
                        real,
                        Err(Error::Invalid {
                            field: "endpoint",
                            ..
                        })
                    ),
                    "check of an unknown endpoint returned {real:?}"
                );
            } else {
                let d = real.map_err(|e| fail("check", e))?;
                m.expect_decision(bucket, endpoint, &d)?;
            }
        }
    }
    Ok(())
}

/// Every key under the prefix, with its PTTL, read with SCAN (never KEYS).
fn key_space(server: &RedisServer, prefix: &str) -> BTreeMap<String, i64> {
    let mut conn = server.connect().expect("connect for SCAN");
    let mut cursor = "0".to_string();
    let mut keys = BTreeMap::new();
    loop {
        let pattern = format!("{prefix}:*");
        let reply = conn
            .command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
            .expect("SCAN");
        let parts = reply.as_array().expect("SCAN reply");
        cursor = parts[0].as_str().expect("cursor").to_string();
        for key in parts[1].as_array().expect("keys") {
            let key = key.as_str().expect("key").to_string();
            let Reply::Integer(ttl) = conn.command(&["PTTL", &key]).expect("PTTL") else {
                panic!("PTTL reply");
            };
            keys.insert(key, ttl);
        }
        if cursor == "0" {
            return keys;
        }
    }
}

/// The keys the model expects, each with its PTTL bounds in ms (inclusive).
fn expected_keys(m: &Model, prefix: &str, elapsed_ms: i64) -> BTreeMap<String, (i64, i64)> {
    // Tolerance: a key may have lost the case's elapsed time plus 1 s from its configured TTL.
    let slack = elapsed_ms + 1000;
    let hour = 3_600_000i64;
    let mut keys = BTreeMap::new();
    let schema = KeySchema::new(prefix).unwrap();
    for s in m.sessions.iter().filter(|s| s.alive) {
        let key = schema.session(s.id.expose());
        keys.insert(key, (hour - slack, hour));
    }
    for user in m.index.keys() {
        let key = schema.user_sessions(USERS[*user]).unwrap();
        keys.insert(key, (2 * hour - slack, 2 * hour));
    }
    let token_max = (m.max_token_exp_ms as i64 - now_ms() as i64).max(0) + 1000;
    for (token, state) in &m.tokens {
        let key = format!("{prefix}:token:{}", token_hash(TOKENS[*token]));
        let bounds = match state {
            TokenState::Cached(_) => (1, token_max),
            // Tombstones outlive the token by the 5 min skew allowance: 1 h (exp given) to 24 h
            // (the longest token lifetime, when exp is unknown), plus the allowance.
            TokenState::Revoked => (hour - slack, 24 * hour + 300_000),
        };
        keys.insert(key, bounds);
    }
    for (bucket, endpoint) in m.counts.keys() {
        let key = format!(
            "{prefix}:ratelimit:{}:{}",
            BUCKETS[*bucket], ENDPOINTS[*endpoint]
        );
        // Sliding-window hashes live up to two windows; the others up to one.
        keys.insert(key, (1, 2 * hour));
    }
    keys
}

fn audit(
    m: &Model,
    server: &RedisServer,
    prefix: &str,
    elapsed: Duration,
) -> Result<(), TestCaseError> {
    let real = key_space(server, prefix);
    let expected = expected_keys(m, prefix, elapsed.as_millis() as i64);
    let real_names: BTreeSet<&String> = real.keys().collect();
    let expected_names: BTreeSet<&String> = expected.keys().collect();
    agree!(
        real_names == expected_names,
        "key space differs: only in Redis {:?}, only in the model {:?}",
        real_names.difference(&expected_names).collect::<Vec<_>>(),
        expected_names.difference(&real_names).collect::<Vec<_>>()
    );
    for (key, (lo, hi)) in &expected {
        let ttl = real[key];
        agree!(
            (*lo..=*hi).contains(&ttl),
            "PTTL of {key} is {ttl} ms, expected {lo}..={hi} (-1 means no TTL)"
        );
    }
    audit_indexes(m, server, prefix)
}

/// Each user's index lists exactly the sessions the model lists, scored by their deadlines, and
/// expires at the last of them.
fn audit_indexes(m: &Model, server: &RedisServer, prefix: &str) -> Result<(), TestCaseError> {
    let schema = KeySchema::new(prefix).unwrap();
    let mut conn = server.connect().expect("connect");
    for (user, listed) in &m.index {
        let key = schema.user_sessions(USERS[*user]).unwrap();
        let expected: BTreeMap<String, u64> = listed
            .iter()
            .map(|slot| {
                let s = &m.sessions[*slot];
                (schema.session(s.id.expose()), s.id.deadline_ms())
            })
            .collect();
        let reply = conn
            .command(&["ZRANGE", &key, "0", "-1", "WITHSCORES"])
            .expect("ZRANGE");
        let items = reply.as_array().expect("ZRANGE reply");
        let real: BTreeMap<String, u64> = items
            .chunks(2)
            .map(|p| {
                let score = p[1]
                    .as_str()
                    .expect("score")
                    .parse()
                    .expect("integer score");
                (p[0].as_str().expect("member").to_string(), score)
            })
            .collect();
        agree!(
            real == expected,
            "index of {} lists {real:?}, the model {expected:?}",
            USERS[*user]
        );
        let Reply::Integer(expires) = conn.command(&["PEXPIRETIME", &key]).expect("PEXPIRETIME")
        else {
            panic!("PEXPIRETIME reply");
        };
        let last = expected.values().max().copied().unwrap_or(0) as i64;
        agree!(
            expires == last,
            "index of {} expires at {expires}, its last session at {last}",
            USERS[*user]
        );
    }
    Ok(())
}

static CASE: AtomicU32 = AtomicU32::new(0);

async fn run_case(server: &RedisServer, redis: &Redis, ops: &[Op]) -> Result<(), TestCaseError> {
    let prefix = format!("model{}", CASE.fetch_add(1, Ordering::Relaxed));
    let s = stores(redis, prefix);
    let mut m = Model::default();
    let start = Instant::now();
    for (i, op) in ops.iter().enumerate() {
        apply(op, &mut m, &s)
            .await
            .map_err(|e| TestCaseError::fail(format!("op #{i} {op:?}: {e}")))?;
    }
    let elapsed = start.elapsed();
    agree!(
        elapsed < Duration::from_secs(30),
        "case took {elapsed:?}: the 1 h TTL tolerance assumes short cases"
    );
    audit(&m, server, &s.prefix, elapsed)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// A fresh redis-server, a current-thread runtime to drive the async stores from proptest's
/// synchronous runner, and a handle connected to the server.
fn server_runtime_and_handle() -> (RedisServer, tokio::runtime::Runtime, cache::Redis) {
    let server = RedisServer::start(ServerConfig::default()).expect("start redis-server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let redis = rt.block_on(connect(&server.url()));
    (server, rt, redis)
}

#[test]
fn stores_agree_with_the_model() {
    if !have(&["redis-server"]) {
        return;
    }
    let (server, rt, redis) = server_runtime_and_handle();
    let config = Config {
        cases: cases(),
        // Shrunk cases are printed below; no regression files are written into the source tree.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op_strategy(), 1..48);
    let started = Instant::now();
    let result = runner.run(&strategy, |ops| {
        rt.block_on(run_case(&server, &redis, &ops))
    });
    match result {
        Ok(()) => {
            let [before, after] = RACING_LOGINS.each_ref().map(|n| n.load(Ordering::Relaxed));
            println!(
                "model agreed with Redis on {} random sequences in {:?}; logins racing a \
                 log-out-everywhere: {before} ran before it (gone), {after} after it (listed)",
                cases(),
                started.elapsed()
            );
            // Both outcomes must have been exercised, or the race was not a race.
            assert!(
                cases() < 32 || (before > 0 && after > 0),
                "racing logins: {before} before, {after} after the logout"
            );
        }
        Err(TestError::Fail(reason, ops)) => panic!(
            "the stores and the model disagree: {reason}\n\
             minimal sequence (paste into replay_ops() in cache/tests/model.rs):\n\
             vec!{ops:#?}"
        ),
        Err(e) => panic!("{e}"),
    }
}

/// Re-runs the sequence in [`replay_ops`].
#[test]
#[ignore = "replays a pasted sequence: cargo test -p cache --test model replay -- --ignored"]
fn replay() {
    if !have(&["redis-server"]) {
        return;
    }
    let (server, rt, redis) = server_runtime_and_handle();
    let ops = replay_ops();
    println!("replaying {} ops", ops.len());
    if let Err(e) = rt.block_on(run_case(&server, &redis, &ops)) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry against a timed model.

/// An instant known only within `[lo, hi]` Unix ms: a call's start and end bracket the moment Redis
/// ran it (the server and this process read the same clock).
#[derive(Clone, Copy, Debug)]
struct Span {
    lo: u64,
    hi: u64,
}

/// How close to a deadline an observation may be before the model declines to predict it: Redis
/// expires keys to the millisecond, the rest is scheduling noise between clock reads.
const EXPIRY_TOLERANCE_MS: u64 = 30;

impl Span {
    fn plus(self, ms: u64) -> Span {
        Span {
            lo: self.lo + ms,
            hi: self.hi + ms,
        }
    }

    fn min(self, other: Span) -> Span {
        Span {
            lo: self.lo.min(other.lo),
            hi: self.hi.min(other.hi),
        }
    }

    /// Whether something that ends at `self` is still there at `at`; `None` when too close to call.
    fn alive_at(self, at: Span) -> Option<bool> {
        if at.hi + EXPIRY_TOLERANCE_MS <= self.lo {
            Some(true)
        } else if at.lo >= self.hi + EXPIRY_TOLERANCE_MS {
            Some(false)
        } else {
            None
        }
    }
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Span) {
    let lo = now_ms();
    let out = f.await;
    (out, Span { lo, hi: now_ms() })
}

/// Per observed thing: how many observations the model predicted, and how many were too close to
/// a deadline to predict (then the model adopts what Redis said).
#[derive(Default, Debug)]
struct Tally {
    predicted: u32,
    too_close: u32,
}

impl Tally {
    fn observe(&mut self, name: &str, model: Option<bool>, real: bool, at: Span) {
        match model {
            Some(expected) => {
                self.predicted += 1;
                assert_eq!(
                    real, expected,
                    "{name} at {at:?}: Redis {real}, model {expected}"
                );
            }
            None => self.too_close += 1,
        }
    }
}

/// Short TTLs, probed every 100 ms for 2.5 s: an idle-refreshed session until its absolute
/// deadline, a never-read session past its idle timeout, a token past its `exp`, and a fixed
/// window past several resets. Each observation must match the timed model unless it falls within
/// `EXPIRY_TOLERANCE_MS` of a deadline.
#[tokio::test]
async fn expiry_agrees_with_the_model() {
    if !have(&["redis-server"]) {
        return;
    }
    let server = RedisServer::start(ServerConfig::default()).expect("start redis-server");
    let redis = connect(&server.url()).await;
    let (idle, absolute, window, limit) = (600, 1500, 650, 2);
    let keys = KeySchema::new("expiry").unwrap();
    let config = SessionConfig {
        idle_timeout: Duration::from_millis(idle),
        absolute_lifetime: Duration::from_millis(absolute),
        ..Default::default()
    };
    let sessions = SessionStore::new(redis.clone(), keys.clone(), config).unwrap();
    let tokens = TokenCache::new(redis.clone(), keys.clone());
    let rule = Rule {
        limit,
        window: Duration::from_millis(window),
        algorithm: Algorithm::FixedWindow,
    };
    let limiter = RateLimiter::new(
        redis.clone(),
        keys,
        [("signin".to_string(), rule)].into_iter().collect(),
        FailureMode::Closed,
        IpPolicy::default(),
    )
    .unwrap();

    let (created, at) = timed(sessions.create(new_session("active"))).await;
    let (active, value) = created.unwrap();
    // The absolute deadline is fixed by the store's clock at creation and stored in the value.
    let absolute_end = Span {
        lo: value.absolute_expires_ms,
        hi: value.absolute_expires_ms,
    };
    let mut active_end = Some(at.plus(idle).min(absolute_end));
    let (created, at) = timed(sessions.create(new_session("idle"))).await;
    let (idle_id, _) = created.unwrap();
    let idle_end = at.plus(idle);
    let idle_key = KeySchema::new("expiry").unwrap().session(idle_id.expose());
    let c = Claims {
        exp: now_ms() / 1000 + 2,
        ..claims(Duration::ZERO)
    };
    tokens.put("short-lived", &c).await.unwrap();
    // `lookup` hides claims at `exp` itself; the key's PX TTL ends no earlier.
    let token_end = Span {
        lo: c.exp * 1000,
        hi: c.exp * 1000,
    };
    let (mut window_end, mut count): (Option<Span>, u32) = (None, 0);

    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let start = tokio::time::Instant::now();
    for i in 0..25u32 {
        tokio::time::sleep_until(start + Duration::from_millis(100) * i).await;

        let (got, at) = timed(sessions.get(&active)).await;
        let got = got.unwrap().is_some();
        let model = active_end.map_or(Some(false), |end| end.alive_at(at));
        tallies
            .entry("active session")
            .or_default()
            .observe("active session", model, got, at);
        // A read refreshes the idle timeout, capped at the absolute deadline.
        active_end = got.then(|| at.plus(idle).min(absolute_end));

        let (exists, at) = timed(async { server.command(&["EXISTS", &idle_key]).unwrap() }).await;
        let exists = exists == Reply::Integer(1);
        tallies.entry("idle session").or_default().observe(
            "idle session",
            idle_end.alive_at(at),
            exists,
            at,
        );

        let (status, at) = timed(tokens.lookup("short-lived")).await;
        let valid = matches!(status.unwrap(), TokenStatus::Valid(_));
        tallies
            .entry("token")
            .or_default()
            .observe("token", token_end.alive_at(at), valid, at);

        let (d, at) = timed(limiter.check("192.0.2.50", "signin")).await;
        let d = d.unwrap();
        let new_window = window_end.map_or(Some(true), |end| end.alive_at(at).map(|alive| !alive));
        // Too close to the reset: adopt Redis's view (a fresh window has limit - 1 remaining).
        let starts = new_window.unwrap_or(d.allowed && d.remaining == limit - 1);
        if starts {
            count = 1;
            window_end = Some(at.plus(window));
        } else {
            count += 1;
        }
        let model = new_window.map(|_| count <= limit);
        tallies
            .entry("fixed window")
            .or_default()
            .observe("fixed window", model, d.allowed, at);
        assert!(d.degraded.is_none(), "{d:?}");
    }
    println!("expiry observations per item: {tallies:?}");
    for (name, t) in &tallies {
        assert!(
            t.too_close <= 3,
            "{name}: {t:?} — too many observations too close to call"
        );
    }
}
