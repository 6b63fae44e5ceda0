//! Judging a measured window: each SLO of the scenario, and each invariant, as a [`Verdict`] with
//! the bound and the observed value side by side. The exit code is 1 if any fails; a person reads
//! `report.md`, a CI job reads `slo.passed` in `summary.json`.

use hdrhistogram::Histogram;

use super::invariants::InvariantCounts;
use super::record::{Measured, OpMeasured, new_histogram};
use crate::report::fmt::us as fmt_us;
use crate::report::summary::{Status, Verdict};
use crate::scenario::{Slo, TimeKind};

fn histogram<'a>(
    m: &'a Measured,
    op: &str,
    kind: TimeKind,
    merged: &'a mut Histogram<u64>,
) -> &'a Histogram<u64> {
    let pick = |o: &'a OpMeasured| match kind {
        TimeKind::Response => &o.response,
        TimeKind::Service => &o.service,
    };
    if op == "all" {
        for o in &m.ops {
            let _ = merged.add(pick(o));
        }
        return merged;
    }
    m.ops
        .iter()
        .find(|o| o.op.name() == op)
        .map_or(merged, pick)
}

/// A verdict from its figures: `not_checked` when it judged nothing, else pass or fail.
fn verdict(
    slo: &Slo,
    id: String,
    name: String,
    (bound, observed): (String, String),
    checked: u64,
    holds: bool,
) -> Verdict {
    let required = slo
        .require
        .iter()
        .any(|r| *r == id || (r == "latency" && id.starts_with("latency.")));
    Verdict {
        status: match (checked, holds) {
            (0, _) => Status::NotChecked,
            (_, true) => Status::Pass,
            (_, false) => Status::Fail,
        },
        id,
        name,
        bound,
        observed,
        checked,
        required,
    }
}

