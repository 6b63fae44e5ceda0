//! The smallest real Sentinel deployment: one primary, its replicas and the
//! sentinels that watch it, started together and ready for a failover.
//!
//! "Ready" matters more than "started": a sentinel that has not yet discovered
//! the replica has nobody to promote, and one that has not discovered the
//! other sentinels can neither vote nor learn a new configuration from their
//! hello messages (published every 2 s on each instance). So
//! [`SentinelGroup::start`] returns only when every sentinel lists every
//! replica and every other sentinel, polled every 20 ms for at most 30 s.
//! Tests that fail over before that point measure Sentinel's discovery, not
//! the client they mean to test.

use std::thread;
use std::time::{Duration, Instant};

use crate::resp::Reply;
use crate::{Error, RedisServer, Sentinel, SentinelConfig, ServerConfig};

const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A primary, its replicas and its sentinels. Dropping it kills them all.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The primary the sentinels were told to monitor (not necessarily the
    /// primary any more after a failover: ask [`SentinelGroup::primary_port`]).
    pub primary: RedisServer,
    /// Replicas of `primary`, in start order.
    pub replicas: Vec<RedisServer>,
    /// The sentinels, in start order (the order of [`SentinelGroup::url`]).
    pub sentinels: Vec<Sentinel>,
}

impl SentinelGroup {
    /// Start a primary from `server`, `replicas` replicas of it (same
    /// password) and `sentinels` sentinels monitoring it as `service` with a
    /// quorum of a majority, `down-after-milliseconds 1000` and
    /// `failover-timeout 5000` (see [`SentinelConfig::new`]); `tune` may change
    /// each sentinel's config before it starts. Waits until every sentinel
    /// knows every replica and every other sentinel (≤ 30 s).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero sentinels or a fixed port in `server`,
    /// [`Error::StartTimeout`] if discovery does not finish, and anything
    /// [`RedisServer::start`] or [`Sentinel::start`] returns.
    pub fn start(
        server: ServerConfig,
        replicas: usize,
        sentinels: usize,
        service: &str,
        tune: impl Fn(&mut SentinelConfig),
    ) -> Result<Self, Error> {
        if sentinels == 0 || server.port.is_some() {
            return Err(Error::InvalidConfig(
                "a sentinel group needs at least one sentinel and picks its own ports".into(),
            ));
        }
        let primary = RedisServer::start(server.clone())?;
        let replicas = (0..replicas)
            .map(|_| RedisServer::start(server.clone().replica_of("127.0.0.1", primary.port())))
            .collect::<Result<Vec<_>, _>>()?;
        let sentinels = (0..sentinels)
            .map(|_| {
                let mut config = SentinelConfig::monitoring(service, &primary);
                config.quorum = (sentinels / 2 + 1) as u32;
                tune(&mut config);
                Sentinel::start(config)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let group = SentinelGroup {
            primary,
            replicas,
            sentinels,
        };
        group.wait_discovered(service)?;
        Ok(group)
    }

    /// `redis://[:password@]127.0.0.1:S1,127.0.0.1:S2,…/service`: the
    /// Sentinel form of `REDIS_URL`, sentinels in start order.
    pub fn url(&self, service: &str) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let config = self.primary.config();
        format!(
            "{}://{}{}/{service}",
            config.scheme(),
            config.url_userinfo(),
            hosts.join(",")
        )
    }

    /// The primary's port according to sentinel `i`
    /// (`SENTINEL get-master-addr-by-name`), or `None` if it does not answer.
    pub fn primary_port(&self, i: usize, service: &str) -> Option<u16> {
        let reply = self.sentinels[i]
            .command(&["SENTINEL", "get-master-addr-by-name", service])
            .ok()?;
        reply.as_array()?.get(1)?.as_str()?.parse().ok()
    }

    /// The data node (primary or replica) serving on `port`.
    pub fn server_on(&self, port: u16) -> Option<&RedisServer> {
        std::iter::once(&self.primary)
            .chain(&self.replicas)
            .find(|s| s.port() == port)
    }

    fn wait_discovered(&self, service: &str) -> Result<(), Error> {
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        let want_replicas = self.replicas.len();
        let want_sentinels = self.sentinels.len() - 1;
        loop {
            let lagging = self.sentinels.iter().find(|s| {
                count(s, "replicas", service) < want_replicas
                    || count(s, "sentinels", service) < want_sentinels
            });
            let Some(lagging) = lagging else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    what: format!("sentinel 127.0.0.1:{}", lagging.port()),
                    waited: DISCOVERY_TIMEOUT,
                    detail: format!(
                        "it knows {} of {want_replicas} replicas and {} of {want_sentinels} other \
                         sentinels",
                        count(lagging, "replicas", service),
                        count(lagging, "sentinels", service)
                    ),
                    log: lagging.log_path(),
                    log_tail: "(Sentinel logs +slave and +sentinel as it discovers them)".into(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// How many `SENTINEL <what> <service>` entries the sentinel lists (0 if it
/// does not answer).
fn count(sentinel: &Sentinel, what: &str, service: &str) -> usize {
    sentinel
        .command(&["SENTINEL", what, service])
        .ok()
        .and_then(|r| match r {
            Reply::Array(items) => Some(items.len()),
            _ => None,
        })
        .unwrap_or(0)
}
