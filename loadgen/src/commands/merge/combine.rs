//! Adding N workers up into one run.
//!
//! **Latency** comes only from the `latency.hlog` intervals, never from the workers' percentiles:
//! each interval is placed on absolute time (whole seconds from the earliest interval's start),
//! intervals of the same second and tag are added, and each op's totals are the sum of all its
//! intervals. A merged percentile is therefore the percentile of the union of every value the
//! workers recorded. The merged histograms go through the same [`Measured`] a single run fills,
//! so the per-op table, the per-second series, the `.hgrm` files and the SLO verdicts are made by
//! the code that makes them for one process.
//!
//! **Counts** (ops, errors, denials, misses) and **invariants** (violations and their `checked`)
//! are summed; **throughput** is the sum of the workers' throughputs (each over its own window).
//! The **scenario** is rebuilt whole: users, rate, accounts and client IPs summed, the base seed
//! and ramp restored, so `compare` sees the same workload as a single process running it.
//! Each worker's **bottleneck** verdict is listed; the merged one is the most limiting (generator
//! before server before none). A **workers** verdict fails when a worker was interrupted or began
//! more than [`verdicts::LATE_S`] after the shared start, and names it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::collect::Worker;
use super::verdicts;
use super::{availability, redis};
use crate::engine::judge;
use crate::engine::record::{Measured, OpMeasured, new_histogram};
use crate::error::{Error, Result};
use crate::report::Summary;
use crate::report::hlog::{self, Interval};
use crate::report::run::write_all;
use crate::report::summary::{
    ErrorClass, InvariantCounts, RunInfo, SecondSample, SloResult, Verdict,
};
use crate::report::workers::MergeReport;
use crate::scenario::{Op, SliceStart};

/// The merged run, ready to write.
pub(super) struct Merged {
    pub(super) summary: Summary,
    measured: Measured,
    intervals: Vec<Interval>,
}

impl Merged {
    /// Writes the merged results directory: everything a single run writes, and `latency.hlog`.
    pub(super) fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_all(
            dir,
            &self.summary,
            &self.measured.histograms(),
            &self.measured.series,
        )?;
        let start = self.intervals.first().map_or(Duration::ZERO, |i| i.start);
        hlog::write(
            &dir.join("latency.hlog"),
            SystemTime::UNIX_EPOCH + start,
            self.intervals.iter().map(|i| Interval {
                tag: i.tag.clone(),
                start: i.start,
                length: i.length,
                histogram: i.histogram.clone(),
            }),
        )
    }
}

