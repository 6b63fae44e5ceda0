//! The server's side of a merged run. All workers measured the same Redis over overlapping
//! windows, so nothing here is a sum across workers (that would count the server's work N times):
//!
//! - `before` is the earliest view (the smallest `total_commands_processed` any worker saw before
//!   its load), `after` the latest (the largest after), and the counter growth is `after − before`
//!   over that **union window** (when one server answered all of them: same node, no failover);
//! - per node, and when the servers changed (a failover), each counter's largest growth any
//!   worker saw: a lower bound of the union, and said so;
//! - command statistics: per command, the largest count any worker saw (a lower bound, said so);
//! - `MEMORY USAGE` samples: every worker's, averaged by sample count;
//! - the nodes as the last worker to finish left them; the `INFO` series: every worker's samples.

use std::collections::BTreeMap;

use super::collect::Worker;
use crate::report::summary::{KeyCost, RedisReport};

/// The merged Redis section and a sentence saying how it was merged.
pub(super) fn union(workers: &[Worker]) -> (RedisReport, String) {
    fn r(w: &Worker) -> &RedisReport {
        &w.summary.redis
    }
    let commands = |m: &BTreeMap<String, f64>| m.get("total_commands_processed").copied();
    let earliest = workers
        .iter()
        .min_by(|a, b| {
            commands(&r(a).before)
                .partial_cmp(&commands(&r(b).before))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(&workers[0]);
    let latest = workers
        .iter()
        .max_by(|a, b| {
            commands(&r(a).after)
                .partial_cmp(&commands(&r(b).after))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(&workers[0]);
    let (before, after) = (r(earliest).before.clone(), r(latest).after.clone());

    let mut by_node: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (node, d) in workers.iter().flat_map(|w| &r(w).deltas_by_node) {
        let entry = by_node.entry(node.clone()).or_default();
        for (k, v) in d {
            let e = entry.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
    }
    let one_server = by_node.len() == 1
        && workers.iter().all(|w| r(w).deltas_by_node.len() == 1)
        && before.contains_key("total_commands_processed");
    let (deltas, note) = if one_server {
        let node = by_node.keys().next().cloned().unwrap_or_default();
        let keys: Vec<String> = by_node[&node].keys().cloned().collect();
        let d: BTreeMap<String, f64> = keys
            .into_iter()
            .filter_map(|k| Some((k.clone(), after.get(&k)? - before.get(&k)?)))
            .collect();
        by_node.insert(node, d.clone());
        (
            d,
            "redis: one server; counters grew by `after − before` over the union of the workers' windows (earliest before, latest after); command statistics: the largest any worker saw",
        )
    } else {
        let mut d: BTreeMap<String, f64> = BTreeMap::new();
        for node in by_node.values() {
            for (k, v) in node {
                *d.entry(k.clone()).or_default() += v;
            }
        }
        (
            d,
            "redis: several nodes served (cluster or failover); per node, each counter's largest growth any worker saw (a lower bound of the union window)",
        )
    };

    let mut commandstats = BTreeMap::new();
    for (cmd, c) in workers.iter().flat_map(|w| &r(w).commandstats) {
        let e = commandstats.entry(cmd.clone()).or_insert(*c);
        if c.calls > e.calls {
            *e = *c;
        }
    }
    let mut series: Vec<_> = workers.iter().flat_map(|w| r(w).series.clone()).collect();
    series.sort_by(|a, b| a.t.total_cmp(&b.t).then_with(|| a.node.cmp(&b.node)));

    let report = RedisReport {
        version: r(&workers[0]).version.clone(),
        before,
        after,
        deltas,
        deltas_by_node: by_node,
        commandstats,
        bytes_per_key: bytes_per_key(workers),
        nodes: r(latest).nodes.clone(),
        series,
    };
    (report, note.into())
}

/// Every worker's `MEMORY USAGE` samples per key kind, averaged by sample count.
fn bytes_per_key(workers: &[Worker]) -> BTreeMap<String, KeyCost> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (kind, c) in workers.iter().flat_map(|w| &w.summary.redis.bytes_per_key) {
        let e = sums.entry(kind.clone()).or_default();
        e.0 += c.mean_bytes * c.samples as f64;
        e.1 += c.samples;
    }
    sums.into_iter()
        .map(|(kind, (total, samples))| {
            let mean = (total / samples.max(1) as f64 * 10.0).round() / 10.0;
            (
                kind,
                KeyCost {
                    mean_bytes: mean,
                    samples,
                },
            )
        })
        .collect()
}
