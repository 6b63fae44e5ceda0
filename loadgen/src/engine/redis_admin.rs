//! Asking Redis about itself: `INFO`, `CONFIG GET`, `SCAN`, `MEMORY USAGE`, `DBSIZE`, command
//! statistics — the one place loadgen sends administrative commands, so every command and report
//! reads them the same way.
//!
//! Everything goes through the same [`cache::Redis`] handle as the load (for Sentinel, the primary
//! the load is using). A cluster is many servers: `INFO`, `CONFIG GET`, `DBSIZE` and `SCAN` are
//! sent to every primary ([`primaries`], from `CLUSTER NODES`, each on a connection of its own)
//! and combined — counters and sizes added up, keys listed from every node — while per-key
//! commands (`MEMORY USAGE`, `DEL`) go through the cluster handle, which routes them by slot.
//! Keys are found with `SCAN` (never `KEYS`, which blocks the server) through redis-rs's cursor
//! iterator, within a budget of keys and time. Errors keep their [`cache::ErrorKind`], so a caller
//! tells "not permitted" (an ACL without `+info`) from "down".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache::url::Topology;
use cache::{KeySchema, Redis, RedisUrl};
use futures_util::StreamExt;
use redis::{AsyncCommands, ScanOptions};

use crate::report::doctor::{KeyStats, KindStats};
use crate::report::summary::{CommandStat, KeyCost, NodeReport};

/// One `INFO` reply as `field → value`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Info(pub BTreeMap<String, String>);

impl Info {
    pub(crate) fn parse(text: &str) -> Info {
        Info(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.trim_end().split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub(crate) fn num(&self, key: &str) -> Option<f64> {
        self.0.get(key)?.parse().ok()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// How much the counter `key` grew since `before` (0 if it did not, or is missing).
    pub(crate) fn increase_since(&self, before: &Info, key: &str) -> u64 {
        (self.num(key).unwrap_or(0.0) - before.num(key).unwrap_or(0.0)).max(0.0) as u64
    }

    /// Keys in every db (`db0:keys=12,expires=12,avg_ttl=0`).
    pub(crate) fn keys(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with("db"))
            .filter_map(|(_, v)| {
                v.split(',')
                    .next()?
                    .strip_prefix("keys=")?
                    .parse::<f64>()
                    .ok()
            })
            .sum()
    }

    /// `cmdstat_<name>` lines as `name → (calls, usec, failed_calls)`.
    pub(crate) fn commandstats(&self) -> BTreeMap<String, CommandStat> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?;
                let mut s = CommandStat::default();
                for kv in v.split(',') {
                    let (key, val) = kv.split_once('=')?;
                    let val: u64 = val.parse().unwrap_or(0);
                    match key {
                        "calls" => s.calls = val,
                        "usec" => s.usec = val,
                        "failed_calls" => s.failed_calls = val,
                        _ => {}
                    }
                }
                Some((name.to_string(), s))
            })
            .collect()
    }

    /// Several servers' `INFO` as one (a cluster's primaries): numeric fields added up, `dbN`
    /// keyspace lines and `cmdstat_*` counters added field by field, `run_id`s joined (so the set
    /// changes when any primary does), any other field from the first server.
    pub(crate) fn sum(infos: &[Info]) -> Info {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        let mut ids: Vec<&str> = Vec::new();
        for info in infos {
            for (k, v) in &info.0 {
                if k == "run_id" {
                    ids.push(v);
                    continue;
                }
                let merged = match out.get(k) {
                    None => v.clone(),
                    Some(prev) => add_values(prev, v),
                };
                out.insert(k.clone(), merged);
            }
        }
        ids.sort_unstable();
        if !ids.is_empty() {
            out.insert("run_id".into(), ids.join(","));
        }
        Info(out)
    }

    /// Per command, what was added since `before`; commands not called are left out.
    pub(crate) fn commandstats_since(&self, before: &Info) -> BTreeMap<String, CommandStat> {
        let earlier = before.commandstats();
        self.commandstats()
            .into_iter()
            .filter_map(|(cmd, a)| {
                let b = earlier.get(&cmd).copied().unwrap_or_default();
                let d = CommandStat {
                    calls: a.calls.saturating_sub(b.calls),
                    usec: a.usec.saturating_sub(b.usec),
                    failed_calls: a.failed_calls.saturating_sub(b.failed_calls),
                };
                (d.calls > 0).then_some((cmd, d))
            })
            .collect()
    }
}