/// Every verdict for the run. `seconds` is the measured window's length.
pub(crate) fn judge(slo: &Slo, m: &Measured, inv: &InvariantCounts, seconds: f64) -> Vec<Verdict> {
    let mut out = Vec::new();
    let count: u64 = m.ops.iter().map(|o| o.count).sum();
    let errors: u64 = m.ops.iter().map(|o| o.errors).sum();
    // Measuring nothing is a failure of the run, not a check that judged nothing.
    out.push(Verdict {
        status: if count > 0 {
            Status::Pass
        } else {
            Status::Fail
        },
        ..verdict(
            slo,
            "operations".into(),
            "operations measured".into(),
            ("> 0".into(), count.to_string()),
            count,
            count > 0,
        )
    });
    for (id, name, n, checked) in [
        (
            "lost_sessions",
            "lost sessions",
            inv.lost_sessions,
            inv.sessions_checked,
        ),
        (
            "ratelimit_over_admissions",
            "rate-limit over-admissions",
            inv.ratelimit_over_admissions,
            inv.ratelimit_decisions_checked,
        ),
        (
            "admitted_while_degraded",
            "admitted while degraded (limiter failed open)",
            inv.admitted_while_degraded,
            inv.ratelimit_decisions_checked,
        ),
        (
            "revoked_tokens_validating",
            "revoked tokens validating",
            inv.revoked_tokens_validating,
            inv.revoked_tokens_checked,
        ),
    ] {
        out.push(verdict(
            slo,
            id.into(),
            name.into(),
            ("= 0".into(), format!("{n} of {checked}")),
            checked,
            n == 0,
        ));
    }
    if let Some(max) = slo.max_error_rate {
        let rate = if count == 0 {
            0.0
        } else {
            errors as f64 / count as f64
        };
        out.push(verdict(
            slo,
            "error_rate".into(),
            "error rate".into(),
            (
                format!("≤ {:.4}%", max * 100.0),
                format!("{:.4}% ({errors} of {count})", rate * 100.0),
            ),
            count,
            rate <= max,
        ));
    }
    if let Some(min) = slo.min_throughput {
        let tput = count as f64 / seconds.max(1e-9);
        out.push(verdict(
            slo,
            "throughput".into(),
            "throughput".into(),
            (format!("≥ {min} ops/s"), format!("{tput:.0} ops/s")),
            count,
            tput >= min,
        ));
    }
    for l in &slo.latency {
        let mut merged = new_histogram();
        let h = histogram(m, &l.op, l.time, &mut merged);
        let max_us = l.max.0.as_micros() as u64;
        let kind = match l.time {
            TimeKind::Response => "response",
            TimeKind::Service => "service",
        };
        let (observed, holds) = if h.is_empty() {
            ("no operations".to_string(), false)
        } else {
            let v = h.value_at_quantile(l.percentile / 100.0);
            (fmt_us(v), v <= max_us)
        };
        out.push(verdict(
            slo,
            format!("latency.{}.p{}.{kind}", l.op, l.percentile),
            format!("{} p{} {kind} time", l.op, l.percentile),
            (format!("≤ {}", fmt_us(max_us)), observed),
            h.len(),
            holds,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{Outcome, Recorder};
    use crate::scenario::{Dur, LatencySlo, Op};
    use std::time::{Duration, Instant};

    #[test]
    fn bounds_are_judged_and_invariants_always_count() {
        let r = Recorder::new(Duration::from_secs(10));
        let t = Instant::now();
        r.window.open_at(t);
        for i in 0..100u64 {
            let ms = Duration::from_micros(100 + i * 10);
            r.record(
                Op::PageView,
                ms,
                ms,
                Outcome::Ok,
                None,
                t + Duration::from_millis(1),
            );
        }
        r.record(
            Op::Login,
            Duration::from_millis(5),
            Duration::from_millis(5),
            Outcome::Error,
            Some((cache::ErrorKind::Other, "x")),
            t,
        );
        let m = r.finish();
        let slo = Slo {
            max_error_rate: Some(0.001),
            min_throughput: Some(5.0),
            latency: vec![
                LatencySlo {
                    op: "page_view".into(),
                    percentile: 99.0,
                    max: Dur(Duration::from_millis(2)),
                    time: TimeKind::Response,
                },
                LatencySlo {
                    op: "all".into(),
                    percentile: 100.0,
                    max: Dur(Duration::from_millis(2)),
                    time: TimeKind::Service,
                },
            ],
            require: vec![],
        };
        let v = judge(
            &slo,
            &m,
            &InvariantCounts {
                lost_sessions: 2,
                sessions_checked: 40,
                ratelimit_decisions_checked: 9,
                ..Default::default()
            },
            10.0,
        );
        let by = |n: &str| v.iter().find(|v| v.name.starts_with(n)).unwrap().holds();
        let status = |id: &str| v.iter().find(|v| v.id == id).unwrap().status;
        assert!(by("operations measured"));
        assert!(!by("lost sessions"));
        assert_eq!(status("lost_sessions"), Status::Fail);
        assert!(by("rate-limit"));
        assert_eq!(status("ratelimit_over_admissions"), Status::Pass);
        // No revoked token was presented: nothing judged, never a pass.
        assert_eq!(status("revoked_tokens_validating"), Status::NotChecked);
        assert!(!by("error rate"), "1 of 101 failed");
        assert!(by("throughput"));
        assert!(by("page_view p99 response"));
        assert!(!by("all p100 service"), "the 5 ms login is the max");
    }

    #[test]
    fn a_check_that_judged_nothing_is_not_checked_and_fails_only_when_required() {
        let r = Recorder::new(Duration::from_secs(10));
        r.window.open_at(Instant::now());
        r.record(
            Op::Ratelimit,
            Duration::from_micros(50),
            Duration::from_micros(50),
            Outcome::Ok,
            None,
            Instant::now(),
        );
        let m = r.finish();
        let inv = InvariantCounts::default();
        let mut slo = Slo::default();
        let v = judge(&slo, &m, &inv, 1.0);
        let lost = v.iter().find(|v| v.id == "lost_sessions").unwrap();
        assert_eq!((lost.status, lost.checked), (Status::NotChecked, 0));
        assert!(
            lost.holds(),
            "not required: the run may pass, but not as a pass"
        );
        slo.require = vec!["lost_sessions".into()];
        let v = judge(&slo, &m, &inv, 1.0);
        let lost = v.iter().find(|v| v.id == "lost_sessions").unwrap();
        assert!(
            lost.required && !lost.holds(),
            "required and unchecked fails"
        );
    }
}
