//! Who did what in a merged run: each worker's line ([`WorkerRun`]), the workers that began late
//! or were interrupted (named in the `workers` verdict), the merged bottleneck (the most limiting
//! worker's verdict, loadgen's CPU summed over the workers, Redis's CPU from the worker whose
//! window saw the most of it — one server, overlapping windows — per merged op), and the clock
//! skew between workers.

use super::collect::Worker;
use crate::report::summary::{Bottleneck, GeneratorUse, Limit, ServerUse, Status, Verdict};
use crate::report::workers::WorkerRun;

/// A worker whose load began this many seconds after the shared start is named as late.
pub(super) const LATE_S: f64 = 1.0;

pub(super) fn worker_runs(workers: &[Worker]) -> Vec<WorkerRun> {
    let mut runs: Vec<WorkerRun> = workers
        .iter()
        .map(|w| {
            let s = &w.summary;
            let all = s.ops.get("all");
            WorkerRun {
                index: w.info.index,
                dir: w.dir.display().to_string(),
                host: w.info.host.clone(),
                pid: w.info.pid,
                started_utc: s.run.started_utc.clone(),
                ops: all.map_or(0, |o| o.count),
                throughput: all.map_or(0.0, |o| o.throughput),
                bottleneck: s.bottleneck.verdict.as_str().to_string(),
                bottleneck_rule: s.bottleneck.rule.clone(),
                cpu_us_per_op: s.bottleneck.generator.cpu_us_per_op,
                redis_clock_offset_ms: s.run.redis_clock_offset_ms,
                late_s: w.info.late_s,
                interrupted: s.run.interrupted,
                passed: s.slo.passed,
            }
        })
        .collect();
    runs.sort_by_key(|r| r.index);
    runs
}

pub(super) fn late_or_failed(runs: &[WorkerRun]) -> Vec<String> {
    runs.iter()
        .filter_map(|r| {
            if r.interrupted {
                Some(format!("worker {} ({}) was interrupted", r.index, r.host))
            } else {
                r.late_s.filter(|l| *l > LATE_S).map(|l| {
                    format!(
                        "worker {} ({}) began {l:.1} s after the shared start",
                        r.index, r.host
                    )
                })
            }
        })
        .collect()
}

pub(super) fn workers_verdict(runs: &[WorkerRun], late_or_failed: &[String]) -> Verdict {
    Verdict {
        id: "workers".into(),
        name: "every worker ran the whole shared window".into(),
        bound: format!("none interrupted, none later than {LATE_S} s"),
        observed: if late_or_failed.is_empty() {
            format!("{} workers on time", runs.len())
        } else {
            late_or_failed.join("; ")
        },
        checked: runs.len() as u64,
        status: if late_or_failed.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        required: false,
    }
}

/// The most limiting worker verdict; loadgen's CPU summed over the workers; Redis's CPU from the
/// worker whose window saw the most of it (one server, overlapping windows), per merged op.
pub(super) fn bottleneck(workers: &[Worker], total_ops: u64) -> Bottleneck {
    let rank = |l: Limit| match l {
        Limit::Generator => 0,
        Limit::Server => 1,
        Limit::Unknown => 2,
        Limit::None => 3,
    };
    fn b(w: &Worker) -> &Bottleneck {
        &w.summary.bottleneck
    }
    let worst = workers
        .iter()
        .min_by_key(|w| (rank(b(w).verdict), w.info.index))
        .map_or(Limit::Unknown, |w| b(w).verdict);
    let rule = workers
        .iter()
        .filter(|w| b(w).verdict == worst)
        .map(|w| format!("worker {}: {}", w.info.index, b(w).rule))
        .collect::<Vec<_>>()
        .join("; ");
    let cpu: f64 = workers.iter().map(|w| b(w).generator.cpu_seconds).sum();
    let cores: f64 = workers.iter().map(|w| b(w).generator.cores).sum();
    let per_op = |us: f64| ((us / total_ops.max(1) as f64) * 100.0).round() / 100.0;
    let server = workers
        .iter()
        .filter_map(|w| Some((b(w).server.clone()?, w.summary.ops.get("all")?.count)))
        .max_by(|a, b| {
            (a.0.cpu_us_per_op * a.1 as f64).total_cmp(&(b.0.cpu_us_per_op * b.1 as f64))
        })
        .map(|(s, ops)| ServerUse {
            cpu_us_per_op: per_op(s.cpu_us_per_op * ops as f64),
            ..s
        });
    let first = b(&workers[0]);
    let wall = workers[0].summary.run.measured_seconds.max(1e-9);
    // Every worker's loadgen and the one Redis, over the machine's cores (when they share it).
    let cpu_count = workers[0].summary.environment.cpu_count.max(1) as f64;
    let redis_cores = server.as_ref().map_or(0.0, |s| s.cores_used);
    let machine = (cpu / wall + redis_cores) / cpu_count;
    Bottleneck {
        verdict: worst,
        rule: if rule.is_empty() {
            first.rule.clone()
        } else {
            rule
        },
        generator: GeneratorUse {
            cpu_seconds: (cpu * 1000.0).round() / 1000.0,
            cores,
            utilisation: ((cpu / (wall * cores.max(1e-9))) * 1000.0).round() / 1000.0,
            cpu_us_per_op: per_op(cpu * 1e6),
            busiest_thread: None,
            throttled: None,
        },
        server,
        probe: first.probe.clone(),
        offered_ops_per_sec: workers
            .iter()
            .filter_map(|w| b(w).offered_ops_per_sec)
            .reduce(|a, b| a + b),
        achieved_ops_per_sec: workers.iter().map(|w| b(w).achieved_ops_per_sec).sum(),
        schedule_lag_p99_us: workers
            .iter()
            .filter_map(|w| b(w).schedule_lag_p99_us)
            .max(),
        same_host: first.same_host,
        machine_utilisation: first
            .same_host
            .then_some((machine * 1000.0).round() / 1000.0),
        // Workers may run on different machines: the busiest one's figure.
        host_utilisation: workers
            .iter()
            .filter_map(|w| b(w).host_utilisation)
            .reduce(f64::max),
    }
}

/// Largest minus smallest, if there are two or more.
pub(super) fn spread(values: &[f64]) -> Option<f64> {
    let max = values.iter().copied().reduce(f64::max)?;
    let min = values.iter().copied().reduce(f64::min)?;
    (values.len() > 1).then(|| ((max - min) * 1000.0).round() / 1000.0)
}
