//! The scenario's types: what a scenario file deserializes into, with the defaults of the OAuth
//! server it simulates, and the typed flag [`Override`]s applied over it.

use std::collections::BTreeMap;
use std::time::Duration;

use cache::{Algorithm, FailureMode};
use serde::{Deserialize, Serialize};

use super::values::{Distribution, Dur, Payload};

/// One operation of the OAuth server, as the load generator performs it against the stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Sign-in: rate-limit check on `signin` for the client IP, session create, token put.
    Login,
    /// A page behind the session cookie: session get (refreshes the idle timeout).
    PageView,
    /// A resource-server call: access-token validation (one `GET`).
    ApiCall,
    /// Token refresh: put the new access token, revoke the old one.
    TokenRefresh,
    /// Sign-out: session destroy and token revoke.
    Logout,
    /// A rate-limit check for one of the keyspace's endpoints.
    Ratelimit,
    /// "Log out everywhere": destroy every session of the user.
    LogoutEverywhere,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Login,
        Op::PageView,
        Op::ApiCall,
        Op::TokenRefresh,
        Op::Logout,
        Op::Ratelimit,
        Op::LogoutEverywhere,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::PageView => "page_view",
            Op::ApiCall => "api_call",
            Op::TokenRefresh => "token_refresh",
            Op::Logout => "logout",
            Op::Ratelimit => "ratelimit",
            Op::LogoutEverywhere => "logout_everywhere",
        }
    }

    pub fn index(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in the results directory; defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of every random choice (accounts, IPs, payload sizes), so two runs do the same work.
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub load: Load,
    #[serde(default)]
    pub keyspace: KeyspaceConfig,
    pub mix: Mix,
    #[serde(default)]
    pub ratelimit: RateLimitConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub slo: Slo,
}

fn default_seed() -> u64 {
    1
}

/// How much load, for how long.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Concurrent virtual clients (goose users); each runs one operation at a time.
    pub users: u32,
    /// Clients started per second. Default: all within one second.
    #[serde(default)]
    pub ramp: Option<f64>,
    /// Run this long after every client has started, before measuring.
    #[serde(default)]
    pub warmup: Dur,
    /// Measured time, after the ramp and the warm-up.
    pub duration: Dur,
    /// Target operations per second across all clients (open model). Without it each client
    /// starts its next operation as soon as the last one finished (closed model).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Connections to Redis the clients share, each multiplexed (one socket, one I/O task);
    /// client `i` sends on connection `i % connections`. Default [`DEFAULT_CONNECTIONS`]: on
    /// one host more connections cost loadgen and Redis more CPU per operation (fewer commands
    /// batched per write); raise it when one connection's I/O task is the limit (a generator
    /// with many cores).
    #[serde(default)]
    pub connections: Option<u32>,
}

/// [`Load::connections`] when the scenario does not say.
pub const DEFAULT_CONNECTIONS: u32 = 1;

/// The most connections a scenario may ask for.
pub const MAX_CONNECTIONS: u32 = 256;

impl Load {
    /// Connections the load uses: the scenario's, or [`DEFAULT_CONNECTIONS`].
    pub fn connections(&self) -> u32 {
        self.connections.unwrap_or(DEFAULT_CONNECTIONS)
    }

    pub fn ramp_per_sec(&self) -> f64 {
        self.ramp.unwrap_or(self.users.max(1) as f64)
    }
}

