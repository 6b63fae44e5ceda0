//! Redis's own view of the run: `INFO` before and after, a 1 s time series during, command
//! statistics deltas, and `MEMORY USAGE` samples per key kind.
//!
//! The client-side histograms say how long operations took; these say why (memory near
//! `maxmemory`, evictions, expirations, a hit ratio falling, clients piling up) and what a key
//! costs, which is what capacity planning multiplies by the number of users. Everything goes
//! through the same [`cache::Redis`] handle as the load, so it measures the same path; one `INFO`
//! a second is noise next to the load. Keys are found with `SCAN` (never `KEYS`, which blocks the
//! server), and only a bounded sample of them is measured.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::Redis;
use serde::Serialize;
use tokio::sync::watch;

/// One `INFO` reply as `field → value`.
#[derive(Clone, Debug, Default)]
pub struct Info(pub BTreeMap<String, String>);

impl Info {
    pub fn parse(text: &str) -> Info {
        Info(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.trim_end().split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn num(&self, key: &str) -> Option<f64> {
        self.0.get(key)?.parse().ok()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// How much the counter `key` grew since `before` (0 if it did not, or is missing).
    pub fn increase_since(&self, before: &Info, key: &str) -> u64 {
        (self.num(key).unwrap_or(0.0) - before.num(key).unwrap_or(0.0)).max(0.0) as u64
    }

    /// Keys in db`n` (`db0:keys=12,expires=12,avg_ttl=0`).
    pub fn keys(&self) -> f64 {
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
    pub fn commandstats(&self) -> BTreeMap<String, CommandStat> {
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
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub failed_calls: u64,
}

/// `INFO <section>` through the load's own handle.
pub async fn info(redis: &Redis, section: &str) -> cache::Result<Info> {
    let mut conn = redis.clone();
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await?;
    Ok(Info::parse(&text))
}

/// The fields kept from each `INFO` sample.
pub const SERIES_FIELDS: [&str; 8] = [
    "used_memory",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
    "connected_clients",
    "instantaneous_ops_per_sec",
    "total_commands_processed",
];

#[derive(Clone, Debug, Serialize)]
pub struct InfoPoint {
    /// Seconds since the sampler started.
    pub t: f64,
    pub values: BTreeMap<&'static str, f64>,
}

fn point(t: f64, info: &Info) -> InfoPoint {
    InfoPoint {
        t: (t * 10.0).round() / 10.0,
        values: SERIES_FIELDS
            .iter()
            .filter_map(|f| Some((*f, info.num(f)?)))
            .collect(),
    }
}

/// Samples `INFO` once a second until stopped.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    points: Arc<Mutex<Vec<InfoPoint>>>,
}

impl Sampler {
    pub fn start(redis: Redis) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let points = Arc::new(Mutex::new(Vec::new()));
        let out = points.clone();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => break,
                }
                // A sample that does not come back within the second is skipped, not waited for.
                if let Ok(Ok(i)) =
                    tokio::time::timeout(Duration::from_secs(1), info(&redis, "default")).await
                {
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(point(t0.elapsed().as_secs_f64(), &i));
                }
            }
        });
        Sampler { stop, task, points }
    }

    pub async fn finish(self) -> Vec<InfoPoint> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *self.points.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Mean `MEMORY USAGE` of the keys of one kind.
#[derive(Clone, Debug, Serialize)]
pub struct KeyCost {
    pub mean_bytes: f64,
    pub samples: usize,
}

/// Samples up to `per_kind` keys of each kind under `prefix` and measures them.
pub async fn memory_per_key(
    redis: &Redis,
    prefix: &str,
    per_kind: usize,
) -> BTreeMap<String, KeyCost> {
    let mut out = BTreeMap::new();
    for kind in ["session", "user-sessions", "token", "ratelimit"] {
        let keys = scan_sample(redis, &format!("{prefix}:{kind}:*"), per_kind).await;
        let mut total = 0u64;
        let mut n = 0usize;
        for k in &keys {
            let mut conn = redis.clone();
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(k)
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            if let Some(b) = bytes {
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

/// Up to `want` keys matching `pattern`, from at most 50 `SCAN` steps.
async fn scan_sample(redis: &Redis, pattern: &str, want: usize) -> Vec<String> {
    let mut conn = redis.clone();
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    for _ in 0..50 {
        let r: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, batch)) = r else { break };
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= want {
            break;
        }
    }
    keys.truncate(want);
    keys
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
        assert_eq!(point(1.04, &i).values["used_memory"], 1024.0);
        let later = Info::parse("used_memory:4096\r\nevicted_keys:3\r\n");
        assert_eq!(later.increase_since(&i, "used_memory"), 3072);
        assert_eq!(later.increase_since(&i, "evicted_keys"), 3);
        assert_eq!(i.increase_since(&later, "used_memory"), 0);
    }
}
