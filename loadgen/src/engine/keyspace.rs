//! What the simulated OAuth server remembers between requests: for each account, the sessions its
//! browsers hold and its current access token; plus a ring of recently revoked tokens.
//!
//! This is the "client side" of the stores. It is what makes the invariants checkable: a session
//! we created and kept using must still be there (else it was lost), a token we revoked must never
//! validate again. Memory is bounded by the keyspace size (one slot per session, one token per
//! account, a fixed-size revoked ring), never by run length.
//!
//! Concurrency: many goose users act on the same accounts. Every change to a slot is made *here
//! first* and only then sent to Redis (a logout empties the slot before `DEL`), and each slot
//! carries a generation. A `page_view` that finds its session missing counts it as lost only if
//! the slot still holds the same generation afterwards, so a concurrent logout is never mistaken
//! for data loss. One `std::sync::Mutex` per account: critical sections are a few field copies,
//! never held across an `.await`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache::SessionId;
use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution as _, Normal, Zipf};

use crate::scenario::{Distribution, KeyspaceConfig, Payload, SliceStart};

/// A session this account holds, as the server remembers it.
#[derive(Clone, Debug)]
pub(crate) struct SessionSlot {
    pub(crate) id: SessionId,
    /// When the create that made it was *sent* (the absolute deadline is at least this + lifetime).
    pub(crate) created: Instant,
    /// When the last successful create/get was *sent* (the idle deadline is at least this + idle).
    pub(crate) refreshed: Instant,
    pub(crate) generation: u64,
}

impl SessionSlot {
    fn lifetime(&self) -> Lifetime {
        Lifetime {
            created: self.created,
            refreshed: self.refreshed,
        }
    }
}

/// The account's current access token. The token itself is a secret: never formatted.
#[derive(Clone)]
pub(crate) struct TokenSlot {
    pub(crate) token: String,
    /// Expiry, Unix seconds.
    pub(crate) exp: u64,
}

/// When a session was created and last refreshed: enough to know its deadlines.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lifetime {
    created: Instant,
    refreshed: Instant,
}

#[derive(Default)]
struct Account {
    sessions: Vec<Option<SessionSlot>>,
    next_slot: usize,
    token: Option<TokenSlot>,
    /// Sessions of devices that signed in again: replaced in their slot, never read again, alive in
    /// Redis until they expire — a log-out-everywhere must still find them.
    abandoned: Vec<Lifetime>,
    /// "Log out everywhere" calls in flight: they delete whatever the user's index lists when
    /// they read it, including sessions a concurrent login just created.
    purges: u32,
    /// Counts purges begun, so one can tell whether another began while it ran.
    purge_epoch: u64,
    /// When the last of them completed; sessions created before it may have been swept.
    last_purge_end: Option<Instant>,
}

/// A "log out everywhere" in flight: what the model knew of the user when it began.
pub(crate) struct Purge {
    pub(crate) token: Option<TokenSlot>,
    lifetimes: Vec<Lifetime>,
    epoch: u64,
    alone: bool,
    idle: Duration,
    absolute: Duration,
}

impl Purge {
    /// Sessions certainly alive when the purge completed at `completed` (not near a deadline).
    pub(crate) fn certainly_alive(&self, completed: Instant) -> u64 {
        self.lifetimes
            .iter()
            .filter(|l| completed + DEADLINE_MARGIN < deadline(l, self.idle, self.absolute))
            .count() as u64
    }
}

fn deadline(l: &Lifetime, idle: Duration, absolute: Duration) -> Instant {
    (l.refreshed + idle).min(l.created + absolute)
}

/// Chooses an index in `0..n` according to a [`Distribution`].
#[derive(Clone, Debug)]
pub(crate) enum Picker {
    Uniform(usize),
    Zipf(Zipf<f64>, usize),
    Gaussian(Normal<f64>, usize),
}