/// Combines `workers` (checked to be one run) into the run written to `out`.
pub(super) fn all(workers: &[Worker], out: &Path) -> Result<Merged> {
    let first = &workers[0].summary;
    let (intervals, totals) = add_intervals(workers);
    let sum = |f: &dyn Fn(&Summary) -> u64| workers.iter().map(|w| f(&w.summary)).sum::<u64>();
    let ops = Op::ALL
        .iter()
        .map(|&op| {
            let of = |f: fn(&crate::report::summary::OpStats) -> u64| {
                sum(&|s| s.ops.get(op.name()).map_or(0, f))
            };
            let total = |kind| {
                totals
                    .get(&hlog::tag(op.name(), kind))
                    .cloned()
                    .unwrap_or_else(new_histogram)
            };
            OpMeasured {
                op,
                count: of(|o| o.count),
                errors: of(|o| o.errors),
                denied: of(|o| o.denied),
                misses: of(|o| o.misses),
                service: total("service"),
                response: total("response"),
                errors_by_class: BTreeMap::new(),
                lag: new_histogram(),
                timeline: Vec::new(),
            }
        })
        .collect();
    let measured = Measured {
        ops,
        series: series(workers, &intervals),
        intervals: Vec::new(),
    };
    for o in &measured.ops {
        if o.response.len() != o.count {
            return Err(Error::usage(format!(
                "merge: {} counts {} ops in the workers' summary.json but {} in their latency.hlog: a worker's files are incomplete",
                o.op.name(),
                o.count,
                o.response.len()
            )));
        }
    }

    let mut config = first.config.clone();
    config.seed = workers[0].info.base_seed;
    config.load.ramp = workers[0].info.base_ramp;
    config.load.users = workers.iter().map(|w| w.summary.config.load.users).sum();
    config.load.rate = first.config.load.rate.map(|_| {
        workers
            .iter()
            .filter_map(|w| w.summary.config.load.rate)
            .sum()
    });
    config.keyspace.users = workers
        .iter()
        .map(|w| w.summary.config.keyspace.users)
        .sum();
    config.keyspace.client_ips = workers
        .iter()
        .map(|w| w.summary.config.keyspace.client_ips)
        .sum();
    config.keyspace.slice_from = SliceStart::default();

    let seconds = workers
        .iter()
        .map(|w| w.summary.run.measured_seconds)
        .sum::<f64>()
        / workers.len() as f64;
    let mut op_stats = measured.op_stats(&config.mix.weighted_ops(), seconds);
    for (name, stats) in op_stats.iter_mut() {
        stats.throughput = workers
            .iter()
            .filter_map(|w| w.summary.ops.get(name))
            .map(|o| o.throughput)
            .sum::<f64>();
        stats.throughput = (stats.throughput * 10.0).round() / 10.0;
    }
    let invariants = invariants(workers);
    let mut checks = judge::judge(&config.slo, &measured, &invariants, seconds);
    let runs = verdicts::worker_runs(workers);
    let late_or_failed = verdicts::late_or_failed(&runs);
    checks.push(verdicts::workers_verdict(&runs, &late_or_failed));
    let passed = checks.iter().all(Verdict::holds);
    let total_ops = op_stats.get("all").map_or(0, |o| o.count);
    let offsets: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.redis_clock_offset_ms)
        .collect();
    let (redis, redis_note) = redis::union(workers);
    let (availability, availability_note) = availability::union(workers);

    let summary = Summary {
        schema_version: first.schema_version,
        scenario: first.scenario.clone(),
        target: first.target.clone(),
        run: RunInfo {
            started_utc: workers.iter().map(|w| w.summary.run.started_utc.clone()).min().unwrap_or_default(),
            results_dir: out.display().to_string(),
            model: first.run.model.clone(),
            target_rate: config.load.rate,
            measured_seconds: (seconds * 1000.0).round() / 1000.0,
            measured_from_s: first.run.measured_from_s,
            interrupted: false,
            inject_delay_us: first.run.inject_delay_us,
            seeded_sessions: workers.iter().map(|w| w.summary.run.seeded_sessions).sum(),
            redis_clock_offset_ms: (!offsets.is_empty())
                .then(|| offsets.iter().sum::<f64>() / offsets.len() as f64),
        },
        config,
        ops: op_stats,
        invariants,
        slo: SloResult {
            passed,
            verdicts: checks,
        },
        bottleneck: verdicts::bottleneck(workers, total_ops),
        availability,
        redis,
        series: measured.series_report(),
        errors: errors(workers),
        environment: crate::report::summary::Environment {
            loadgen_peak_rss_bytes: workers.iter().filter_map(|w| w.summary.environment.loadgen_peak_rss_bytes).max(),
            ..first.environment.clone()
        },
        memory_projection: None,
        worker: None,
        workers: Some(workers.len() as u32),
        merge: Some(MergeReport {
            clock_skew_ms: verdicts::spread(&offsets),
            workers: runs,
            late_or_failed,
            method: vec![
                "latency: the workers' latency.hlog histograms added interval by interval on absolute time; every percentile is that of the union of their values".into(),
                "counts, errors and invariants (with their `checked`): summed; throughput: the workers' throughputs summed".into(),
                redis_note,
                availability_note,
                "memory projection: none (scale-out workers do not measure it: they would disturb each other; run `loadgen capacity` on its own); calibration: worker 0's".into(),
            ],
        }),
    };
    Ok(Merged {
        summary,
        measured,
        intervals,
    })
}