/// The data the simulated OAuth server works on. Unset fields take [`Default`]'s values.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyspaceConfig {
    /// Key prefix. Not the server's `authority`, so a run never touches real sessions.
    pub prefix: String,
    /// Number of accounts (user ids).
    pub users: u32,
    /// Sessions each account keeps open (devices); all are created before the run.
    pub sessions_per_user: u32,
    /// Distinct client IPs (rate-limit keys).
    pub client_ips: u32,
    /// Endpoints the `ratelimit` operation checks; each needs a rule.
    pub endpoints: Vec<String>,
    /// How accounts are chosen.
    pub distribution: Distribution,
    /// How client IPs (and endpoints) are chosen.
    pub ip_distribution: Distribution,
    /// Bytes of application data per session.
    pub payload: Payload,
    pub session_idle_timeout: Dur,
    pub session_absolute_lifetime: Dur,
    /// Access-token lifetime (the token cache entry's TTL).
    pub token_ttl: Dur,
    /// Fraction of `api_call`s that present a token revoked earlier in the run (must be refused).
    pub revoked_probe: f64,
    /// Where this process's accounts and client IPs start: 0 for a whole run; a scale-out worker's
    /// slice of the keyspace (set by `--worker`, never read from a file, never written back).
    #[serde(skip)]
    pub slice_from: SliceStart,
}

/// The first account id and client IP index of a keyspace slice (see [`KeyspaceConfig::slice_from`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceStart {
    pub accounts: u32,
    pub client_ips: u32,
}

impl Default for KeyspaceConfig {
    fn default() -> Self {
        KeyspaceConfig {
            prefix: "loadgen".into(),
            users: 10_000,
            sessions_per_user: 1,
            client_ips: 1_000,
            endpoints: vec!["authorize".into(), "token".into()],
            distribution: Distribution::Uniform,
            ip_distribution: Distribution::Uniform,
            payload: Payload::default(),
            session_idle_timeout: Dur(Duration::from_secs(3600)),
            session_absolute_lifetime: Dur(Duration::from_secs(24 * 3600)),
            token_ttl: Dur(Duration::from_secs(3600)),
            revoked_probe: 0.05,
            slice_from: SliceStart::default(),
        }
    }
}

/// Operation weights. An operation left out has weight 0.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub login: u32,
    pub page_view: u32,
    pub api_call: u32,
    pub token_refresh: u32,
    pub logout: u32,
    pub ratelimit: u32,
    pub logout_everywhere: u32,
}

impl Mix {
    /// `(op, weight)` for every op, in [`Op::ALL`] order.
    pub fn weights(&self) -> [(Op, u32); 7] {
        [
            (Op::Login, self.login),
            (Op::PageView, self.page_view),
            (Op::ApiCall, self.api_call),
            (Op::TokenRefresh, self.token_refresh),
            (Op::Logout, self.logout),
            (Op::Ratelimit, self.ratelimit),
            (Op::LogoutEverywhere, self.logout_everywhere),
        ]
    }

    /// The ops with a weight above 0, in [`Op::ALL`] order.
    pub fn weighted_ops(&self) -> Vec<Op> {
        self.weights()
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(o, _)| *o)
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.weights().iter().map(|(_, w)| *w as u64).sum()
    }
}

/// Rate-limit rules; endpoints not listed keep the server's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub failure_mode: FailureMode,
    pub rules: BTreeMap<String, RuleConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub limit: u32,
    pub window: Dur,
    #[serde(default)]
    pub algorithm: Algorithm,
}

impl RateLimitConfig {
    /// The server's default rules with this scenario's rules on top.
    pub fn resolved_rules(&self) -> BTreeMap<String, cache::Rule> {
        let mut rules = cache::ratelimit::default_rules();
        for (endpoint, r) in &self.rules {
            rules.insert(
                endpoint.clone(),
                cache::Rule {
                    limit: r.limit,
                    window: r.window.0,
                    algorithm: r.algorithm,
                },
            );
        }
        rules
    }
}

/// What persists on a throwaway server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceKind {
    #[default]
    None,
    Rdb,
    Aof,
}

/// Settings for the server loadgen starts itself when no `REDIS_URL` is given, and client timeouts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `maxmemory` of the throwaway server, e.g. `"64mb"` (of each node of a throwaway cluster).
    pub maxmemory: Option<String>,
    /// `maxmemory-policy` of the throwaway server, e.g. `"allkeys-lru"`.
    pub maxmemory_policy: Option<String>,
    pub persistence: PersistenceKind,
    /// What loadgen starts when no URL is given: one `standalone` server, or a `cluster` of
    /// `primaries` nodes made with `redis-cli --cluster create`.
    pub topology: ThrowawayTopology,
    /// Primaries of a throwaway cluster (at least 3).
    pub primaries: u32,
    pub connect_timeout: Dur,
    pub response_timeout: Dur,
}

