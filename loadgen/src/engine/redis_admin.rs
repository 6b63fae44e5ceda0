//! Asking Redis about itself: `INFO`, `CONFIG GET`, `SCAN`, `MEMORY USAGE`, `DBSIZE`, command
//! statistics — the one place loadgen sends administrative commands, so every command and report
//! reads them the same way.
//!
//! Everything goes through the same [`cache::Redis`] handle as the load (for Sentinel, the primary
//! the load is using). Keys are found with `SCAN` (never `KEYS`, which blocks the server) through
//! redis-rs's cursor iterator, within a budget of keys and time. Errors keep their
//! [`cache::ErrorKind`], so a caller tells "not permitted" (an ACL without `+info`) from "down".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache::{KeySchema, Redis};
use futures_util::StreamExt;
use redis::{AsyncCommands, ScanOptions};

use crate::report::doctor::{KeyStats, KindStats};
use crate::report::summary::{CommandStat, KeyCost};

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

/// `INFO <section>` through the load's own handle.
pub(crate) async fn info(redis: &Redis, section: &str) -> cache::Result<Info> {
    let mut conn = redis.clone();
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?;
    Ok(Info::parse(&text))
}

/// `CONFIG GET` of several parameters in one round trip (Redis ≥ 7 takes several patterns).
pub(crate) async fn config_get(
    redis: &Redis,
    names: &[&str],
) -> cache::Result<BTreeMap<String, String>> {
    let mut conn = redis.clone();
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

/// `DBSIZE` of the handle's database.
pub(crate) async fn dbsize(redis: &Redis) -> cache::Result<u64> {
    let mut conn = redis.clone();
    Ok(redis::cmd("DBSIZE").query_async(&mut conn).await?)
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

/// Deletes `keys`, 500 per `DEL`.
pub(crate) async fn delete(redis: &Redis, keys: &[String]) -> cache::Result<()> {
    for chunk in keys.chunks(500) {
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

/// Keys matching `pattern`, until the budget runs out. The flag says whether it did.
pub(crate) async fn scan(
    redis: &Redis,
    pattern: &str,
    budget: ScanBudget,
) -> cache::Result<(Vec<String>, bool)> {
    let mut conn = redis.clone();
    let started = Instant::now();
    let mut keys = Vec::new();
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
    let mut conn = redis.clone();
    let started = Instant::now();
    let Ok(mut iter) = conn
        .scan_options::<String>(
            ScanOptions::default()
                .with_pattern(schema.pattern_all())
                .with_count(1000),
        )
        .await
    else {
        return stats;
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
            tally.count(redis, &page, &mut stats).await;
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
}