impl Picker {
    pub(crate) fn new(d: Distribution, n: usize) -> Picker {
        let n = n.max(1);
        match d {
            Distribution::Uniform => Picker::Uniform(n),
            Distribution::Zipf(s) => match Zipf::new(n as f64, s) {
                Ok(z) => Picker::Zipf(z, n),
                Err(_) => Picker::Uniform(n),
            },
            Distribution::Gaussian(f) => match Normal::new(n as f64 / 2.0, f * n as f64) {
                Ok(g) => Picker::Gaussian(g, n),
                Err(_) => Picker::Uniform(n),
            },
        }
    }

    pub(crate) fn pick(&self, rng: &mut SmallRng) -> usize {
        match self {
            Picker::Uniform(n) => rng.random_range(0..*n),
            // Rank 1 is the hottest; rank k maps to index k-1.
            Picker::Zipf(z, n) => (z.sample(rng) as usize).clamp(1, *n) - 1,
            Picker::Gaussian(g, n) => (g.sample(rng).round().max(0.0) as usize).min(n - 1),
        }
    }
}

/// Tokens revoked during the run, kept so `api_call` can present them again.
const REVOKED_RING: usize = 4096;

/// How close to a deadline a session may be before a miss is no longer counted as lost: covers
/// clock granularity and a server clock slightly ahead of ours.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

pub(crate) struct Keyspace {
    accounts: Vec<Mutex<Account>>,
    revoked: Mutex<VecDeque<(String, Instant)>>,
    generation: AtomicU64,
    account_picker: Picker,
    ip_picker: Picker,
    endpoints: Vec<String>,
    idle: Duration,
    absolute: Duration,
    payload: Payload,
    /// Random text that payloads are sliced from, so building one costs no randomness.
    payload_source: String,
    pub(crate) token_ttl: Duration,
    pub(crate) revoked_probe: f64,
    /// This process's slice of the keyspace (a scale-out worker's): account `a` is user
    /// `u{accounts + a}`, IP index `i` is address `client_ips + i`, so workers never share a key.
    slice_from: SliceStart,
}

impl Keyspace {
    pub(crate) fn new(cfg: &KeyspaceConfig, rng: &mut SmallRng) -> Keyspace {
        let per = cfg.sessions_per_user as usize;
        let accounts = (0..cfg.users)
            .map(|_| {
                Mutex::new(Account {
                    sessions: vec![None; per],
                    ..Account::default()
                })
            })
            .collect();
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let payload_source = (0..cfg.payload.max())
            .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
            .collect();
        Keyspace {
            accounts,
            revoked: Mutex::new(VecDeque::with_capacity(REVOKED_RING)),
            generation: AtomicU64::new(1),
            account_picker: Picker::new(cfg.distribution, cfg.users as usize),
            ip_picker: Picker::new(cfg.ip_distribution, cfg.client_ips as usize),
            endpoints: cfg.endpoints.clone(),
            idle: cfg.session_idle_timeout.0,
            absolute: cfg.session_absolute_lifetime.0,
            payload: cfg.payload,
            payload_source,
            token_ttl: cfg.token_ttl.0,
            revoked_probe: cfg.revoked_probe,
            slice_from: cfg.slice_from,
        }
    }

    pub(crate) fn accounts(&self) -> usize {
        self.accounts.len()
    }

    pub(crate) fn sessions_per_account(&self) -> usize {
        self.account(0).sessions.len()
    }

    pub(crate) fn pick_account(&self, rng: &mut SmallRng) -> usize {
        self.account_picker.pick(rng)
    }

    /// A client IP index and its text (RFC 2544 benchmark range, then RFC 3849 documentation
    /// IPv6): keys only, never addresses anything is sent to.
    pub(crate) fn pick_ip(&self, rng: &mut SmallRng) -> (u32, String) {
        let i = self.ip_picker.pick(rng) as u32;
        (i, ip_text(self.slice_from.client_ips + i))
    }

