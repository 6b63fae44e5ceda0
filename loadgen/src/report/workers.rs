//! The scale-out parts of `summary.json`: a worker's shard ([`WorkerInfo`], written by
//! `loadgen run --worker I/N`) and what `loadgen merge` records about the workers it added up
//! ([`MergeReport`]). Kept apart from [`super::summary`] so a reader of one run's schema does not
//! wade through the merge's.

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` in a scale-out run: its share of the load and its slice of the
/// keyspace (`engine::shard` says how they are cut), and who ran it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    pub index: u32,
    pub count: u32,
    /// The scenario's seed; this worker's is `base_seed + index` (in `config.seed`).
    pub base_seed: u64,
    /// The scenario's `load.ramp` (each worker ramps at its share of it).
    pub base_ramp: Option<f64>,
    /// First account id and first client IP index of this worker's slice (`config.keyspace`
    /// holds how many).
    pub accounts_from: u32,
    pub client_ips_from: u32,
    /// The shared start (`--start-at`, RFC 3339), if one was given.
    pub start_at: Option<String>,
    /// Seconds the attack began after `start_at` (seeding overran it); 0 when on time.
    pub late_s: Option<f64>,
    /// Host name and process id: which pod, container or process this was.
    pub host: String,
    pub pid: u32,
}

/// What `loadgen merge` records about the runs it added up.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct MergeReport {
    /// One per worker, by index.
    pub workers: Vec<WorkerRun>,
    /// Largest minus smallest worker clock offset to Redis `TIME`, ms: how far apart the
    /// workers' clocks were (every worker asked the same server).
    pub clock_skew_ms: Option<f64>,
    /// Workers that started late or were interrupted, by index, in words.
    pub late_or_failed: Vec<String>,
    /// How each section was combined (percentiles, counters, Redis figures), for the reader.
    pub method: Vec<String>,
}

/// One worker of a merged run, as its own `summary.json` had it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WorkerRun {
    pub index: u32,
    pub dir: String,
    pub host: String,
    pub pid: u32,
    pub started_utc: String,
    pub ops: u64,
    pub throughput: f64,
    /// Its bottleneck verdict (`generator`, `server`, `none`, `unknown`).
    pub bottleneck: String,
    pub bottleneck_rule: String,
    pub cpu_us_per_op: f64,
    pub redis_clock_offset_ms: Option<f64>,
    pub late_s: Option<f64>,
    pub interrupted: bool,
    pub passed: bool,
}

/// `report.md`'s scale-out section: this worker's shard, or the merged run's workers.
pub fn markdown(worker: Option<&WorkerInfo>, merge: Option<&MergeReport>) -> String {
    use std::fmt::Write as _;

    use super::markdown::{Align, Table};
    let mut o = String::new();
    if let Some(w) = worker {
        let _ = writeln!(
            o,
            "## Worker {} of {}\n\nShard {}/{} of a scale-out run on `{}` (pid {}): accounts from u{}, client IPs from index {}, seed {} + {}{}. Merge the workers with `loadgen merge`.\n",
            w.index + 1,
            w.count,
            w.index,
            w.count,
            w.host,
            w.pid,
            w.accounts_from,
            w.client_ips_from,
            w.base_seed,
            w.index,
            match (&w.start_at, w.late_s) {
                (Some(at), Some(late)) =>
                    format!("; shared start {at}, began {late:.3} s after it"),
                (Some(at), None) => format!("; shared start {at}"),
                _ => String::new(),
            }
        );
    }
    let Some(m) = merge else {
        return o;
    };
    let r = Align::Right;
    let mut t = Table::new(&[
        ("worker", r),
        ("host", Align::Left),
        ("ops", r),
        ("ops/s", r),
        ("loadgen CPU/op", r),
        ("Redis clock − local", r),
        ("began late", r),
        ("bottleneck", Align::Left),
        ("verdict", Align::Left),
    ]);
    for w in &m.workers {
        t.row([
            w.index.to_string(),
            format!("{} (pid {})", w.host, w.pid),
            super::fmt::count(w.ops),
            super::fmt::figure(w.throughput),
            format!("{:.2} µs", w.cpu_us_per_op),
            w.redis_clock_offset_ms
                .map_or("–".into(), |v| format!("{v:.1} ms")),
            w.late_s.map_or("–".into(), |v| format!("{v:.3} s")),
            w.bottleneck.clone(),
            if w.interrupted {
                "interrupted".into()
            } else if w.passed {
                "pass".into()
            } else {
                "FAIL".to_string()
            },
        ]);
    }
    let _ = writeln!(
        o,
        "## Workers\n\n{} workers merged. Clock skew between workers (spread of their offsets to Redis `TIME`): {}.{}\n\n{}",
        m.workers.len(),
        m.clock_skew_ms
            .map_or("not measured".into(), |v| format!("{v:.1} ms")),
        if m.late_or_failed.is_empty() {
            String::new()
        } else {
            format!(" **Late or failed:** {}.", m.late_or_failed.join("; "))
        },
        t.render()
    );
    let _ = writeln!(o, "How the run was merged:\n");
    for line in &m.method {
        let _ = writeln!(o, "- {line}");
    }
    o.push('\n');
    o
}
