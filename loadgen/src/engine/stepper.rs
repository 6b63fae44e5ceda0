//! One measured goose attack on a keyspace that outlives it — `loadgen run`'s one attack, each
//! sweep step, each eviction run — with everything measured around it in one place: Redis's
//! `INFO` before and after, the sampler (INFO series, clock, probe), loadgen's own CPU, the
//! bottleneck attribution and the availability windows.
//!
//! A sweep (and an eviction run) attacks many times in one process (goose allows sequential
//! attacks; FIELD-NOTES), and re-seeding before every step would pile a fresh copy of the keyspace
//! into Redis each time — memory would grow step by step and old sessions would be evicted as
//! "lost". So a [`Stepper`] keeps the stores and the [`Keyspace`](super::keyspace::Keyspace)
//! (what the simulated server remembers) across attacks, and builds a fresh [`Workload`] around
//! them for each one: new load settings, a new recorder, new invariant counters. Goose drops its
//! handles when an attack ends; the stepper waits (bounded) for that and takes the keyspace back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bottleneck::{self, Evidence, RedisCpu};
use super::invariants::InvariantCounts;
use super::progress::Progress;
use super::record::Measured;
use super::redis_admin::{self, Info};
use super::target::Target;
use super::workload::{Workload, WorkloadParts};
use super::{attack, availability, cpu, sampler};
use crate::error::{Error, Result};
use crate::report::summary::{Availability, Bottleneck, InfoPoint, OpStats, ProbeUse};
use crate::scenario::{Load, Scenario};

/// What one attack measured.
pub(crate) struct StepOutcome {
    pub(crate) measured: Measured,
    /// Length of the measured window actually observed.
    pub(crate) seconds: f64,
    pub(crate) invariants: InvariantCounts,
    /// Per op and `all`.
    pub(crate) ops: BTreeMap<String, OpStats>,
    /// Counter deltas over the attack.
    pub(crate) redis: RedisDelta,
    /// `INFO all` just after the attack.
    pub(crate) after: Info,
    /// Redis's clock minus ours, ms.
    pub(crate) clock_offset_ms: Option<f64>,
    /// When the measured window opened, seconds since the attack started (ramp and warm-up).
    pub(crate) window_from_s: f64,
    /// `INFO` every second during it, with the node that answered.
    pub(crate) series: Vec<InfoPoint>,
    pub(crate) bottleneck: Bottleneck,
    pub(crate) availability: Availability,
}

/// Redis's own counters over one attack.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RedisDelta {
    pub(crate) evicted_keys: u64,
    pub(crate) expired_keys: u64,
    pub(crate) keyspace_hits: u64,
    pub(crate) keyspace_misses: u64,
    pub(crate) used_memory_after: u64,
}

impl RedisDelta {
    fn between(before: &Info, after: &Info) -> RedisDelta {
        let d = |f: &str| after.increase_since(before, f);
        RedisDelta {
            evicted_keys: d("evicted_keys"),
            expired_keys: d("expired_keys"),
            keyspace_hits: d("keyspace_hits"),
            keyspace_misses: d("keyspace_misses"),
            used_memory_after: after.num("used_memory").unwrap_or(0.0) as u64,
        }
    }
}

/// Attacks one target again and again with one keyspace.
pub(crate) struct Stepper<'t> {
    target: &'t Target,
    scenario: Scenario,
    workload: Option<Workload>,
    attacks: u64,
    inject_delay: Option<Duration>,
    progress: Progress,
}

