//! Who did what in a merged run: each worker's line ([`WorkerRun`]), the workers that began late
//! or were interrupted (named in the `workers` verdict), the merged bottleneck (the most limiting
//! worker's verdict, loadgen's CPU summed over the workers, Redis's CPU from the worker whose
//! window saw the most of it — one server, overlapping windows — per merged op), and the clock
//! skew between workers.

use super::collect::Worker;
use crate::engine::bottleneck::SATURATED;
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
    // Workers on one host share its cores; on several hosts each brings its own.
    let one_host = workers.iter().all(|w| w.info.host == workers[0].info.host);
    let cores: f64 = if one_host {
        workers
            .iter()
            .map(|w| b(w).generator.cores)
            .fold(0.0, f64::max)
    } else {
        workers.iter().map(|w| b(w).generator.cores).sum()
    };
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
    let shared = SharedMachine {
        workers: workers.len(),
        one_host,
        cores: cpu_count,
        // Each worker's CPU over its own attack (ramp and warm-up included), not over the
        // measured window: its utilisation times its cores.
        loadgen_cores: workers
            .iter()
            .map(|w| b(w).generator.utilisation * b(w).generator.cores)
            .sum(),
        redis_cores: first.same_host.then_some(redis_cores),
    };
    let (worst, rule) = match shared.limit() {
        Some(why) => (Limit::Generator, why),
        None if rule.is_empty() => (worst, first.rule.clone()),
        None => (worst, rule),
    };
    Bottleneck {
        verdict: worst,
        rule,
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

/// Workers that ran on one machine, and what they (and Redis, when it ran there too) used of it.
/// Each worker alone sees its siblings as "other processes" and can only say `unknown`; together
/// they can tell that the machine they shared was the limit.
struct SharedMachine {
    workers: usize,
    one_host: bool,
    /// That machine's cores.
    cores: f64,
    /// Cores all the workers used together over the window.
    loadgen_cores: f64,
    /// Cores Redis used, when it ran on the same machine.
    redis_cores: Option<f64>,
}

impl SharedMachine {
    /// Why the shared machine was the limit, or `None` when it was not (or the workers did not
    /// share one).
    fn limit(&self) -> Option<String> {
        if !self.one_host || self.workers < 2 || self.cores <= 0.0 {
            return None;
        }
        let used = (self.loadgen_cores + self.redis_cores.unwrap_or(0.0)) / self.cores;
        if used < SATURATED {
            return None;
        }
        let who = match self.redis_cores {
            Some(r) => format!(
                "the {} workers ({:.2} cores) and Redis ({r:.2} cores)",
                self.workers, self.loadgen_cores
            ),
            None => format!(
                "the {} workers ({:.2} cores)",
                self.workers, self.loadgen_cores
            ),
        };
        Some(format!(
            "{who} shared one machine's {} cores and used {:.0}% of them: the machine, not Redis, \
             was the limit (each worker counted its siblings as other processes); run the workers \
             on machines of their own to measure Redis",
            self.cores,
            used * 100.0
        ))
    }
}

/// Largest minus smallest, if there are two or more.
pub(super) fn spread(values: &[f64]) -> Option<f64> {
    let max = values.iter().copied().reduce(f64::max)?;
    let min = values.iter().copied().reduce(f64::min)?;
    (values.len() > 1).then(|| ((max - min) * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::SharedMachine;

    fn shared(one_host: bool, loadgen: f64, redis: Option<f64>) -> Option<String> {
        SharedMachine {
            workers: 3,
            one_host,
            cores: 2.0,
            loadgen_cores: loadgen,
            redis_cores: redis,
        }
        .limit()
    }

    #[test]
    fn workers_that_filled_the_machine_they_shared_name_it_as_the_limit() {
        // The scale-out run on this 2-core machine: 3 workers 1.66 cores, Redis 0.29.
        let why = shared(true, 1.66, Some(0.29)).expect("saturated");
        assert!(why.contains("used 98%") && why.contains("2 cores"), "{why}");
        assert!(shared(true, 1.5, None).is_none(), "75% of the machine");
        assert!(shared(true, 1.4, Some(0.3)).is_none(), "85% of the machine");
        assert!(shared(false, 1.9, Some(0.3)).is_none(), "several hosts");
        assert!(
            shared(true, 1.85, None).is_some(),
            "Redis elsewhere, workers 93%"
        );
    }
}
