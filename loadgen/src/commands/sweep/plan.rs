//! From `loadgen sweep`'s typed flags and the scenario to a [`Plan`]: where the load starts, how it
//! grows, how long each step lasts, and the SLO each step is judged against. The flags arrive
//! parsed ([`SweepFlags`]); what needs the scenario to check (a start of 0, no SLO at all) is
//! checked here, naming the flag.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::scenario::{Dur, Load, Scenario, Slo};

/// How the offered load grows from one step to the next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum StepRule {
    /// `+N`: add N.
    Add(f64),
    /// `xF` or `P%`: multiply by F (P % = 1 + P/100).
    Multiply(f64),
}

impl StepRule {
    pub(crate) fn next(&self, v: f64) -> f64 {
        match *self {
            StepRule::Add(n) => v + n,
            StepRule::Multiply(f) => v * f,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match *self {
            StepRule::Add(n) => format!("+{n}"),
            StepRule::Multiply(f) => format!("x{f}"),
        }
    }
}

/// The sweep's flags, each already parsed into its type at the command line.
#[derive(Clone, Debug)]
pub(crate) struct SweepFlags {
    pub(crate) by_users: bool,
    pub(crate) start: Option<f64>,
    pub(crate) rule: StepRule,
    pub(crate) max_steps: u32,
    pub(crate) refine: u32,
    pub(crate) min_gain: f64,
    pub(crate) step_duration: Duration,
    pub(crate) users: Option<u32>,
    /// `--slo` bounds; `None` = the scenario's own `[slo]`.
    pub(crate) slo: Option<Slo>,
}

/// The sweep, resolved: checked once at the edge, read by every step.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) by_users: bool,
    pub(crate) start: f64,
    pub(crate) rule: StepRule,
    pub(crate) max_steps: u32,
    pub(crate) refine: u32,
    pub(crate) min_gain: f64,
    pub(crate) base: Load,
    pub(crate) slo: Slo,
}

impl Plan {
    /// Checks the flags that need the scenario (exit 2 naming the flag) and fills in its defaults.
    pub(crate) fn new(f: &SweepFlags, s: &Scenario) -> Result<Plan> {
        if f.max_steps == 0 || f.max_steps > 100 {
            return Err(Error::usage(format!(
                "--max-steps {}: expected 1 to 100",
                f.max_steps
            )));
        }
        let start = f.start.unwrap_or(if f.by_users {
            s.load.users as f64
        } else {
            s.load.rate.unwrap_or(1000.0)
        });
        if !(start.is_finite() && start >= 1.0) {
            return Err(Error::usage(format!(
                "--start {start}: expected {} of at least 1",
                if f.by_users {
                    "users"
                } else {
                    "operations per second"
                }
            )));
        }
        let mut slo = f.slo.clone().unwrap_or_else(|| s.slo.clone());
        // Throughput is what the sweep finds, not a bound it judges.
        slo.min_throughput = None;
        if slo.latency.is_empty() && slo.max_error_rate.is_none() {
            return Err(Error::usage(
                "no SLO to sweep against: pass --slo 'p99<2ms' (repeatable) or give the scenario [[slo.latency]] bounds",
            ));
        }
        let mut base = s.load.clone();
        base.duration = Dur(f.step_duration);
        if let Some(u) = f.users {
            if u == 0 {
                return Err(Error::usage(
                    "--users 0: expected at least 1 user to send the load",
                ));
            }
            base.users = u;
        }
        Ok(Plan {
            by_users: f.by_users,
            start,
            rule: f.rule,
            max_steps: f.max_steps,
            refine: f.refine,
            min_gain: f.min_gain,
            base,
            slo,
        })
    }

    pub(crate) fn load_for(&self, offered: f64) -> Load {
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
    pub(crate) fn next(&self, offered: f64) -> f64 {
        let n = self.rule.next(offered);
        if self.by_users {
            n.round().max(offered + 1.0)
        } else {
            n
        }
    }

    /// `2000 ops/s` or `40 users`.
    pub(crate) fn describe(&self, offered: f64) -> String {
        if self.by_users {
            format!("{offered:.0} users")
        } else {
            format!("{offered:.0} ops/s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_or_multiply() {
        assert_eq!(StepRule::Add(500.0).next(1000.0), 1500.0);
        assert_eq!(StepRule::Multiply(2.0).next(1000.0), 2000.0);
        assert_eq!(StepRule::Multiply(1.5).describe(), "x1.5");
    }
}
