//! One measured goose attack on a keyspace that outlives it: what a sweep step and an eviction
//! run each are.
//!
//! `loadgen run` builds a workload, seeds it and attacks once. A sweep (and an eviction run)
//! attacks many times in one process (goose allows sequential attacks; FIELD-NOTES), and re-seeding before every step would
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
use tokio_util::sync::CancellationToken;

use super::attack;
use super::invariants::InvariantCounts;
use super::progress::Progress;
use super::record::Measured;
use super::redis_admin::{self, Info};
use super::target::Target;
use super::workload::{Workload, WorkloadParts};
use crate::error::{Error, Result};
use crate::report::summary::OpStats;
use crate::scenario::{Load, Scenario};

/// What one attack measured.
pub(crate) struct StepOutcome {
    pub(crate) measured: Measured,
    /// Length of the measured window actually observed.
    pub(crate) seconds: f64,
    pub(crate) invariants: InvariantCounts,
    /// Per op and `all`.
    pub(crate) ops: BTreeMap<String, OpStats>,
    /// Counter deltas from `INFO stats` over the attack.
    pub(crate) redis: RedisDelta,
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
    progress: Progress,
}

impl<'t> Stepper<'t> {
    /// Builds the stores and an empty keyspace for `scenario` on `target` (nothing is written yet:
    /// seed through [`Stepper::workload`]).
    pub(crate) fn new(
        target: &'t Target,
        scenario: &Scenario,
        cancel: CancellationToken,
        progress: Progress,
    ) -> Result<Stepper<'t>> {
        let w = Workload::for_scenario(scenario, &target.redis, None, cancel)?;
        Ok(Stepper {
            target,
            scenario: scenario.clone(),
            workload: Some(w),
            attacks: 0,
            progress,
        })
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
            sessions,
            tokens,
            limiter,
            keyspace,
            cancel,
            ..
        } = prev;
        let w = Arc::new(Workload::new(WorkloadParts {
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
            cancel,
        })?);
        let redis = &self.target.redis;
        let before = redis_admin::info(redis, "all").await.unwrap_or_default();
        let seconds = attack::measured(
            &w,
            load,
            self.target.goose_host(),
            report_html,
            &self.progress,
        )
        .await;
        let after = redis_admin::info(redis, "all").await.unwrap_or_default();
        let measured = w.recorder.finish();
        let invariants = w.invariants.counts();
        let ops = measured.op_stats(&self.scenario.mix.weighted_ops(), seconds);
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
