//! The goose side: one scenario whose single transaction picks an operation by weight, performs
//! it against the stores, and records it — in goose (`record_custom_request_duration`, so goose's
//! report has every op) and in our [`Recorder`].
//!
//! Why one transaction that picks, rather than one goose transaction per op with goose weights:
//! goose runs a weighted transaction list as a fixed sequence per user, and pacing has to decide
//! *when* the next op starts regardless of which op it is. Picking inside lets the [`Pacer`] own
//! time and the scenario's weights own the mix.
//!
//! An op whose precondition is missing becomes a login: a `page_view`, `logout`, `api_call` or
//! `token_refresh` on an account that has no session (or token) signs in first, as a real user
//! would. The results report the ops actually performed.
//!
//! Every op awaits real Redis I/O; after an error (which can return without awaiting anything,
//! e.g. while the connection is down) the transaction yields, because a transaction that never
//! yields can freeze the whole attack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache::{Claims, NewSession, RateLimiter, SessionStore, TokenCache, TokenStatus};
use goose::prelude::*;
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::invariants::Invariants;
use crate::keyspace::{Keyspace, TokenSlot};
use crate::pacing::Pacer;
use crate::record::{Outcome, Recorder};
use crate::scenario::Op;

/// Everything the users share. Built once per run.
pub struct Workload {
    pub sessions: SessionStore,
    pub tokens: TokenCache,
    pub limiter: RateLimiter,
    pub keyspace: Keyspace,
    pub recorder: Recorder,
    pub invariants: Invariants,
    mix: WeightedIndex<u32>,
    interval: Option<Duration>,
    inject_delay: Option<Duration>,
    seed: u64,
    users: usize,
    warmup: Duration,
    started_users: AtomicUsize,
}

/// Per goose user state, kept in goose's session data (which must be `Clone`).
#[derive(Clone)]
struct UserState {
    rng: SmallRng,
    pacer: Pacer,
}

/// What one op ended as.
struct Done {
    op: Op,
    outcome: Outcome,
    error: Option<String>,
}

