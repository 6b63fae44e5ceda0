//! Redis's view during the load, on a task of its own beside the attack:
//!
//! - `INFO` once a second, a few fields kept per sample, with the identity of the node that
//!   answered (address, `run_id`, role) — so a failover mid-run shows as a change of node, and
//!   counters are never subtracted across two servers;
//! - Redis's clock (`TIME`) once a second, for [`ServerClock`];
//! - a `PING` every 100 ms on a connection of its own (not the load's multiplexed one, so it never
//!   queues behind the load in this process): how quickly the server answers an idle client. A
//!   server whose main thread is throttled, starved or stalled answers slowly even when its CPU
//!   figures look idle — the evidence [`super::bottleneck`] needs to say "server".
//!
//! A sample that does not come back within its period is skipped, not waited for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::Redis;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::clock::ServerClock;
use super::record::new_histogram;
use super::redis_admin::{Info, info, node_of};
use crate::report::summary::InfoPoint;

/// The fields kept from each `INFO` sample.
pub(crate) const SERIES_FIELDS: [&str; 12] = [
    "used_memory",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
    "connected_clients",
    "instantaneous_ops_per_sec",
    "total_commands_processed",
    "used_cpu_user",
    "used_cpu_sys",
    "used_cpu_user_main_thread",
    "used_cpu_sys_main_thread",
];

/// The [`SERIES_FIELDS`] of one `INFO`, plus the key count: a run's "before" and "after".
pub(crate) fn selected(info: &Info) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = SERIES_FIELDS
        .iter()
        .filter_map(|f| Some((f.to_string(), info.num(f)?)))
        .collect();
    m.insert("keys".into(), info.keys());
    m
}

/// One `INFO` sample at `t` seconds, from `node`.
pub(crate) fn point(t: f64, node: String, info: &Info) -> InfoPoint {
    InfoPoint {
        t: (t * 10.0).round() / 10.0,
        node,
        run_id: info.get("run_id").unwrap_or_default().to_string(),
        role: info.get("role").unwrap_or_default().to_string(),
        values: SERIES_FIELDS
            .iter()
            .filter_map(|f| Some((f.to_string(), info.num(f)?)))
            .collect(),
    }
}

/// What the sampler saw.
pub(crate) struct Sampled {
    pub(crate) points: Vec<InfoPoint>,
    /// `PING` round trips on the probe's own connection during the load, µs.
    pub(crate) probe: Histogram<u64>,
}

/// Samples until stopped.
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Sampled>,
}

/// Probes per `INFO` sample.
const PROBES_PER_SAMPLE: u32 = 10;

impl Sampler {
    /// Starts sampling `redis`; `probe` is a second handle (its own connection) for the `PING`s;
    /// times are seconds since `t0`.
    pub(crate) fn start(
        redis: Redis,
        probe: Option<Redis>,
        clock: Arc<ServerClock>,
        t0: Instant,
    ) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut out = Sampled {
                points: Vec::new(),
                probe: new_histogram(),
            };
            let period = Duration::from_secs(1) / PROBES_PER_SAMPLE;
            // Jittered waits (½ to 1½ periods), not a fixed tick: a 100 ms tick phase-locks with
            // a CFS quota's 100 ms period, and after one stall every later probe lands just as
            // the throttled server runs again, so a server frozen 95 % of the time looked fast
            // (probe median 830 µs where an unlocked run saw 34 ms).
            let mut rng = SmallRng::from_os_rng();
            let mut n = 0u32;
            loop {
                let wait = period.mul_f64(rng.random_range(0.5..1.5));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => break,
                }
                if let Some(p) = &probe
                    && let Some(rtt) = ping(p, period).await
                {
                    out.probe.saturating_record(rtt.as_micros() as u64);
                }
                n += 1;
                if n % PROBES_PER_SAMPLE != 1 {
                    continue;
                }
                let node = node_of(&redis);
                if let Ok(Ok(i)) =
                    tokio::time::timeout(Duration::from_secs(1), info(&redis, "default")).await
                {
                    out.points.push(point(t0.elapsed().as_secs_f64(), node, &i));
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), clock.sync(&redis)).await;
            }
            out
        });
        Sampler { stop, task }
    }

    pub(crate) async fn finish(self) -> Sampled {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_else(|_| Sampled {
            points: Vec::new(),
            probe: new_histogram(),
        })
    }
}