impl<'t> Stepper<'t> {
    /// Builds the stores and an empty keyspace for `scenario` on `target` (nothing is written yet:
    /// seed through [`Stepper::workload`]).
    pub(crate) async fn new(
        target: &'t Target,
        scenario: &Scenario,
        inject_delay: Option<Duration>,
        cancel: CancellationToken,
        progress: Progress,
    ) -> Result<Stepper<'t>> {
        let handles = target.load_handles(scenario.load.connections()).await?;
        let w = Workload::for_scenario(scenario, &handles, inject_delay, cancel)?;
        Ok(Stepper {
            target,
            scenario: scenario.clone(),
            workload: Some(w),
            attacks: 0,
            inject_delay,
            progress,
        })
    }

    /// Attacks run so far.
    pub(crate) fn attacks(&self) -> u64 {
        self.attacks
    }

    /// The current workload (stores and keyspace), for seeding between attacks.
    pub(crate) fn workload(&self) -> &Workload {
        // Present except while an attack runs, and `step` takes `&mut self`.
        self.workload
            .as_ref()
            .expect("workload present between attacks")
    }

    /// Runs one attack with `load`; goose's own HTML report goes to `report_html`.
    pub(crate) async fn step(&mut self, load: &Load, report_html: &Path) -> Result<StepOutcome> {
        let prev = self.workload.take().ok_or_else(|| {
            Error::Broken("the previous attack did not give its keyspace back".into())
        })?;
        self.attacks += 1;
        let Workload {
            lanes,
            keyspace,
            cancel,
            clock,
            ..
        } = prev;
        let w = Arc::new(Workload::new(WorkloadParts {
            lanes,
            keyspace,
            weights: self.scenario.mix.weights(),
            rate: load.rate,
            users: load.users,
            warmup: load.warmup.0,
            duration: load.duration.0,
            inject_delay: self.inject_delay,
            seed: self.scenario.seed.wrapping_add(self.attacks),
            cancel,
            clock,
        })?);
        let redis = &self.target.redis;
        let probe = self.target.second_handle().await;
        let idle_rtt = match &probe {
            Some(p) => sampler::idle_rtt(p, 10).await,
            None => None,
        };
        w.clock.sync(redis).await;
        let before = redis_admin::info(redis, "all").await.unwrap_or_default();
        let cpu_nodes_before = redis_admin::info_by_node(redis, "default")
            .await
            .unwrap_or_default();
        let cpu_before = cpu::read();
        let sampler =
            sampler::Sampler::start(redis.clone(), probe, w.clock.clone(), w.recorder.started);
        let attack::Attacked {
            seconds,
            goose_error,
        } = attack::measured(
            &w,
            load,
            self.target.goose_host(),
            report_html,
            &self.progress,
        )
        .await;
        let generator = cpu_before.until(&cpu::read());
        let cpu_nodes_after = redis_admin::info_by_node(redis, "default")
            .await
            .unwrap_or_default();
        let sampled = sampler.finish().await;
        let after = redis_admin::info(redis, "all").await.unwrap_or_default();
        let measured = w.recorder.finish();
        let invariants = w.invariants.counts();
        let ops = measured.op_stats(&self.scenario.mix.weighted_ops(), seconds);
        if let Some(e) = goose_error {
            if measured.ops.iter().all(|o| o.count == 0) {
                return Err(Error::Generator(e));
            }
            self.progress.warn(e);
        }
        let evidence = Evidence {
            generator,
            redis: redis_cpu(&cpu_nodes_before, &cpu_nodes_after),
            probe: (!sampled.probe.is_empty()).then(|| ProbeUse {
                idle_p50_us: idle_rtt,
                p50_us: sampled.probe.value_at_quantile(0.5),
                p99_us: sampled.probe.value_at_quantile(0.99),
                samples: sampled.probe.len(),
            }),
            ops: ops.get("all").map_or(0, |a| a.count),
            achieved: ops.get("all").map_or(0.0, |a| a.throughput),
            offered: load.rate,
            lag_p99_us: load.rate.map(|_| measured.lag_p99_us()),
            same_host: self
                .target
                .same_host()
                .then(|| std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)),
        };
        let availability = availability::report(&measured.timeline(), &sampled.points);
        let clock_offset_ms = w.clock.offset_ms();
        let window_from_s = w.recorder.window.start().map_or(0.0, |s| {
            s.saturating_duration_since(w.recorder.started)
                .as_secs_f64()
        });
        self.workload = Some(reclaim(w).await?);
        if let Some(refused) = measured.permission_refusal() {
            return Err(refused);
        }
        Ok(StepOutcome {
            seconds,
            invariants,
            ops,
            redis: RedisDelta::between(&before, &after),
            bottleneck: bottleneck::attribute(&evidence),
            availability,
            series: sampled.points,
            measured,
            after,
            clock_offset_ms,
            window_from_s,
        })
    }
}

/// Redis's CPU over the attack, from each primary's `INFO` (default sections: `cpu` for the
/// counters, `server` for the `run_id` that tells a restart or failover) before and after: the busiest
/// node's main thread (a hot slot shows as one node's CPU) and all threads of all nodes. `None`
/// unless every node answered both with the same `run_id` (a failover moves the counters).
fn redis_cpu(before: &[(String, Info)], after: &[(String, Info)]) -> Option<RedisCpu> {
    if before.is_empty() || before.len() != after.len() {
        return None;
    }
    let mut cpu = RedisCpu {
        main_thread_seconds: 0.0,
        all_threads_seconds: 0.0,
    };
    for ((node_b, b), (node_a, a)) in before.iter().zip(after) {
        if node_b != node_a || b.get("run_id").is_none() || b.get("run_id") != a.get("run_id") {
            return None;
        }
        let grew = |fields: [&str; 2]| -> Option<f64> {
            fields
                .iter()
                .map(|f| Some(a.num(f)? - b.num(f)?))
                .sum::<Option<f64>>()
                .map(|d| d.max(0.0))
        };
        let main = grew(["used_cpu_user_main_thread", "used_cpu_sys_main_thread"])?;
        cpu.main_thread_seconds = cpu.main_thread_seconds.max(main);
        cpu.all_threads_seconds += grew(["used_cpu_user", "used_cpu_sys"])?;
    }
    Some(cpu)
}

/// Takes the workload back once goose has dropped its handles (they go when its users stop).
async fn reclaim(mut w: Arc<Workload>) -> Result<Workload> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(w) {
            Ok(w) => return Ok(w),
            Err(back) if Instant::now() < deadline => {
                w = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                return Err(Error::Broken(
                    "goose still held the workload 10 s after the attack ended; cannot run the next step".into(),
                ));
            }
        }
    }
}
