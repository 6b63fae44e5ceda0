//! The Redis under test: the deployment `--redis-url` / `REDIS_URL` names, or — when there is
//! none — a throwaway `redis-server` that loadgen starts on a free loopback port with the
//! scenario's `maxmemory`, policy and persistence, and removes when it exits.
//!
//! The throwaway server comes from `localredis`: its process is killed when the handle drops and,
//! on Linux, when loadgen itself dies (`PR_SET_PDEATHSIG`), in its own process group so a Ctrl-C
//! in the terminal reaches loadgen, which then shuts down in order, not Redis.
//!
//! Connecting fails fast and is sorted by what the operator must fix (exit 3): nothing listening,
//! wrong password, TLS. A hard 5 s bound covers addresses that swallow packets.
//!
//! The calibration figure — raw `PING`s per second at a fixed concurrency over the same handle —
//! is taken here, before the load: it is the ceiling of this client + server + machine, so a later
//! regression gate can tell "the code got slower" from "this machine is slower".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache::{ConnectOptions, Redis, RedisUrl, Topology};
use localredis::{Cluster, Persistence, RedisServer, ServerConfig};

use super::progress::{Event, Progress};
use crate::error::{Error, Result};
use crate::report::summary::{Calibration, TargetInfo};
use crate::scenario::{PersistenceKind, RedisConfig, ThrowawayTopology};

/// How long connecting may take in all, whatever the URL's timeouts say.
pub(crate) const CONNECT_BOUND: Duration = Duration::from_secs(5);

pub(crate) struct Target {
    pub(crate) redis: Redis,
    /// The URL it was reached by. Its `Display` redacts the password: safe to print.
    pub(crate) url: RedisUrl,
    /// Set when we started the server(s); dropping it stops them.
    pub(crate) throwaway: Option<Throwaway>,
    /// How `redis` was connected, for a second handle.
    opts: ConnectOptions,
}

impl Target {
    /// The goose `host`: scheme and first host of the URL (goose wants an absolute URL; nothing
    /// connects to it, and it never carries credentials).
    pub(crate) fn goose_host(&self) -> String {
        goose_host(&self.url)
    }

    /// A second handle on its own connection (the load's is multiplexed: a probe sent there
    /// would queue behind the load in this process). `None` if it cannot connect.
    pub(crate) async fn second_handle(&self) -> Option<Redis> {
        connect(&self.url, &self.opts).await.ok()
    }

    /// `n` handles for the load: this target's own, then `n - 1` more, each on its own
    /// connection (its own socket and I/O task). A connection that fails is an error: the run
    /// would not be the one the scenario asked for.
    pub(crate) async fn load_handles(&self, n: u32) -> Result<Vec<Redis>> {
        let mut handles = vec![self.redis.clone()];
        for _ in 1..n {
            handles.push(connect(&self.url, &self.opts).await?);
        }
        Ok(handles)
    }

    /// Whether Redis runs on this machine (a throwaway server, or only loopback addresses), so
    /// loadgen and Redis share its cores.
    pub(crate) fn same_host(&self) -> bool {
        let loopback = |host: &str| {
            host == "localhost"
                || host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        self.throwaway.is_some()
            || match &self.url.topology {
                Topology::Standalone { node, .. } => loopback(&node.host),
                Topology::Sentinel { sentinels, .. } => sentinels.iter().all(|n| loopback(&n.host)),
                Topology::Cluster { nodes } => nodes.iter().all(|n| loopback(&n.host)),
            }
    }

    /// What the results say about it (URL redacted).
    pub(crate) fn info(&self) -> TargetInfo {
        TargetInfo {
            url: self.url.to_string(),
            kind: self.redis.kind().to_string(),
            throwaway: self.throwaway.is_some(),
        }
    }

    /// Stops the throwaway server(s), if any, off the async threads (their `Drop` waits for the
    /// processes to exit).
    pub(crate) async fn close(self) {
        if let Some(server) = self.throwaway {
            let _ = tokio::task::spawn_blocking(move || drop(server)).await;
        }
    }
}

fn goose_host(url: &RedisUrl) -> String {
    let first = match &url.topology {
        Topology::Standalone { node, .. } => Some(node),
        Topology::Sentinel { sentinels, .. } => sentinels.first(),
        Topology::Cluster { nodes } => nodes.first(),
    };
    first.map_or_else(|| "redis://target".into(), |n| format!("redis://{n}"))
}

/// The server(s) loadgen started itself: removed when dropped (and, on Linux, when loadgen dies).
pub(crate) enum Throwaway {
    Server(Box<RedisServer>),
    Cluster(Cluster),
}

/// Which Redis to test, resolved once at the edge: a parsed URL (from `--redis-url` or
/// `REDIS_URL`) or none (start a throwaway server), and the CA bundle to trust for `rediss://`.
#[derive(Clone, Debug, Default)]
pub(crate) struct TargetSpec {
    pub(crate) url: Option<RedisUrl>,
    pub(crate) tls_ca_pem: Option<Vec<u8>>,
}

impl TargetSpec {
    /// A throwaway server, no URL.
    pub(crate) fn throwaway() -> TargetSpec {
        TargetSpec::default()
    }

    /// True when no URL was given.
    pub(crate) fn is_throwaway(&self) -> bool {
        self.url.is_none()
    }
}

fn connect_options(cfg: &RedisConfig, tls_ca_pem: Option<Vec<u8>>) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: cfg.connect_timeout.0,
        response_timeout: cfg.response_timeout.0,
        tls_ca_pem,
        ..ConnectOptions::default()
    }
}

