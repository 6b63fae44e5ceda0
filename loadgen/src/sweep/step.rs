//! One measured goose attack on a keyspace that outlives it: what a sweep step and an eviction
//! run each are.
//!
//! `loadgen run` builds a workload, seeds it and attacks once. A sweep attacks many times in one
//! process (goose allows sequential attacks; FIELD-NOTES), and re-seeding before every step would
//! pile a fresh copy of the keyspace into Redis each time — memory would grow step by step and old
//! sessions would be evicted as "lost". So a [`Stepper`] keeps the stores and the
//! [`Keyspace`](crate::keyspace::Keyspace) (what the simulated server remembers) across attacks,
//! and builds a fresh [`Workload`] around them for each one: new load settings, a new recorder, new
//! invariant counters. Goose drops its handles when an attack ends; the stepper waits (bounded)
//! for that and takes the keyspace back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Fatal;
use crate::attack;
use crate::invariants::InvariantCounts;
use crate::observe::{self, Info};
use crate::record::Measured;
use crate::report::{self, OpStats};
use crate::scenario::{Load, Scenario};
use crate::target::Target;
use crate::workload::{Workload, WorkloadParts};

/// What one attack measured.
pub struct StepOutcome {
    pub measured: Measured,
    /// Length of the measured window actually observed.
    pub seconds: f64,
    pub invariants: InvariantCounts,
    /// Per op and `all`.
    pub ops: BTreeMap<String, OpStats>,
    /// Counter deltas from `INFO stats` over the attack.
    pub redis: RedisDelta,
}

/// Redis's own counters over one attack.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RedisDelta {
    pub evicted_keys: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub used_memory_after: u64,
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
pub struct Stepper<'t> {
    target: &'t Target,
    scenario: Scenario,
    workload: Option<Workload>,
    attacks: u64,
}

impl<'t> Stepper<'t> {
    /// Builds the stores and an empty keyspace for `scenario` on `target` (nothing is written yet:
    /// seed through [`Stepper::workload`]).
    pub async fn new(target: &'t Target, scenario: &Scenario) -> Result<Stepper<'t>, Fatal> {
        let w = crate::run::build_workload(scenario, target, None).await?;
        Ok(Stepper {
            target,
            scenario: scenario.clone(),
            workload: Some(w),
            attacks: 0,
        })
    }

    /// The current workload (stores and keyspace), for seeding between attacks.
    pub fn workload(&self) -> &Workload {
        // Present except while an attack runs, and `step` takes `&mut self`.
        self.workload
            .as_ref()
            .expect("workload present between attacks")
    }

    /// Runs one attack with `load`; goose's own HTML report goes to `report_html`.
    pub async fn step(&mut self, load: &Load, report_html: &Path) -> Result<StepOutcome, Fatal> {
        let prev = self
            .workload
            .take()
            .ok_or_else(|| Fatal::run("the previous attack did not give its keyspace back"))?;
        self.attacks += 1;
        let Workload {
            sessions,
            tokens,
            limiter,
            keyspace,
            ..
        } = prev;
        let w = Arc::new(
            Workload::new(WorkloadParts {
                sessions,
                tokens,
                limiter,
                keyspace,
                weights: self.scenario.mix.weights(),
                rate: load.rate,
                users: load.users,
                warmup: load.warmup.0,
                duration: load.duration.0,
                inject_delay: None,
                seed: self.scenario.seed.wrapping_add(self.attacks),
            })
            .map_err(Fatal::usage)?,
        );
        let redis = &self.target.redis;
        let before = observe::info(redis, "all").await.unwrap_or_default();
        let seconds = attack::measured(&w, load, self.target.goose_host(), report_html).await;
        let after = observe::info(redis, "all").await.unwrap_or_default();
        let measured = w.recorder.finish();
        let invariants = w.invariants.counts();
        let ops = report::op_stats(&measured, &self.scenario.mix.weighted_ops(), seconds);
        self.workload = Some(reclaim(w).await?);
        Ok(StepOutcome {
            measured,
            seconds,
            invariants,
            ops,
            redis: RedisDelta::between(&before, &after),
        })
    }
}

/// Takes the workload back once goose has dropped its handles (they go when its users stop).
async fn reclaim(mut w: Arc<Workload>) -> Result<Workload, Fatal> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(w) {
            Ok(w) => return Ok(w),
            Err(back) if Instant::now() < deadline => {
                w = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                return Err(Fatal::run(
                    "goose still held the workload 10 s after the attack ended; cannot run the next step",
                ));
            }
        }
    }
}