/// One `PING` round trip: `bound` when it did not come back within it (a floor, not a
/// measurement: the server took at least that long), `None` when it failed.
pub(crate) async fn ping(redis: &Redis, bound: Duration) -> Option<Duration> {
    let sent = Instant::now();
    match tokio::time::timeout(bound, redis.ping()).await {
        Ok(Ok(())) => Some(sent.elapsed()),
        Ok(Err(_)) => None,
        Err(_) => Some(bound),
    }
}

/// The median `PING` round trip over `n` probes on an idle server: the baseline the load's
/// probes are compared with.
pub(crate) async fn idle_rtt(redis: &Redis, n: u32) -> Option<u64> {
    let mut h = new_histogram();
    for _ in 0..n {
        if let Some(rtt) = ping(redis, Duration::from_secs(1)).await {
            h.saturating_record(rtt.as_micros() as u64);
        }
    }
    (!h.is_empty()).then(|| h.value_at_quantile(0.5))
}

/// Fields that are levels, not counters: their difference is not work done.
const GAUGES: [&str; 3] = [
    "used_memory",
    "connected_clients",
    "instantaneous_ops_per_sec",
];

/// Counter growth from `before` to `after`, added up node by node, and per node. When one server
/// answered both (same `run_id`), it is `after − before`; when the primary changed, each node's
/// growth over its own stretch of the series — never a subtraction across two servers.
pub(crate) fn deltas(
    before: &Info,
    after: &Info,
    series: &[InfoPoint],
) -> (
    BTreeMap<String, f64>,
    BTreeMap<String, BTreeMap<String, f64>>,
) {
    let counters = |m: BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.into_iter()
            .filter(|(k, _)| !GAUGES.contains(&k.as_str()))
            .collect()
    };
    let grow = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        b.iter()
            .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(*v)))
            .collect()
    };
    let run_id = |i: &Info| i.get("run_id").map(str::to_string);
    if run_id(before).is_some() && run_id(before) == run_id(after) {
        let d = grow(&counters(selected(before)), &counters(selected(after)));
        let node = series.first().map_or_else(String::new, |p| p.node.clone());
        return (d.clone(), BTreeMap::from([(node, d)]));
    }
    let mut by_node: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut start = 0;
    for i in 1..=series.len() {
        let boundary = i == series.len()
            || series[i].node != series[start].node
            || series[i].run_id != series[start].run_id;
        if !boundary {
            continue;
        }
        let as_map = |p: &InfoPoint| -> BTreeMap<String, f64> {
            p.values.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let d = grow(
            &counters(as_map(&series[start])),
            &counters(as_map(&series[i - 1])),
        );
        let entry = by_node.entry(series[start].node.clone()).or_default();
        for (k, v) in d {
            *entry.entry(k).or_default() += v;
        }
        start = i;
    }
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for d in by_node.values() {
        for (k, v) in d {
            *total.entry(k.clone()).or_default() += v;
        }
    }
    (total, by_node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_never_subtracted_across_two_servers() {
        let info = |run: &str, hits: u64| {
            Info::parse(&format!(
                "run_id:{run}\r\nkeyspace_hits:{hits}\r\nused_memory:5\r\n"
            ))
        };
        let p = |t: f64, node: &str, run: &str, hits: f64| InfoPoint {
            t,
            node: node.into(),
            run_id: run.into(),
            role: "master".into(),
            values: BTreeMap::from([("keyspace_hits".to_string(), hits)]),
        };
        // One server: after − before.
        let (d, _) = deltas(
            &info("a", 100),
            &info("a", 400),
            &[p(1.0, "n1", "a", 150.0)],
        );
        assert_eq!(d["keyspace_hits"], 300.0);
        assert!(!d.contains_key("used_memory"), "a gauge is not a delta");
        // A failover: the new primary starts from its own count, lower than the old one's.
        let series = [
            p(1.0, "n1", "a", 1000.0),
            p(2.0, "n1", "a", 1500.0),
            p(3.0, "n2", "b", 10.0),
            p(4.0, "n2", "b", 210.0),
        ];
        let (d, by_node) = deltas(&info("a", 900), &info("b", 220), &series);
        assert_eq!(d["keyspace_hits"], 500.0 + 200.0);
        assert!(d.values().all(|v| *v >= 0.0), "{d:?}");
        assert_eq!(by_node["n2"]["keyspace_hits"], 200.0);
    }
}