/// The node a handle is talking to: the Sentinel handle's current primary, else the URL's node
/// (`cluster` for a cluster: its nodes are reported apart).
pub(crate) fn node_of(redis: &Redis) -> String {
    use cache::url::{Topology, join_nodes};
    match (redis.current_primary(), &redis.url().topology) {
        (Some(n), _) => n.to_string(),
        (None, Topology::Standalone { node, .. }) => node.to_string(),
        (None, Topology::Sentinel { sentinels, .. }) => {
            format!("no primary ({})", join_nodes(sentinels))
        }
        (None, Topology::Cluster { .. }) => "cluster".into(),
    }
}

/// A primary to ask about itself.
pub(crate) struct DataNode {
    /// `host:port`.
    pub(crate) address: String,
    pub(crate) redis: Redis,
    /// Slot ranges it serves (a cluster's primaries; empty otherwise).
    pub(crate) slots: Vec<(u16, u16)>,
}

/// The primaries behind `redis`: the handle itself for a standalone server or a Sentinel-managed
/// primary; for a cluster, every primary serving slots (`CLUSTER NODES`), each on a connection of
/// its own with the URL's credentials and TLS.
pub(crate) async fn primaries(redis: &Redis) -> cache::Result<Vec<DataNode>> {
    if !redis.is_cluster() {
        return Ok(vec![DataNode {
            address: node_of(redis),
            redis: redis.clone(),
            slots: Vec::new(),
        }]);
    }
    let mut conn = redis.clone();
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    // Each node lists itself first: sorted, two readings of the same cluster pair node by node.
    let mut listed = cluster_primaries(&text);
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (address, slots) in listed {
        let Some((host, port)) = address.rsplit_once(':') else {
            continue;
        };
        let node = cache::url::Node {
            host: host.to_string(),
            port: port.parse().unwrap_or(6379),
        };
        let url = standalone_url(redis.url(), &node, false);
        let handle = Redis::connect(&url, redis.options()).await?;
        out.push(DataNode {
            address,
            redis: handle,
            slots,
        });
    }
    Ok(out)
}

/// Every primary as it is now: address, slots, memory, keys.
pub(crate) async fn node_reports(redis: &Redis) -> Vec<NodeReport> {
    let mut out = Vec::new();
    for n in primaries(redis).await.unwrap_or_default() {
        let info = info_one(&n.redis, "all").await.unwrap_or_default();
        out.push(NodeReport {
            slots: n
                .slots
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            address: n.address,
            used_memory: info.num("used_memory"),
            maxmemory: info.num("maxmemory"),
            keys: info.keys(),
        });
    }
    out
}

/// `url` narrowed to one node (a sentinel's own credentials when `sentinel`).
pub(crate) fn standalone_url(url: &RedisUrl, node: &cache::url::Node, sentinel: bool) -> RedisUrl {
    let mut u = url.clone();
    u.topology = Topology::Standalone {
        node: node.clone(),
        db: 0,
    };
    if sentinel {
        u.username = url.options.sentinel_username.clone();
        u.password = url.options.sentinel_password.clone();
    }
    u.options.sentinel_username = None;
    u.options.sentinel_password = None;
    u
}

/// `(address, slot ranges)` of every primary in a `CLUSTER NODES` reply that serves slots and is
/// not marked failed.
fn cluster_primaries(text: &str) -> Vec<(String, Vec<(u16, u16)>)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = f.get(2)?;
            if !flags.split(',').any(|x| x == "master") || flags.contains("fail") {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let address = f.get(1)?.split('@').next()?.to_string();
            let slots: Vec<(u16, u16)> = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            (!slots.is_empty()).then_some((address, slots))
        })
        .collect()
}

