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

use cache::ratelimit::Degraded;
use cache::{
    Claims, IpPolicy, KeySchema, NewSession, RateLimiter, SessionConfig, SessionStore, TokenCache,
    TokenStatus,
};
use goose::prelude::*;
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::clock::ServerClock;
use super::invariants::Invariants;
use super::keyspace::{Keyspace, TokenSlot};
use super::pacing::Pacer;
use super::record::{Outcome, Recorder};
use crate::error::{Error, Result};
use crate::scenario::{KeyspaceConfig, Op, Scenario};

/// Everything the users share. Built once per run.
pub(crate) struct Workload {
    /// The stores on each of the run's connections (`load.connections`, at least one); user `i`
    /// uses lane `i % lanes`.
    pub(crate) lanes: Vec<Stores>,
    pub(crate) keyspace: Keyspace,
    pub(crate) recorder: Recorder,
    pub(crate) invariants: Invariants,
    /// The command's cancellation (Ctrl-C): users stop at their next step.
    pub(crate) cancel: CancellationToken,
    /// Redis's clock, for judging what Redis decides by its clock (the sliding window).
    pub(crate) clock: Arc<ServerClock>,
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
    /// Which of [`Workload::lanes`] this user sends on.
    lane: usize,
}

/// Why an op failed: the store said so, or the limiter decided without Redis.
#[derive(Debug)]
enum OpError {
    Store(cache::Error),
    /// A fail-open or fail-closed decision: Redis did not answer the limiter.
    Degraded(Degraded),
}

impl From<cache::Error> for OpError {
    fn from(e: cache::Error) -> Self {
        OpError::Store(e)
    }
}

impl OpError {
    fn kind(&self) -> cache::ErrorKind {
        match self {
            OpError::Store(e) => e.kind(),
            OpError::Degraded(d) => d.kind(),
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Store(e) => e.fmt(f),
            OpError::Degraded(Degraded::FailedOpen { cause, .. }) => {
                write!(f, "rate limit decided without Redis (failed open): {cause}")
            }
            OpError::Degraded(Degraded::FailedClosed { cause, .. }) => {
                write!(
                    f,
                    "rate limit decided without Redis (failed closed): {cause}"
                )
            }
        }
    }
}

type OpResult<T> = std::result::Result<T, OpError>;

/// What one op ended as.
struct Done {
    op: Op,
    outcome: Outcome,
    error: Option<(cache::ErrorKind, String)>,
}