    /// An endpoint of the keyspace, uniformly.
    pub(crate) fn pick_endpoint(&self, rng: &mut SmallRng) -> Option<&str> {
        if self.endpoints.is_empty() {
            return None;
        }
        Some(&self.endpoints[rng.random_range(0..self.endpoints.len())])
    }

    /// The user id of account `a` (offset by this process's slice).
    pub(crate) fn user_id(&self, a: usize) -> String {
        format!("u{}", self.slice_from.accounts as usize + a)
    }

    pub(crate) fn payload(&self, rng: &mut SmallRng) -> &str {
        let len = match self.payload {
            Payload::Fixed(n) => n,
            Payload::Range { min, max } => rng.random_range(min..=max),
        };
        &self.payload_source[..len]
    }

    /// A fresh random access token (43 URL-safe characters, like a 256-bit opaque token).
    pub(crate) fn new_token(rng: &mut SmallRng) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..43)
            .map(|_| B64[rng.random_range(0..64)] as char)
            .collect()
    }

    fn account(&self, a: usize) -> std::sync::MutexGuard<'_, Account> {
        // A poisoned lock only means another user panicked mid-update; the data is still usable.
        self.accounts[a].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new session in the account's next slot (round robin: the oldest device is replaced,
    /// its session left to expire in Redis as an abandoned browser's would).
    pub(crate) fn install_session(&self, a: usize, id: SessionId, sent: Instant) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let mut acct = self.account(a);
        let n = acct.sessions.len();
        let slot = acct.next_slot % n;
        acct.next_slot = (slot + 1) % n;
        let replaced = acct.sessions[slot].replace(SessionSlot {
            id,
            created: sent,
            refreshed: sent,
            generation,
        });
        let (idle, absolute) = (self.idle, self.absolute);
        acct.abandoned
            .retain(|l| sent < deadline(l, idle, absolute));
        if let Some(old) = replaced {
            acct.abandoned.push(old.lifetime());
        }
    }

    /// A random occupied session slot of the account.
    pub(crate) fn pick_session(
        &self,
        a: usize,
        rng: &mut SmallRng,
    ) -> Option<(usize, SessionSlot)> {
        let acct = self.account(a);
        let n = acct.sessions.len();
        let start = rng.random_range(0..n);
        (0..n)
            .map(|i| (start + i) % n)
            .find_map(|i| acct.sessions[i].clone().map(|s| (i, s)))
    }

    pub(crate) fn has_session(&self, a: usize) -> bool {
        self.account(a).sessions.iter().any(Option::is_some)
    }

    /// After a successful get sent at `sent`: the idle deadline moved.
    pub(crate) fn refreshed(&self, a: usize, slot: usize, generation: u64, sent: Instant) {
        if let Some(s) = self.account(a).sessions[slot].as_mut()
            && s.generation == generation
        {
            s.refreshed = sent;
        }
    }

    /// Whether a session missing at `completed` should have been alive: still in its slot, not
    /// possibly swept by a "log out everywhere", and neither its idle nor its absolute deadline (as
    /// known from the client side) was near.
    pub(crate) fn should_be_alive(
        &self,
        a: usize,
        slot: usize,
        s: &SessionSlot,
        completed: Instant,
    ) -> bool {
        let in_slot = self.account(a).sessions[slot]
            .as_ref()
            .is_some_and(|c| c.generation == s.generation);
        in_slot && self.expected_alive(a, s, completed)
    }

    /// Whether a session the caller took out of its slot (a logout) should have been alive at
    /// `completed`: no "log out everywhere" could have swept it, and no deadline was near.
    pub(crate) fn expected_alive(&self, a: usize, s: &SessionSlot, completed: Instant) -> bool {
        let acct = self.account(a);
        let unswept = acct.purges == 0 && acct.last_purge_end.is_none_or(|end| s.created > end);
        unswept && completed + DEADLINE_MARGIN < deadline(&s.lifetime(), self.idle, self.absolute)
    }

    /// Empties `slot` if it still holds `generation` (a session found gone is forgotten).
    pub(crate) fn forget_session(&self, a: usize, slot: usize, generation: u64) {
        let mut acct = self.account(a);
        if acct.sessions[slot]
            .as_ref()
            .is_some_and(|s| s.generation == generation)
        {
            acct.sessions[slot] = None;
        }
    }

    /// Empties a random occupied slot and returns its session (logout).
    pub(crate) fn take_session(&self, a: usize, rng: &mut SmallRng) -> Option<SessionSlot> {
        let (slot, _) = self.pick_session(a, rng)?;
        self.account(a).sessions[slot].take()
    }

    /// Starts a "log out everywhere": empties every slot, takes the token. Pair with [`Self::end_purge`].
    pub(crate) fn begin_purge(&self, a: usize) -> Purge {
        let mut acct = self.account(a);
        acct.purges += 1;
        acct.purge_epoch += 1;
        let swept_before = acct.last_purge_end;
        let mut lifetimes: Vec<Lifetime> = acct
            .sessions
            .iter_mut()
            .filter_map(|s| s.take().map(|s| s.lifetime()))
            .collect();
        lifetimes.append(&mut acct.abandoned);
        // A session created before an earlier purge ended may have been swept by it.
        lifetimes.retain(|l| swept_before.is_none_or(|end| l.created > end));
        Purge {
            token: acct.token.take(),
            lifetimes,
            epoch: acct.purge_epoch,
            alone: acct.purges == 1,
            idle: self.idle,
            absolute: self.absolute,
        }
    }

    /// The purge completed at `at`: forget sessions it may have swept. Returns whether it ran
    /// alone (no other "log out everywhere" of the user overlapped it), so its count can be judged.
    pub(crate) fn end_purge(&self, a: usize, purge: &Purge, at: Instant) -> bool {
        let mut acct = self.account(a);
        acct.purges = acct.purges.saturating_sub(1);
        acct.last_purge_end = Some(at);
        for slot in acct.sessions.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.created <= at) {
                *slot = None;
            }
        }
        acct.abandoned.retain(|l| l.created > at);
        purge.alone && acct.purge_epoch == purge.epoch
    }

    pub(crate) fn has_token(&self, a: usize) -> bool {
        self.account(a).token.is_some()
    }

    pub(crate) fn token(&self, a: usize) -> Option<TokenSlot> {
        self.account(a).token.clone()
    }

    pub(crate) fn set_token(&self, a: usize, t: TokenSlot) {
        self.account(a).token = Some(t);
    }

    pub(crate) fn take_token(&self, a: usize) -> Option<TokenSlot> {
        self.account(a).token.take()
    }

    /// Records a revocation that completed at `at`.
    pub(crate) fn revoked(&self, token: String, at: Instant) {
        let mut ring = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == REVOKED_RING {
            ring.pop_front();
        }
        ring.push_back((token, at));
    }

    /// A random revoked token and when its revocation completed.
    pub(crate) fn pick_revoked(&self, rng: &mut SmallRng) -> Option<(String, Instant)> {
        let ring = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if ring.is_empty() {
            return None;
        }
        ring.get(rng.random_range(0..ring.len())).cloned()
    }
}