/// The merged intervals (one per second and tag, on absolute time) and each tag's total.
fn add_intervals(
    workers: &[Worker],
) -> (
    Vec<Interval>,
    BTreeMap<String, hdrhistogram::Histogram<u64>>,
) {
    let t0 = workers
        .iter()
        .flat_map(|w| w.intervals.iter().map(|i| i.start))
        .min()
        .unwrap_or_default();
    let mut by_second: BTreeMap<(u64, String), hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut totals: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    for i in workers.iter().flat_map(|w| &w.intervals) {
        let second = (i.start - t0).as_secs_f64().round() as u64;
        // Same bounds everywhere (1 µs–60 s, 3 digits): adding cannot fail.
        let _ = by_second
            .entry((second, i.tag.clone()))
            .or_insert_with(new_histogram)
            .add(&i.histogram);
        let _ = totals
            .entry(i.tag.clone())
            .or_insert_with(new_histogram)
            .add(&i.histogram);
    }
    let merged = by_second
        .into_iter()
        .map(|((second, tag), histogram)| Interval {
            tag,
            start: t0 + Duration::from_secs(second),
            length: Duration::from_secs(1),
            histogram,
        })
        .collect();
    (merged, totals)
}

/// The per-second series from the merged intervals (errors per second: the workers' summed).
fn series(workers: &[Worker], intervals: &[Interval]) -> Vec<[SecondSample; 7]> {
    let Some(t0) = intervals.iter().map(|i| i.start).min() else {
        return Vec::new();
    };
    let mut out: Vec<[SecondSample; 7]> = Vec::new();
    for i in intervals {
        let Some((op, kind)) = hlog::split_tag(&i.tag) else {
            continue;
        };
        let Some(op) = Op::ALL.into_iter().find(|o| o.name() == op) else {
            continue;
        };
        let second = (i.start - t0).as_secs() as usize;
        if out.len() <= second {
            out.resize(second + 1, [SecondSample::default(); 7]);
        }
        let s = &mut out[second][op.index()];
        let h = &i.histogram;
        if kind == "response" {
            s.count = h.len();
            s.p50_us = h.value_at_quantile(0.5);
            s.p99_us = h.value_at_quantile(0.99);
            s.errors = workers
                .iter()
                .filter_map(|w| w.summary.series.errors.get(op.name())?.get(second))
                .sum();
        } else {
            s.service_p99_us = h.value_at_quantile(0.99);
        }
    }
    out
}

fn invariants(workers: &[Worker]) -> InvariantCounts {
    let mut t = InvariantCounts::default();
    for w in workers {
        let i = &w.summary.invariants;
        t.lost_sessions += i.lost_sessions;
        t.sessions_checked += i.sessions_checked;
        t.ratelimit_over_admissions += i.ratelimit_over_admissions;
        t.ratelimit_decisions_checked += i.ratelimit_decisions_checked;
        t.admitted_while_degraded += i.admitted_while_degraded;
        t.degraded_decisions += i.degraded_decisions;
        t.revoked_tokens_validating += i.revoked_tokens_validating;
        t.revoked_tokens_checked += i.revoked_tokens_checked;
        t.token_cache_misses += i.token_cache_misses;
        t.tokens_checked += i.tokens_checked;
    }
    t
}

/// Errors per op and class, counts summed, the first worker's example kept.
fn errors(workers: &[Worker]) -> BTreeMap<String, BTreeMap<String, ErrorClass>> {
    let mut out: BTreeMap<String, BTreeMap<String, ErrorClass>> = BTreeMap::new();
    for (op, classes) in workers.iter().flat_map(|w| &w.summary.errors) {
        for (class, e) in classes {
            out.entry(op.clone())
                .or_default()
                .entry(class.clone())
                .and_modify(|m| m.count += e.count)
                .or_insert_with(|| e.clone());
        }
    }
    out
}