/// Connects to `url` within [`CONNECT_BOUND`]; a URL the handle refuses is a usage error (exit 2),
/// anything else a target error (exit 3).
pub(crate) async fn connect(url: &RedisUrl, opts: &ConnectOptions) -> Result<Redis> {
    match tokio::time::timeout(CONNECT_BOUND, Redis::connect(url, opts)).await {
        Err(_) => Err(Error::ConnectTimeout {
            url: url.to_string(),
            after: CONNECT_BOUND,
        }),
        Ok(Err(e)) => match e.kind() {
            cache::ErrorKind::Url | cache::ErrorKind::Invalid => Err(Error::usage(e.to_string())),
            _ => Err(Error::Target { source: e }),
        },
        Ok(Ok(r)) => Ok(r),
    }
}

/// Starts the throwaway server — or cluster — the scenario describes.
pub(crate) async fn start_throwaway(cfg: &RedisConfig) -> Result<Throwaway> {
    let server_cfg = ServerConfig {
        maxmemory: cfg.maxmemory.clone(),
        maxmemory_policy: cfg.maxmemory_policy.clone(),
        persistence: match cfg.persistence {
            PersistenceKind::None => Persistence::None,
            PersistenceKind::Rdb => Persistence::Rdb {
                save: "900 1 300 10 60 10000".into(),
            },
            PersistenceKind::Aof => Persistence::Aof {
                fsync: "everysec".into(),
            },
        },
        ..ServerConfig::default()
    };
    let (topology, primaries) = (cfg.topology, cfg.primaries as usize);
    tokio::task::spawn_blocking(move || match topology {
        ThrowawayTopology::Standalone => {
            RedisServer::start(server_cfg).map(|s| Throwaway::Server(Box::new(s)))
        }
        ThrowawayTopology::Cluster => Cluster::start(primaries, server_cfg).map(Throwaway::Cluster),
    })
    .await
    .map_err(|e| Error::Broken(format!("starting redis-server: {e}")))?
    .map_err(|source| Error::NoServer { source })
}

/// The target for this command: the given URL, or a throwaway server configured by `cfg`.
pub(crate) async fn open(
    spec: &TargetSpec,
    cfg: &RedisConfig,
    progress: &Progress,
) -> Result<Target> {
    let opts = connect_options(cfg, spec.tls_ca_pem.clone());
    if let Some(url) = &spec.url {
        if cfg.maxmemory.is_some()
            || cfg.maxmemory_policy.is_some()
            || cfg.persistence != PersistenceKind::None
        {
            progress.note(format!(
                "the scenario's [redis] maxmemory/policy/persistence apply only to a throwaway server; {url} keeps its own settings"
            ));
        }
        let redis = connect(url, &opts).await?;
        return Ok(Target {
            redis,
            url: url.clone(),
            throwaway: None,
            opts,
        });
    }
    let server = start_throwaway(cfg).await?;
    let (raw_url, port) = match &server {
        Throwaway::Server(s) => (s.url(), s.port()),
        Throwaway::Cluster(c) => (c.url(), c.nodes.first().map_or(0, |n| n.port())),
    };
    let url = RedisUrl::parse(&raw_url)
        .map_err(|e| Error::Broken(format!("the throwaway server's URL: {e}")))?;
    let mut settings: Vec<String> = Vec::new();
    if let Some(m) = &cfg.maxmemory {
        settings.push(format!("maxmemory {m}"));
    }
    if let Some(p) = &cfg.maxmemory_policy {
        settings.push(format!("maxmemory-policy {p}"));
    }
    if cfg.persistence != PersistenceKind::None {
        settings.push(format!("persistence {:?}", cfg.persistence).to_lowercase());
    }
    if let Throwaway::Cluster(c) = &server {
        settings.push(format!("a cluster of {} primaries", c.nodes.len()));
    }
    progress.emit(Event::Throwaway { port, settings });
    let redis = connect(&url, &opts).await?;
    Ok(Target {
        redis,
        url,
        throwaway: Some(server),
        opts,
    })
}

/// Concurrency of the calibration: the same `-c 50` as the redis-benchmark comparison.
pub(crate) const CALIBRATION_CONCURRENCY: usize = 50;

/// `concurrency` tasks send `PING`s until `budget` has passed or `max_ops` were sent.
pub(crate) async fn calibrate(redis: &Redis, budget: Duration, max_ops: u64) -> Calibration {
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + budget;
    let tasks: Vec<_> = (0..CALIBRATION_CONCURRENCY)
        .map(|_| {
            let (sent, done, mut conn) = (sent.clone(), done.clone(), redis.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_ops {
                    if redis::cmd("PING")
                        .query_async::<()>(&mut conn)
                        .await
                        .is_err()
                    {
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let ops = done.load(Ordering::Relaxed);
    Calibration {
        command: "PING".into(),
        concurrency: CALIBRATION_CONCURRENCY,
        ops,
        seconds: (seconds * 1000.0).round() / 1000.0,
        ops_per_sec: (ops as f64 / seconds.max(1e-9)).round(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_host_is_the_first_host_without_credentials() {
        let host = |u: &str| goose_host(&RedisUrl::parse(u).unwrap());
        assert_eq!(
            host("redis://:***@10.0.0.5:6379/0"),
            "redis://10.0.0.5:6379"
        );
        assert_eq!(
            host("redis://s1:26379,s2:26379/mymaster"),
            "redis://s1:26379"
        );
        assert_eq!(host("rediss://u:***@h:6380"), "redis://h:6380");
    }
}
