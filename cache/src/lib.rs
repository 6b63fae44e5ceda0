//! # cache — the Redis layer of an OAuth server, done carefully
//!
//! This crate is the reference implementation of the "Redis Caching" guide of an OAuth authorization
//! server: the three things such a server keeps in Redis, over every deployment the guide's `REDIS_URL`
//! can name.
//!
//! | part | key (exact schema, hash tags and TTLs in [`keys`]) | module |
//! |---|---|---|
//! | login sessions (idle + absolute expiry, "log out everywhere") | `authority:session:<id>` (+ a per-user index) | [`session`] |
//! | access-token claims cache (never the raw token) | `authority:token:<sha256>` | [`token`] |
//! | distributed rate limits (fixed window, sliding window, GCRA) | `authority:ratelimit:<ip>:<endpoint>` | [`ratelimit`] |
//!
//! Underneath, [`url`] parses every `REDIS_URL` form (plain, password, ACL user, db number,
//! `rediss://`, Sentinel and Cluster lists) into a typed topology, and [`connection`] gives one
//! cheap-to-clone [`Redis`] handle over all of them; for Sentinel it follows failovers itself
//! ([`sentinel`] explains why redis-rs alone does not).
//!
//! Promises the tests hold the code to:
//! - one Redis round trip per store operation (counted with `INFO commandstats` and
//!   `total_reads_processed`);
//! - every key written has a TTL, and every deadline is on Redis's clock ([`clock`]);
//! - every multi-key operation touches one Cluster slot (the key schema in [`keys`]);
//! - no password, token or session id in any `Display`, `Debug`, error or log line.
//!
//! ```no_run
//! # async fn demo() -> cache::Result<()> {
//! use cache::{KeySchema, NewSession, Redis, SessionConfig, SessionStore};
//! let redis = Redis::open("redis://127.0.0.1:6379").await?;
//! let sessions = SessionStore::new(redis, KeySchema::default(), SessionConfig::default())?;
//! let (id, _) = sessions.create(NewSession { user_id: "u1".into(), ..Default::default() }).await?;
//! assert!(sessions.get(&id).await?.is_some());
//! # Ok(()) }
//! ```

pub mod acl;
pub mod clock;
mod cluster;
pub mod connection;
pub mod error;
pub mod keys;
mod node;
pub mod ratelimit;
mod sentinel;
pub mod session;
pub mod token;
pub mod url;

pub use clock::HostClock;
pub use connection::Redis;
pub use error::{Error, ErrorKind, Result};
pub use keys::KeySchema;
pub use node::ConnectOptions;
pub use ratelimit::{Algorithm, Decision, FailureMode, IpPolicy, RateLimiter, Rule};
pub use session::{NewSession, Session, SessionConfig, SessionId, SessionStore};
pub use token::{Claims, PutOutcome, TokenCache, TokenStatus};
pub use url::{RedisUrl, Secret, Topology};