fn ip_text(i: u32) -> String {
    if i < 1 << 17 {
        format!("198.{}.{}.{}", 18 + (i >> 16), (i >> 8) & 255, i & 255)
    } else {
        format!("2001:db8::{:x}:{:x}", i >> 16, i & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id() -> SessionId {
        SessionId::generate(4_102_444_800_000).unwrap() // deadline in 2100
    }

    #[test]
    fn pickers_stay_in_range_and_zipf_is_skewed() {
        let mut rng = SmallRng::seed_from_u64(7);
        for d in ["uniform", "zipf(1.1)", "gaussian(0.1)"] {
            let p = Picker::new(d.parse().unwrap(), 100);
            assert!((0..10_000).all(|_| p.pick(&mut rng) < 100), "{d}");
        }
        let z = Picker::new("zipf(1.2)".parse().unwrap(), 1000);
        let hot = (0..10_000).filter(|_| z.pick(&mut rng) < 10).count();
        assert!(hot > 3_000, "top 1% of accounts got {hot} of 10000 picks");
        let g = Picker::new("gaussian(0.05)".parse().unwrap(), 1000);
        let mid = (0..10_000)
            .filter(|_| (400..600).contains(&g.pick(&mut rng)))
            .count();
        assert!(mid > 9_000, "{mid}");
    }

    #[test]
    fn ips_are_distinct_and_parse() {
        let all: std::collections::HashSet<String> =
            [0, 1, 255, 256, 65_535, 65_536, 131_071, 131_072, 1_000_000]
                .map(ip_text)
                .into();
        assert_eq!(all.len(), 9);
        for ip in all {
            assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
        }
    }

    #[test]
    fn a_session_replaced_by_logout_is_not_counted_as_lost() {
        let cfg = KeyspaceConfig {
            users: 1,
            sessions_per_user: 2,
            ..KeyspaceConfig::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let ks = Keyspace::new(&cfg, &mut rng);
        let now = Instant::now();
        ks.install_session(0, id(), now);
        let (slot, s) = ks.pick_session(0, &mut rng).unwrap();
        assert!(ks.should_be_alive(0, slot, &s, now));
        assert!(ks.take_session(0, &mut rng).is_some());
        assert!(!ks.should_be_alive(0, slot, &s, now));
        assert!(!ks.should_be_alive(0, slot, &s, now + Duration::from_secs(7200)));
    }

    #[test]
    fn a_session_created_during_log_out_everywhere_is_not_counted_as_lost() {
        let cfg = KeyspaceConfig {
            users: 1,
            sessions_per_user: 1,
            ..KeyspaceConfig::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let ks = Keyspace::new(&cfg, &mut rng);
        let t0 = Instant::now();
        let purge = ks.begin_purge(0);
        // A concurrent login lands while the purge is in flight.
        ks.install_session(0, id(), t0);
        let (slot, s) = ks.pick_session(0, &mut rng).unwrap();
        assert!(!ks.should_be_alive(0, slot, &s, t0), "purge in flight");
        assert!(ks.end_purge(0, &purge, t0 + Duration::from_millis(1)));
        assert!(
            ks.pick_session(0, &mut rng).is_none(),
            "swept sessions are forgotten"
        );
        // A login after the purge is protected again.
        let later = t0 + Duration::from_millis(2);
        ks.install_session(0, id(), later);
        let (slot, s) = ks.pick_session(0, &mut rng).unwrap();
        assert!(ks.should_be_alive(0, slot, &s, later));
    }

    #[test]
    fn log_out_everywhere_expects_the_replaced_devices_too_and_only_when_alone() {
        let cfg = KeyspaceConfig {
            users: 1,
            sessions_per_user: 2,
            ..KeyspaceConfig::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let ks = Keyspace::new(&cfg, &mut rng);
        let t0 = Instant::now();
        // Three sign-ins on two slots: the first device's session is replaced, still alive.
        for _ in 0..3 {
            ks.install_session(0, id(), t0);
        }
        let purge = ks.begin_purge(0);
        let t1 = t0 + Duration::from_millis(5);
        assert!(ks.end_purge(0, &purge, t1));
        assert_eq!(purge.certainly_alive(t1), 3, "two in slots, one abandoned");
        // Near the idle deadline nothing is certain.
        let late = t0 + cfg.session_idle_timeout.0;
        assert_eq!(purge.certainly_alive(late), 0);
        // Two purges overlapping: neither can judge its count.
        ks.install_session(0, id(), t1);
        let first = ks.begin_purge(0);
        let second = ks.begin_purge(0);
        assert!(!ks.end_purge(0, &first, t1));
        assert!(!ks.end_purge(0, &second, t1));
    }
}
