//! Witnesses for the Sentinel tests, independent of the handle under test: every `+switch-master`
//! each sentinel publishes (with the instant the test saw it), every command a data node executes
//! (MONITOR), and a writer that records which primary the handle used for each write.
//!
//! Included with `#[path]` by the `sentinel_*` test files (not by `support/mod.rs`, which every test
//! binary compiles).
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::{ErrorKind, Redis};
use futures_util::StreamExt;
use localredis::{RedisServer, SentinelGroup};

/// `+switch-master` messages seen on each sentinel: (sentinel index, when, payload).
pub struct SwitchLog {
    events: Arc<Mutex<Vec<(usize, Instant, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SwitchLog {
    /// Subscribes to `+switch-master` on every sentinel of `group`; returns once all are subscribed.
    pub async fn subscribe(group: &SentinelGroup) -> SwitchLog {
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, sentinel) in group.sentinels.iter().enumerate() {
            let client = redis::Client::open(sentinel.url()).unwrap();
            let mut pubsub = client.get_async_pubsub().await.unwrap();
            pubsub.subscribe("+switch-master").await.unwrap();
            let events = events.clone();
            tasks.push(tokio::spawn(async move {
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    events.lock().unwrap().push((i, Instant::now(), payload));
                }
            }));
        }
        SwitchLog { events, tasks }
    }

    /// When the `n`-th distinct sentinel (1-based) announced a switch to `port`.
    pub fn nth_to(&self, n: usize, port: u16) -> Option<Instant> {
        let suffix = format!(" {port}");
        let mut seen = Vec::new();
        for (i, at, payload) in self.events.lock().unwrap().iter() {
            if payload.ends_with(&suffix) && !seen.contains(i) {
                seen.push(*i);
                if seen.len() == n {
                    return Some(*at);
                }
            }
        }
        None
    }

    /// Every event, for failure messages.
    pub fn dump(&self, since: Instant) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(i, at, p)| format!("sentinel {i} at {:?}: {p}", at.duration_since(since)))
            .collect()
    }
}

impl Drop for SwitchLog {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Every command a server executes, as MONITOR reports it, with the instant the test received it.
pub struct Monitor {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub async fn start(server: &RedisServer) -> Monitor {
        let client = redis::Client::open(server.url()).unwrap();
        let monitor = client.get_async_monitor().await.unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let task = tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Monitor { lines, task }
    }

    /// Commands naming `needle` received after `t`, leaving out those replicated from the primary
    /// listening on `replication_source` (MONITOR shows that link's peer address as its port).
    pub fn after(&self, t: Instant, needle: &str, replication_source: u16) -> Vec<String> {
        let master_link = format!("127.0.0.1:{replication_source}]");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, line)| *at > t && line.contains(needle) && !line.contains(&master_link))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// How many commands naming `needle` it has seen.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .count()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One write through the handle: when it completed, how, and which primary the handle named after it.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Instant,
    pub error: Option<ErrorKind>,
    pub primary: Option<u16>,
}

/// Writes `SET <prefix><n> x` every `every` through `redis` until dropped.
pub struct Writer {
    pub log: Arc<Mutex<Vec<Write>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub fn start(redis: Redis, prefix: &'static str, every: Duration) -> Writer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let task = tokio::spawn(async move {
            for n in 0u64.. {
                let mut conn = redis.clone();
                let result = redis::cmd("SET")
                    .arg(format!("{prefix}{n}"))
                    .arg("x")
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(cache::Error::from);
                sink.lock().unwrap().push(Write {
                    at: Instant::now(),
                    error: result.err().map(|e| e.kind()),
                    primary: redis.current_primary().map(|n| n.port),
                });
                tokio::time::sleep(every).await;
            }
        });
        Writer { log, task }
    }

    pub fn acked(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.error.is_none())
            .count()
    }

    /// Outcomes by error kind (`ok` for acknowledged writes).
    pub fn outcomes(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for w in self.log.lock().unwrap().iter() {
            let key = w.error.map_or("ok".to_string(), |k| k.as_str().to_string());
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the handle's current primary every 2 ms; the first instant it names `port`.
pub async fn wait_for_primary(redis: &Redis, port: u16, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if redis.current_primary().map(|n| n.port) == Some(port) {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// The group's Sentinel URL with each sentinel reached through its proxy (same order).
pub fn proxied_url(group: &SentinelGroup, proxies: &[localredis::Proxy], service: &str) -> String {
    let hosts: Vec<String> = proxies
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port()))
        .collect();
    let password = group.primary.config().password.clone().unwrap_or_default();
    format!("redis://:{password}@{}/{service}", hosts.join(","))
}

/// One proxy in front of each sentinel of `group`.
pub fn proxies_for(group: &SentinelGroup) -> Vec<localredis::Proxy> {
    group
        .sentinels
        .iter()
        .map(|s| localredis::Proxy::start(s.port()).unwrap())
        .collect()
}

/// `ROLE` of a data node: `master` or `slave`.
pub fn role(server: &RedisServer) -> Option<String> {
    let reply = server.command(&["ROLE"]).ok()?;
    Some(reply.as_array()?.first()?.as_str()?.to_string())
}

/// `SENTINEL FAILOVER` on sentinel 1, then waits for the `nth` sentinel's announcement of the
/// replica and for `redis` to use it. Returns (that announcement, the handle's switch); panics with
/// what every party said if either never comes.
pub async fn fail_over_and_follow(
    group: &SentinelGroup,
    service: &str,
    switches: &SwitchLog,
    redis: &Redis,
    writer: &Writer,
    nth: usize,
) -> (Instant, Instant) {
    let start = Instant::now();
    let new = group.replicas[0].port();
    group.sentinels[1]
        .command(&["SENTINEL", "FAILOVER", service])
        .unwrap();
    let limit = Duration::from_secs(30);
    let announced = async {
        while start.elapsed() < limit {
            if let Some(at) = switches.nth_to(nth, new) {
                return Some(at);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
    .await;
    let switched = wait_for_primary(redis, new, limit).await;
    match (announced, switched) {
        (Some(announced), Some(switched)) => (announced, switched),
        _ => panic!(
            "no switch to {new}: announcements {:?}, handle on {:?}, writes {:?}",
            switches.dump(start),
            redis.current_primary(),
            writer.outcomes()
        ),
    }
}
