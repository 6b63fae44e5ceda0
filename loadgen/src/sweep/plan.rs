//! From `loadgen sweep`'s flags and the scenario to a [`Plan`]: where the load starts, how it
//! grows, how long each step lasts, and the SLO each step is judged against.

use crate::Fatal;
use crate::capacity;
use crate::run::RunOptions;
use crate::scenario::{Dur, Load, Slo};

use super::SweepArgs;
use super::grammar::{self, StepRule};

/// The sweep, resolved: checked once at the edge, read by every step.
pub struct Plan {
    pub by_users: bool,
    pub start: f64,
    pub rule: StepRule,
    pub max_steps: u32,
    pub refine: u32,
    pub min_gain: f64,
    pub base: Load,
    pub slo: Slo,
}

/// Checks the sweep's flags (exit 2 naming the flag) and fills in the scenario's defaults.
pub fn plan(a: &SweepArgs, o: &RunOptions) -> Result<Plan, Fatal> {
    let s = &o.scenario;
    let rule = StepRule::parse(&a.step).map_err(Fatal::usage)?;
    let min_gain = capacity::model::parse_fraction(&a.min_gain)
        .map_err(|e| Fatal::usage(format!("--min-gain {e}")))?;
    let duration =
        grammar::parse_duration_flag("--step-duration", &a.step_duration).map_err(Fatal::usage)?;
    if a.max_steps == 0 || a.max_steps > 100 {
        return Err(Fatal::usage(format!(
            "--max-steps {}: expected 1 to 100",
            a.max_steps
        )));
    }
    let by_users = a.by == "users";
    let start = a.start.unwrap_or(if by_users {
        s.load.users as f64
    } else {
        s.load.rate.unwrap_or(1000.0)
    });
    if !(start.is_finite() && start >= 1.0) {
        return Err(Fatal::usage(format!(
            "--start {start}: expected {} of at least 1",
            if by_users {
                "users"
            } else {
                "operations per second"
            }
        )));
    }
    let mut slo = if a.slo.is_empty() {
        s.slo.clone()
    } else {
        grammar::parse_slos(&a.slo).map_err(Fatal::usage)?
    };
    // Throughput is what the sweep finds, not a bound it judges.
    slo.min_throughput = None;
    if slo.latency.is_empty() && slo.max_error_rate.is_none() {
        return Err(Fatal::usage(
            "no SLO to sweep against: pass --slo 'p99<2ms' (repeatable) or give the scenario [[slo.latency]] bounds",
        ));
    }
    let mut base = s.load.clone();
    base.duration = Dur(duration);
    if let Some(u) = a.users {
        if u == 0 {
            return Err(Fatal::usage(
                "--users 0: expected at least 1 user to send the load",
            ));
        }
        base.users = u;
    }
    Ok(Plan {
        by_users,
        start,
        rule,
        max_steps: a.max_steps,
        refine: a.refine,
        min_gain,
        base,
        slo,
    })
}

impl Plan {
    pub fn load_for(&self, offered: f64) -> Load {
        let mut l = self.base.clone();
        if self.by_users {
            l.users = offered.round().max(1.0) as u32;
            l.rate = None;
        } else {
            l.rate = Some(offered);
        }
        l
    }

    /// The next offered load, at least one whole user more in users mode.
    pub fn next(&self, offered: f64) -> f64 {
        let n = self.rule.next(offered);
        if self.by_users {
            n.round().max(offered + 1.0)
        } else {
            n
        }
    }
}