/// `INFO <section>` of one server.
async fn info_one(redis: &Redis, section: &str) -> cache::Result<Info> {
    let mut conn = redis.clone();
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?;
    Ok(Info::parse(&text))
}

/// `INFO <section>` of every primary, by address.
pub(crate) async fn info_by_node(
    redis: &Redis,
    section: &str,
) -> cache::Result<Vec<(String, Info)>> {
    let mut out = Vec::new();
    for n in primaries(redis).await? {
        out.push((n.address, info_one(&n.redis, section).await?));
    }
    Ok(out)
}

/// Two values of one `INFO` field added: numbers, or `k=v,k=v` lists whose numeric parts are added
/// (`db0:keys=..`, `cmdstat_get:calls=..`); anything else keeps the first.
fn add_values(a: &str, b: &str) -> String {
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        let sum = x + y;
        return if sum.fract() == 0.0 && !a.contains('.') {
            format!("{}", sum as i64)
        } else {
            format!("{sum}")
        };
    }
    if !a.contains('=') {
        return a.to_string();
    }
    let theirs: BTreeMap<&str, &str> = b.split(',').filter_map(|kv| kv.split_once('=')).collect();
    a.split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => match (
                v.parse::<f64>(),
                theirs.get(k).and_then(|w| w.parse::<f64>().ok()),
            ) {
                (Ok(x), Some(y)) if !v.contains('.') => format!("{k}={}", (x + y) as i64),
                (Ok(x), Some(y)) => format!("{k}={}", x + y),
                _ => kv.to_string(),
            },
            None => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `INFO <section>` through the load's own handle; for a cluster, every primary's added up (see
/// [`Info::sum`]).
pub(crate) async fn info(redis: &Redis, section: &str) -> cache::Result<Info> {
    if !redis.is_cluster() {
        return info_one(redis, section).await;
    }
    let infos: Vec<Info> = info_by_node(redis, section)
        .await?
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    Ok(Info::sum(&infos))
}

/// `CONFIG GET` of several parameters in one round trip (Redis ≥ 7 takes several patterns); for
/// a cluster, the first primary's (`loadgen doctor` audits each node apart).
pub(crate) async fn config_get(
    redis: &Redis,
    names: &[&str],
) -> cache::Result<BTreeMap<String, String>> {
    let first = match redis.is_cluster() {
        true => primaries(redis).await?.into_iter().next().map(|n| n.redis),
        false => None,
    };
    let mut conn = first.unwrap_or_else(|| redis.clone());
    let pairs: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(names)
        .query_async(&mut conn)
        .await?;
    Ok(pairs
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect())
}

/// One numeric `CONFIG GET` parameter (`None` when refused, absent or not a number).
pub(crate) async fn config_number(redis: &Redis, name: &str) -> Option<u64> {
    config_get(redis, &[name])
        .await
        .ok()?
        .get(name)?
        .parse()
        .ok()
}

/// The target's `maxmemory` (`None` when unset, 0, or `CONFIG GET` is not allowed).
pub(crate) async fn maxmemory(redis: &Redis) -> Option<u64> {
    config_number(redis, "maxmemory").await.filter(|m| *m > 0)
}

/// `DBSIZE` of the handle's database (every primary's, added up).
pub(crate) async fn dbsize(redis: &Redis) -> cache::Result<u64> {
    let mut total = 0;
    for n in primaries(redis).await? {
        let mut conn = n.redis.clone();
        total += redis::cmd("DBSIZE").query_async::<u64>(&mut conn).await?;
    }
    Ok(total)
}

/// `MEMORY USAGE key SAMPLES 0` (exact for the small values the stores write).
pub(crate) async fn memory_usage(redis: &Redis, key: &str) -> Option<u64> {
    let mut conn = redis.clone();
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .flatten()
}

/// Mean `MEMORY USAGE` over `keys` (0 when none could be measured).
pub(crate) async fn mean_memory_usage(redis: &Redis, keys: &[String]) -> f64 {
    let mut total = 0u64;
    let mut n = 0u64;
    for k in keys {
        if let Some(b) = memory_usage(redis, k).await {
            total += b;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { total as f64 / n as f64 }
}

/// Deletes `keys`, 500 per `DEL` (one key per `DEL` on a cluster: the keys live in many slots).
pub(crate) async fn delete(redis: &Redis, keys: &[String]) -> cache::Result<()> {
    let per = if redis.is_cluster() { 1 } else { 500 };
    for chunk in keys.chunks(per) {
        let mut conn = redis.clone();
        let _: i64 = conn.del(chunk).await?;
    }
    Ok(())
}

/// How much of the keyspace a `SCAN` may walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanBudget {
    pub(crate) max_keys: u64,
    pub(crate) time: Duration,
}

/// Keys matching `pattern` on every primary, until the budget runs out. The flag says whether it
/// did.
pub(crate) async fn scan(
    redis: &Redis,
    pattern: &str,
    budget: ScanBudget,
) -> cache::Result<(Vec<String>, bool)> {
    let started = Instant::now();
    let mut keys = Vec::new();
    for node in primaries(redis).await? {
        let mut conn = node.redis.clone();
        let mut iter = conn
            .scan_options::<String>(
                ScanOptions::default()
                    .with_pattern(pattern)
                    .with_count(1000),
            )
            .await?;
        while let Some(key) = iter.next().await {
            keys.push(key?);
            if keys.len() as u64 >= budget.max_keys || started.elapsed() >= budget.time {
                return Ok((keys, true));
            }
        }
    }
    Ok((keys, false))
}

/// Mean `MEMORY USAGE` of up to `per_kind` keys of each store kind under `prefix`.
pub(crate) async fn memory_per_key(
    redis: &Redis,
    prefix: &str,
    per_kind: usize,
) -> BTreeMap<String, KeyCost> {
    let mut out = BTreeMap::new();
    let budget = ScanBudget {
        max_keys: per_kind as u64,
        time: Duration::from_secs(2),
    };
    for kind in ["session", "user-sessions", "token", "ratelimit"] {
        let Ok((keys, _)) = scan(redis, &format!("{prefix}:{kind}:*"), budget).await else {
            continue;
        };
        let mut total = 0u64;
        let mut n = 0usize;
        for k in &keys {
            if let Some(b) = memory_usage(redis, k).await {
                total += b;
                n += 1;
            }
        }
        if n > 0 {
            out.insert(
                kind.to_string(),
                KeyCost {
                    mean_bytes: (total as f64 / n as f64 * 10.0).round() / 10.0,
                    samples: n,
                },
            );
        }
    }
    out
}

/// Counts the store's keys by kind with `SCAN` (within `budget`), checks their TTLs (one `PTTL`
/// pipeline per 1000 keys) and samples `MEMORY USAGE` for the first 20 of each kind. Keys are
/// handled a page at a time, so a budget of millions of keys does not hold millions in memory.
pub(crate) async fn key_stats(redis: &Redis, schema: &KeySchema, budget: ScanBudget) -> KeyStats {
    let mut stats = KeyStats::default();
    let mut tally = KindTally {
        prefix: format!("{}:", schema.prefix()),
        sampled: BTreeMap::new(),
    };
    let started = Instant::now();
    for node in primaries(redis).await.unwrap_or_default() {
        let mut conn = node.redis.clone();
        let Ok(mut iter) = conn
            .scan_options::<String>(
                ScanOptions::default()
                    .with_pattern(schema.pattern_all())
                    .with_count(1000),
            )
            .await
        else {
            continue;
        };
        let mut page = Vec::with_capacity(1000);
        loop {
            let next = iter.next().await;
            let ended = !matches!(next, Some(Ok(_)));
            if let Some(Ok(key)) = next {
                page.push(key);
            }
            let over = stats.scanned + page.len() as u64 >= budget.max_keys
                || started.elapsed() >= budget.time;
            if page.len() == 1000 || ended || over {
                tally.count(&node.redis, &page, &mut stats).await;
                page.clear();
            }
            if ended {
                break;
            }
            if over {
                stats.truncated = true;
                break;
            }
        }
        if stats.truncated {
            break;
        }
    }
    for (kind, (n, total)) in tally.sampled {
        if let Some(mean) = total.checked_div(n) {
            stats
                .per_kind
                .entry(kind)
                .or_insert_with(KindStats::default)
                .sampled_bytes_per_key = Some(mean);
        }
    }
    stats
}

/// Per-kind counting for [`key_stats`].
struct KindTally {
    prefix: String,
    /// Kind → (keys measured, bytes).
    sampled: BTreeMap<String, (u64, u64)>,
}

impl KindTally {
    async fn count(&mut self, redis: &Redis, page: &[String], stats: &mut KeyStats) {
        if page.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for k in page {
            pipe.cmd("PTTL").arg(k);
        }
        let mut conn = redis.clone();
        let ttls: Vec<i64> = pipe.query_async(&mut conn).await.unwrap_or_default();
        for (key, ttl) in page.iter().zip(ttls) {
            let kind = key
                .strip_prefix(&self.prefix)
                .and_then(|rest| rest.split(':').next())
                .unwrap_or("other")
                .to_string();
            let entry = stats.per_kind.entry(kind.clone()).or_default();
            entry.keys += 1;
            if ttl == -1 {
                entry.without_ttl += 1;
            }
            let s = self.sampled.entry(kind).or_default();
            if s.0 < 20
                && let Some(b) = memory_usage(redis, key).await
            {
                s.0 += 1;
                s.1 += b;
            }
        }
        stats.scanned += page.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parses_fields_keyspace_and_commandstats() {
        let i = Info::parse(
            "# Server\r\nredis_version:7.0.15\r\nused_memory:1024\r\n# Keyspace\r\ndb0:keys=12,expires=12,avg_ttl=0\r\ndb1:keys=3,expires=0,avg_ttl=0\r\ncmdstat_get:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0,failed_calls=1\r\n",
        );
        assert_eq!(i.get("redis_version"), Some("7.0.15"));
        assert_eq!(i.num("used_memory"), Some(1024.0));
        assert_eq!(i.keys(), 15.0);
        assert_eq!(
            i.commandstats()["get"],
            CommandStat {
                calls: 10,
                usec: 25,
                failed_calls: 1
            }
        );
        let later = Info::parse(
            "used_memory:4096\r\nevicted_keys:3\r\ncmdstat_get:calls=15,usec=30,failed_calls=1\r\n",
        );
        assert_eq!(later.increase_since(&i, "used_memory"), 3072);
        assert_eq!(later.increase_since(&i, "evicted_keys"), 3);
        assert_eq!(i.increase_since(&later, "used_memory"), 0);
        assert_eq!(later.commandstats_since(&i)["get"].calls, 5);
    }

    #[test]
    fn a_clusters_primaries_add_up() {
        let a = Info::parse(
            "run_id:b\r\nused_memory:100\r\nredis_version:7.0.15\r\ndb0:keys=3,expires=3,avg_ttl=0\r\ncmdstat_get:calls=2,usec=4,failed_calls=0\r\n",
        );
        let b = Info::parse(
            "run_id:a\r\nused_memory:50\r\nredis_version:7.0.15\r\ndb0:keys=4,expires=1,avg_ttl=9\r\ncmdstat_get:calls=3,usec=5,failed_calls=1\r\n",
        );
        let s = Info::sum(&[a, b]);
        assert_eq!(s.num("used_memory"), Some(150.0));
        assert_eq!(s.keys(), 7.0);
        assert_eq!(s.get("redis_version"), Some("7.0.15"));
        assert_eq!(s.get("run_id"), Some("a,b"));
        assert_eq!(s.commandstats()["get"].calls, 5);
        assert_eq!(s.commandstats()["get"].failed_calls, 1);
    }

    #[test]
    fn cluster_nodes_name_the_primaries_and_their_slots() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host replica e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [0->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
9fd8800b31d569538917c0aaeaa5588e2f9c6edf 127.0.0.1:30006@31006 master,fail - 1426238316232 0 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7000
";
        let p = cluster_primaries(text);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0], ("127.0.0.1:30002".to_string(), vec![(5461, 10922)]));
        assert_eq!(p[2].1, vec![(0, 5460), (7000, 7000)]);
    }
}