fn done(op: Op, r: Result<Outcome, cache::Error>) -> Done {
    match r {
        Ok(outcome) => Done {
            op,
            outcome,
            error: None,
        },
        Err(e) => Done {
            op,
            outcome: Outcome::Error,
            error: Some(e.to_string()),
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub struct WorkloadParts {
    pub sessions: SessionStore,
    pub tokens: TokenCache,
    pub limiter: RateLimiter,
    pub keyspace: Keyspace,
    pub weights: [(Op, u32); 7],
    pub rate: Option<f64>,
    pub users: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub inject_delay: Option<Duration>,
    pub seed: u64,
}

impl Workload {
    pub fn new(p: WorkloadParts) -> Result<Workload, String> {
        let mix = WeightedIndex::new(p.weights.iter().map(|(_, w)| *w))
            .map_err(|e| format!("mix: {e}"))?;
        Ok(Workload {
            sessions: p.sessions,
            tokens: p.tokens,
            limiter: p.limiter,
            keyspace: p.keyspace,
            recorder: Recorder::new(p.duration),
            invariants: Invariants::default(),
            mix,
            interval: Pacer::interval_for(p.rate, p.users),
            inject_delay: p.inject_delay,
            seed: p.seed,
            users: p.users as usize,
            warmup: p.warmup,
            started_users: AtomicUsize::new(0),
        })
    }

    /// Called once per goose user; the last one to start opens the measured window after warm-up.
    fn user_started(&self, index: usize) -> UserState {
        let mut rng = SmallRng::seed_from_u64(self.seed.wrapping_add(index as u64 * 0x9E37_79B9));
        let pacer = Pacer::new(self.interval, &mut rng);
        if self.started_users.fetch_add(1, Ordering::AcqRel) + 1 == self.users {
            self.recorder.window.open_at(Instant::now() + self.warmup);
        }
        UserState { rng, pacer }
    }

    /// The goose transaction body: wait for the schedule, do one op, record it.
    pub(crate) async fn step(self: Arc<Self>, user: &mut GooseUser) -> TransactionResult {
        // Goose clears its killswitch when an attack starts, so a Ctrl-C that came just before
        // would be forgotten: re-arm it from our own flag.
        if crate::run::interrupted() {
            goose::trigger_killswitch("Ctrl-C");
            tokio::time::sleep(crate::pacing::MAX_IDLE).await;
            return Ok(());
        }
        if user.get_session_data::<UserState>().is_none() {
            let st = self.user_started(user.weighted_users_index);
            user.set_session_data(st);
        }
        let (intended, sent, d) = {
            let st = user.get_session_data_unchecked_mut::<UserState>();
            let Some(intended) = st.pacer.due().await else {
                return Ok(());
            };
            let op = Op::ALL[self.mix.sample(&mut st.rng)];
            let sent = Instant::now();
            let d = self.perform(op, &mut st.rng, sent).await;
            if let Some(delay) = self.inject_delay {
                tokio::time::sleep(delay).await;
            }
            (intended, sent, d)
        };
        let completed = Instant::now();
        let service = completed.duration_since(sent);
        let response = completed.duration_since(intended.min(sent));
        self.recorder.record(
            d.op,
            service,
            response,
            d.outcome,
            d.error.as_deref(),
            completed,
        );
        let ok = d.outcome != Outcome::Error;
        user.record_custom_request_duration(
            "REDIS",
            d.op.name(),
            response,
            ok,
            None,
            d.error.as_deref(),
        )
        .await?;
        if !ok {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// Performs `op` for an account drawn from the distribution. An op that needs a session or a
    /// token goes to an account that has one (a few draws), else it becomes that account's login.
    async fn perform(&self, op: Op, rng: &mut SmallRng, sent: Instant) -> Done {
        let ks = &self.keyspace;
        let ready = |a: usize| match op {
            Op::PageView | Op::Logout => ks.has_session(a),
            Op::ApiCall | Op::TokenRefresh => ks.has_token(a),
            _ => true,
        };
        let mut a = ks.pick_account(rng);
        for _ in 0..4 {
            if ready(a) {
                break;
            }
            a = ks.pick_account(rng);
        }
        let op = if ready(a) { op } else { Op::Login };
        let r = match op {
            Op::Login => self.login(a, rng, sent).await,
            Op::PageView => self.page_view(a, rng, sent).await,
            Op::ApiCall => self.api_call(a, rng, sent).await,
            Op::TokenRefresh => self.token_refresh(a, rng).await,
            Op::Logout => self.logout(a, rng).await,
            Op::Ratelimit => self.ratelimit(rng, sent).await,
            Op::LogoutEverywhere => self.logout_everywhere(a).await,
        };
        done(op, r)
    }

    /// Rate-limit check for `(ip, endpoint)` that also feeds the over-admission checker.
    /// `Err` for a degraded (fail-open/closed) decision: Redis did not answer.
    async fn check(&self, ip: (u32, &str), endpoint: &str, sent: Instant) -> cache::Result<bool> {
        let d = self.limiter.check(ip.1, endpoint).await?;
        if let Some(deg) = &d.degraded {
            return Err(cache::Error::Command {
                kind: deg.kind(),
                source: redis::make_extension_error("DEGRADED".into(), Some(format!("{deg:?}"))),
                indeterminate: true,
            });
        }
        if let Some(rule) = self.limiter.rule(endpoint) {
            self.invariants
                .rate_limit_decision((ip.0, endpoint), rule, &d, sent, Instant::now());
        }
        Ok(d.allowed)
    }

    async fn login(&self, a: usize, rng: &mut SmallRng, sent: Instant) -> cache::Result<Outcome> {
        let ks = &self.keyspace;
        let (ip_index, ip) = ks.pick_ip(rng);
        if !self.check((ip_index, &ip), "signin", sent).await? {
            return Ok(Outcome::Denied);
        }
        let user_id = Keyspace::user_id(a);
        let data = BTreeMap::from([
            ("authenticated".to_string(), serde_json::Value::Bool(true)),
            (
                "email".to_string(),
                format!("{user_id}@example.test").into(),
            ),
            ("mfa".to_string(), "none".into()),
            ("data".to_string(), ks.payload(rng).into()),
        ]);
        let create_sent = Instant::now();
        let (id, _) = self
            .sessions
            .create(NewSession {
                user_id: user_id.clone(),
                client_ip: Some(ip),
                user_agent: Some("loadgen".into()),
                data,
            })
            .await?;
        ks.install_session(a, id, create_sent);
        let token = self.issue_token(a, rng).await?;
        ks.set_token(a, token);
        Ok(Outcome::Ok)
    }

    /// Puts a fresh access token for the account; the caller installs it.
    async fn issue_token(&self, a: usize, rng: &mut SmallRng) -> cache::Result<TokenSlot> {
        let token = Keyspace::new_token(rng);
        let exp = unix_now() + self.keyspace.token_ttl.as_secs();
        let claims = Claims {
            user_id: Keyspace::user_id(a),
            client_id: "loadgen".into(),
            scope: "openid profile".into(),
            exp,
        };
        self.tokens.put(&token, &claims).await?;
        Ok(TokenSlot { token, exp })
    }

    async fn page_view(
        &self,
        a: usize,
        rng: &mut SmallRng,
        sent: Instant,
    ) -> cache::Result<Outcome> {
        let ks = &self.keyspace;
        let Some((slot, s)) = ks.pick_session(a, rng) else {
            return Ok(Outcome::Miss);
        };
        match self.sessions.get(&s.id).await? {
            Some(_) => {
                ks.refreshed(a, slot, s.generation, sent);
                Ok(Outcome::Ok)
            }
            None => {
                if ks.should_be_alive(a, slot, &s, Instant::now()) {
                    self.invariants.lost_session();
                }
                ks.forget_session(a, slot, s.generation);
                Ok(Outcome::Miss)
            }
        }
    }

    async fn api_call(
        &self,
        a: usize,
        rng: &mut SmallRng,
        sent: Instant,
    ) -> cache::Result<Outcome> {
        let ks = &self.keyspace;
        if rng.random::<f64>() < ks.revoked_probe
            && let Some((token, revoked_at)) = ks.pick_revoked(rng)
        {
            let status = self.tokens.lookup(&token).await?;
            if matches!(status, TokenStatus::Valid(_)) && sent > revoked_at {
                self.invariants.revoked_token_validated();
            }
            return Ok(Outcome::Ok);
        }
        let Some(t) = ks.token(a) else {
            return Ok(Outcome::Miss);
        };
        match self.tokens.lookup(&t.token).await? {
            TokenStatus::Valid(_) => Ok(Outcome::Ok),
            // Revoked by a concurrent logout or refresh of the same account.
            TokenStatus::Revoked => Ok(Outcome::Miss),
            TokenStatus::Unknown => {
                if t.exp > unix_now() + 1 {
                    self.invariants.token_cache_miss();
                }
                Ok(Outcome::Miss)
            }
        }
    }

    async fn revoke(&self, t: TokenSlot) -> cache::Result<()> {
        self.tokens.revoke(&t.token, Some(t.exp)).await?;
        self.keyspace.revoked(t.token, Instant::now());
        Ok(())
    }

    async fn token_refresh(&self, a: usize, rng: &mut SmallRng) -> cache::Result<Outcome> {
        let old = self.keyspace.token(a);
        let new = self.issue_token(a, rng).await?;
        self.keyspace.set_token(a, new);
        if let Some(old) = old {
            self.revoke(old).await?;
        }
        Ok(Outcome::Ok)
    }

    async fn logout(&self, a: usize, rng: &mut SmallRng) -> cache::Result<Outcome> {
        let session = self.keyspace.take_session(a, rng);
        let token = self.keyspace.take_token(a);
        if let Some(s) = session {
            self.sessions.destroy(&s.id).await?;
        }
        if let Some(t) = token {
            self.revoke(t).await?;
        }
        Ok(Outcome::Ok)
    }

    async fn logout_everywhere(&self, a: usize) -> cache::Result<Outcome> {
        let token = self.keyspace.begin_purge(a);
        let r = self
            .sessions
            .destroy_all_for_user(&Keyspace::user_id(a))
            .await;
        self.keyspace.end_purge(a, Instant::now());
        r?;
        if let Some(t) = token {
            self.revoke(t).await?;
        }
        Ok(Outcome::Ok)
    }

    async fn ratelimit(&self, rng: &mut SmallRng, sent: Instant) -> cache::Result<Outcome> {
        let (ip_index, ip) = self.keyspace.pick_ip(rng);
        let Some(endpoint) = self.keyspace.pick_endpoint(rng) else {
            return Ok(Outcome::Miss);
        };
        let allowed = self.check((ip_index, &ip), endpoint, sent).await?;
        Ok(if allowed {
            Outcome::Ok
        } else {
            Outcome::Denied
        })
    }

    /// Creates every account's sessions and token before the run, `concurrency` at a time, so the
    /// measured ops work on a realistic, fully populated keyspace. Stops early when `stop` says so.
    pub async fn seed(
        &self,
        concurrency: usize,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<(usize, usize), String> {
        use futures_util::stream::{self, StreamExt};
        let per = self.keyspace.sessions_per_account();
        let total = self.keyspace.accounts() * per;
        let mut results = stream::iter(0..total)
            .map(|i| async move {
                let a = i / per;
                let mut rng =
                    SmallRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x2545_F491));
                let user_id = Keyspace::user_id(a);
                let data =
                    BTreeMap::from([("data".to_string(), self.keyspace.payload(&mut rng).into())]);
                let sent = Instant::now();
                let (id, _) = self
                    .sessions
                    .create(NewSession {
                        user_id,
                        data,
                        ..NewSession::default()
                    })
                    .await?;
                self.keyspace.install_session(a, id, sent);
                if i.is_multiple_of(per) {
                    let t = self.issue_token(a, &mut rng).await?;
                    self.keyspace.set_token(a, t);
                }
                Ok::<_, cache::Error>(())
            })
            .buffer_unordered(concurrency);
        let mut done = 0;
        while let Some(r) = results.next().await {
            r.map_err(|e| format!("seeding the keyspace failed: {e}"))?;
            done += 1;
            if stop() {
                break;
            }
        }
        Ok((done, done.div_ceil(per)))
    }
}