fn done(op: Op, r: OpResult<Outcome>) -> Done {
    match r {
        Ok(outcome) => Done {
            op,
            outcome,
            error: None,
        },
        Err(e) => Done {
            op,
            outcome: Outcome::Error,
            error: Some((e.kind(), e.to_string())),
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The stores for `s` on `redis`, with the scenario's key prefix, timeouts and rules.
pub(crate) struct Stores {
    pub(crate) sessions: SessionStore,
    pub(crate) tokens: TokenCache,
    pub(crate) limiter: RateLimiter,
}

impl Stores {
    pub(crate) fn new(s: &Scenario, redis: &cache::Redis) -> Result<Stores> {
        let k = &s.keyspace;
        let keys = schema(k)?;
        Ok(Stores {
            sessions: session_store(redis, k)?,
            tokens: TokenCache::new(redis.clone(), keys.clone()),
            limiter: RateLimiter::new(
                redis.clone(),
                keys,
                s.ratelimit.resolved_rules(),
                s.ratelimit.failure_mode,
                IpPolicy::default(),
            )
            .map_err(|e| Error::usage(format!("ratelimit: {e}")))?,
        })
    }
}

/// The key schema of the scenario's prefix.
pub(crate) fn schema(k: &KeyspaceConfig) -> Result<KeySchema> {
    KeySchema::new(&k.prefix).map_err(|e| Error::usage(format!("keyspace.prefix: {e}")))
}

/// The session store with the scenario's timeouts and a value limit that fits its payloads.
pub fn session_store(redis: &cache::Redis, k: &KeyspaceConfig) -> Result<SessionStore> {
    SessionStore::new(
        redis.clone(),
        schema(k)?,
        SessionConfig {
            idle_timeout: k.session_idle_timeout.0,
            absolute_lifetime: k.session_absolute_lifetime.0,
            max_value_bytes: k.payload.max() + 4096,
        },
    )
    .map_err(|e| Error::usage(format!("keyspace: {e}")))
}

/// The session a login writes: user, IP, agent, the authenticated flag, e-mail, MFA state and
/// the scenario's application payload. Seeding and the capacity measurement write the same shape.
pub fn login_session(user_id: &str, ip: &str, payload: &str) -> NewSession {
    let data = BTreeMap::from([
        ("authenticated".to_string(), serde_json::Value::Bool(true)),
        ("email".into(), format!("{user_id}@example.test").into()),
        ("mfa".into(), "none".into()),
        ("data".into(), payload.into()),
    ]);
    NewSession {
        user_id: user_id.to_string(),
        client_ip: Some(ip.to_string()),
        user_agent: Some("loadgen".into()),
        data,
    }
}

/// The claims loadgen caches for a user's access token.
pub(crate) fn claims(user_id: String, exp: u64) -> Claims {
    Claims {
        user_id,
        client_id: "loadgen".into(),
        scope: "openid profile".into(),
        exp,
    }
}

pub(crate) struct WorkloadParts {
    pub(crate) lanes: Vec<Stores>,
    pub(crate) keyspace: Keyspace,
    pub(crate) weights: [(Op, u32); 7],
    pub(crate) rate: Option<f64>,
    pub(crate) users: u32,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) inject_delay: Option<Duration>,
    pub(crate) seed: u64,
    pub(crate) cancel: CancellationToken,
    pub(crate) clock: Arc<ServerClock>,
}

impl Workload {
    /// The stores on each connection in `redis` (one lane each) and an empty keyspace for
    /// scenario `s` (nothing written yet).
    pub(crate) fn for_scenario(
        s: &Scenario,
        redis: &[cache::Redis],
        inject_delay: Option<Duration>,
        cancel: CancellationToken,
    ) -> Result<Workload> {
        let lanes = redis
            .iter()
            .map(|r| Stores::new(s, r))
            .collect::<Result<Vec<_>>>()?;
        let mut rng = SmallRng::seed_from_u64(s.seed);
        Workload::new(WorkloadParts {
            lanes,
            keyspace: Keyspace::new(&s.keyspace, &mut rng),
            weights: s.mix.weights(),
            rate: s.load.rate,
            users: s.load.users,
            warmup: s.load.warmup.0,
            duration: s.load.duration.0,
            inject_delay,
            seed: s.seed,
            cancel,
            clock: Arc::new(ServerClock::default()),
        })
    }

    pub(crate) fn new(p: WorkloadParts) -> Result<Workload> {
        let mix = WeightedIndex::new(p.weights.iter().map(|(_, w)| *w))
            .map_err(|e| Error::usage(format!("mix: {e}")))?;
        if p.lanes.is_empty() {
            return Err(Error::Broken("a workload without a connection".into()));
        }
        Ok(Workload {
            lanes: p.lanes,
            keyspace: p.keyspace,
            recorder: Recorder::new(p.duration),
            invariants: Invariants::default(),
            cancel: p.cancel,
            clock: p.clock,
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
        UserState {
            rng,
            pacer,
            lane: index % self.lanes.len(),
        }
    }

    /// The stores on the run's first connection: seeding, checks and anything outside the load.
    pub(crate) fn stores(&self) -> &Stores {
        &self.lanes[0]
    }

    /// The operations, sent on connection `lane`.
    pub(crate) fn on_lane(&self, lane: usize) -> Ops<'_> {
        let s = &self.lanes[lane % self.lanes.len()];
        Ops {
            w: self,
            sessions: &s.sessions,
            tokens: &s.tokens,
            limiter: &s.limiter,
        }
    }

    /// The goose transaction body: wait for the schedule, do one op, record it.
    pub(crate) async fn step(self: Arc<Self>, user: &mut GooseUser) -> TransactionResult {
        // Goose clears its killswitch when an attack starts, so a Ctrl-C that came just before
        // would be forgotten: re-arm it from our own flag.
        if self.cancel.is_cancelled() {
            goose::trigger_killswitch("Ctrl-C");
            tokio::time::sleep(super::pacing::MAX_IDLE).await;
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
            let d = self.on_lane(st.lane).perform(op, &mut st.rng, sent).await;
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
            d.error.as_ref().map(|(k, m)| (*k, m.as_str())),
            completed,
        );
        let ok = d.outcome != Outcome::Error;
        user.record_custom_request_duration(
            "REDIS",
            d.op.name(),
            response,
            ok,
            None,
            d.error.as_ref().map(|(_, m)| m.as_str()),
        )
        .await?;
        if !ok {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// The operations of one user, on the stores of its connection ([`Workload::on_lane`]); the rest of
/// the workload (keyspace, recorder, invariants) is shared, reached through `Deref`.
pub(crate) struct Ops<'a> {
    w: &'a Workload,
    sessions: &'a SessionStore,
    tokens: &'a TokenCache,
    limiter: &'a RateLimiter,
}

impl std::ops::Deref for Ops<'_> {
    type Target = Workload;
    fn deref(&self) -> &Workload {
        self.w
    }
}

impl Ops<'_> {
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
            Op::TokenRefresh => self.token_refresh(a, rng, sent).await,
            Op::Logout => self.logout(a, rng).await,
            Op::Ratelimit => self.ratelimit(rng, sent).await,
            Op::LogoutEverywhere => self.logout_everywhere(a).await,
        };
        done(op, r)
    }

    /// Rate-limit check for `(ip, endpoint)` that also feeds the over-admission checker.
    /// `Err` for a degraded (fail-open/closed) decision: Redis did not answer.
    async fn check(&self, ip: (u32, &str), endpoint: &str, sent: Instant) -> OpResult<bool> {
        let d = self.limiter.check(ip.1, endpoint).await?;
        if let Some(deg) = d.degraded {
            self.invariants.degraded_decision(d.allowed);
            return Err(OpError::Degraded(deg));
        }
        if let Some(rule) = self.limiter.rule(endpoint) {
            self.invariants.rate_limit_decision(
                (ip.0, endpoint),
                rule,
                &d,
                (sent, Instant::now()),
                self.clock.now(),
            );
        }
        Ok(d.allowed)
    }

    async fn login(&self, a: usize, rng: &mut SmallRng, sent: Instant) -> OpResult<Outcome> {
        let ks = &self.keyspace;
        let (ip_index, ip) = ks.pick_ip(rng);
        if !self.check((ip_index, &ip), "signin", sent).await? {
            return Ok(Outcome::Denied);
        }
        let user_id = ks.user_id(a);
        let create_sent = Instant::now();
        let (id, _) = self
            .sessions
            .create(login_session(&user_id, &ip, ks.payload(rng)))
            .await?;
        ks.install_session(a, id, create_sent);
        let token = self.issue_token(a, rng).await?;
        ks.set_token(a, token);
        Ok(Outcome::Ok)
    }

    /// Puts a fresh access token for the account; the caller installs it.
    pub(crate) async fn issue_token(
        &self,
        a: usize,
        rng: &mut SmallRng,
    ) -> cache::Result<TokenSlot> {
        let token = Keyspace::new_token(rng);
        let exp = unix_now() + self.keyspace.token_ttl.as_secs();
        self.tokens
            .put(&token, &claims(self.keyspace.user_id(a), exp))
            .await?;
        Ok(TokenSlot { token, exp })
    }

    async fn page_view(&self, a: usize, rng: &mut SmallRng, sent: Instant) -> OpResult<Outcome> {
        Ok(match self.read_session(a, rng, sent).await? {
            Some(true) => Outcome::Ok,
            _ => Outcome::Miss,
        })
    }

    /// Reads one of the account's sessions (refreshing its idle timeout) and judges a miss against
    /// the model: `None` if it holds none, `Some(found)` otherwise.
    async fn read_session(
        &self,
        a: usize,
        rng: &mut SmallRng,
        sent: Instant,
    ) -> OpResult<Option<bool>> {
        let ks = &self.keyspace;
        let Some((slot, s)) = ks.pick_session(a, rng) else {
            return Ok(None);
        };
        let found = self.sessions.get(&s.id).await?.is_some();
        // Judged while still in its slot: a concurrent logout of the same session is not a loss.
        if ks.should_be_alive(a, slot, &s, Instant::now()) {
            self.invariants.sessions_judged(1, u64::from(!found));
        }
        if found {
            ks.refreshed(a, slot, s.generation, sent);
        } else {
            ks.forget_session(a, slot, s.generation);
        }
        Ok(Some(found))
    }

    async fn api_call(&self, a: usize, rng: &mut SmallRng, sent: Instant) -> OpResult<Outcome> {
        let ks = &self.keyspace;
        if rng.random::<f64>() < ks.revoked_probe
            && let Some((token, revoked_at)) = ks.pick_revoked(rng)
        {
            let status = self.tokens.lookup(&token).await?;
            // A lookup sent before the revocation completed may legitimately see it valid.
            if sent > revoked_at {
                self.invariants
                    .revoked_token_probed(matches!(status, TokenStatus::Valid(_)));
            }
            return Ok(Outcome::Ok);
        }
        let Some(t) = ks.token(a) else {
            return Ok(Outcome::Miss);
        };
        let status = self.tokens.lookup(&t.token).await?;
        let live = t.exp > unix_now() + 1;
        match status {
            TokenStatus::Valid(_) => {
                self.invariants.token_looked_up(false);
                Ok(Outcome::Ok)
            }
            // Revoked by a concurrent logout or refresh of the same account.
            TokenStatus::Revoked => Ok(Outcome::Miss),
            TokenStatus::Unknown => {
                if live {
                    self.invariants.token_looked_up(true);
                }
                Ok(Outcome::Miss)
            }
        }
    }

    async fn revoke(&self, t: TokenSlot) -> OpResult<()> {
        self.tokens.revoke(&t.token, Some(t.exp)).await?;
        self.keyspace.revoked(t.token, Instant::now());
        Ok(())
    }

    /// A token refresh needs the user's session alive (as the server checks it), then swaps the
    /// access token: put the new one, revoke the old one.
    async fn token_refresh(
        &self,
        a: usize,
        rng: &mut SmallRng,
        sent: Instant,
    ) -> OpResult<Outcome> {
        if self.read_session(a, rng, sent).await? == Some(false) {
            return Ok(Outcome::Miss);
        }
        let old = self.keyspace.token(a);
        let new = self.issue_token(a, rng).await?;
        self.keyspace.set_token(a, new);
        if let Some(old) = old {
            self.revoke(old).await?;
        }
        Ok(Outcome::Ok)
    }

    /// Sign-out: destroy one session, revoke the token. A session the model held alive that the
    /// destroy did not find was lost.
    async fn logout(&self, a: usize, rng: &mut SmallRng) -> OpResult<Outcome> {
        let ks = &self.keyspace;
        let session = ks.take_session(a, rng);
        let token = ks.take_token(a);
        if let Some(s) = session {
            let existed = self.sessions.destroy(&s.id).await?;
            if ks.expected_alive(a, &s, Instant::now()) {
                self.invariants.sessions_judged(1, u64::from(!existed));
            }
        }
        if let Some(t) = token {
            self.revoke(t).await?;
        }
        Ok(Outcome::Ok)
    }

    /// Log out everywhere: every session of the user, those in use and those left behind by
    /// devices that signed in again. Fewer destroyed than the model knew certainly alive means
    /// sessions were lost (a lower bound: a login racing the call can hide one).
    async fn logout_everywhere(&self, a: usize) -> OpResult<Outcome> {
        let ks = &self.keyspace;
        let purge = ks.begin_purge(a);
        let r = self
            .sessions
            .destroy_all_for_user(&self.keyspace.user_id(a))
            .await;
        let completed = Instant::now();
        let alone = ks.end_purge(a, &purge, completed);
        let destroyed = r? as u64;
        if alone {
            let certain = purge.certainly_alive(completed);
            self.invariants
                .sessions_judged(certain, certain.saturating_sub(destroyed));
        }
        if let Some(t) = purge.token {
            self.revoke(t).await?;
        }
        Ok(Outcome::Ok)
    }

    async fn ratelimit(&self, rng: &mut SmallRng, sent: Instant) -> OpResult<Outcome> {
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
}