/// The shape of the throwaway deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrowawayTopology {
    #[default]
    Standalone,
    Cluster,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            maxmemory: None,
            maxmemory_policy: None,
            persistence: PersistenceKind::None,
            topology: ThrowawayTopology::Standalone,
            primaries: 3,
            connect_timeout: Dur(Duration::from_secs(1)),
            response_timeout: Dur(Duration::from_secs(1)),
        }
    }
}

/// Pass/fail bounds. Invariants (lost sessions, rate-limit over-admission, revoked tokens that
/// validate) always have to be zero and need no entry here.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slo {
    /// Highest acceptable fraction of failed operations, 0–1 (0.001 = 0.1 %).
    pub max_error_rate: Option<f64>,
    /// Lowest acceptable throughput, operations per second over all operations.
    pub min_throughput: Option<f64>,
    pub latency: Vec<LatencySlo>,
    /// Checks that must judge something: a check named here that judged nothing (e.g. no session
    /// was ever read, so none could be found lost) fails the run instead of showing `not_checked`.
    /// Names: see [`REQUIRABLE`].
    pub require: Vec<String>,
}

/// The checks `[slo] require` may name (`latency` = every latency bound).
pub const REQUIRABLE: [&str; 8] = [
    "operations",
    "lost_sessions",
    "ratelimit_over_admissions",
    "admitted_while_degraded",
    "revoked_tokens_validating",
    "error_rate",
    "throughput",
    "latency",
];

/// `percentile` of `op`'s latency must stay at or below `max`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySlo {
    /// An operation name, or `all`.
    pub op: String,
    /// 0 < percentile ≤ 100, e.g. 99.9.
    pub percentile: f64,
    pub max: Dur,
    /// `response` (from the intended start; includes queueing) or `service` (from the actual start).
    #[serde(default)]
    pub time: TimeKind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeKind {
    #[default]
    Response,
    Service,
}

/// A value given by a typed flag, applied over the file and the `--set`s. Each knows its flag, so a
/// value the scenario's validation refuses is blamed on that flag (`--rate: \`load.rate\` ...`),
/// and none is ever turned back into TOML text.
#[derive(Clone, Debug, PartialEq)]
pub enum Override {
    /// `--users`: `load.users`.
    Users(u32),
    /// `--duration`: `load.duration`.
    Duration(Duration),
    /// `--rate`: `load.rate`.
    Rate(f64),
    /// `--maxmemory` (evict): `redis.maxmemory`.
    Maxmemory(String),
    /// `--policies` (evict): `redis.maxmemory_policy`.
    Policy(String),
}

impl Override {
    /// The dotted TOML path it sets.
    pub fn path(&self) -> &'static str {
        match self {
            Override::Users(_) => "load.users",
            Override::Duration(_) => "load.duration",
            Override::Rate(_) => "load.rate",
            Override::Maxmemory(_) => "redis.maxmemory",
            Override::Policy(_) => "redis.maxmemory_policy",
        }
    }

    /// The flag that gave it.
    pub fn flag(&self) -> &'static str {
        match self {
            Override::Users(_) => "--users",
            Override::Duration(_) => "--duration",
            Override::Rate(_) => "--rate",
            Override::Maxmemory(_) => "--maxmemory",
            Override::Policy(_) => "--policies",
        }
    }

    pub(crate) fn apply(&self, s: &mut Scenario) {
        match self {
            Override::Users(u) => s.load.users = *u,
            Override::Duration(d) => s.load.duration = Dur(*d),
            Override::Rate(r) => s.load.rate = Some(*r),
            Override::Maxmemory(m) => s.redis.maxmemory = Some(m.clone()),
            Override::Policy(p) => s.redis.maxmemory_policy = Some(p.clone()),
        }
    }
}

impl Scenario {
    /// The name used for the results directory.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("scenario")
    }
}
