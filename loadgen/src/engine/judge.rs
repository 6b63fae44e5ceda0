//! Judging a measured window: each SLO of the scenario, and each invariant, as a [`Verdict`] with
//! the bound and the observed value side by side. The exit code is 1 if any fails; a person reads
//! `report.md`, a CI job reads `slo.passed` in `summary.json`.

use hdrhistogram::Histogram;

use super::invariants::InvariantCounts;
use super::record::{Measured, OpMeasured, new_histogram};
use crate::report::fmt::us as fmt_us;
use crate::report::summary::Verdict;
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

/// Every verdict for the run. `seconds` is the measured window's length.
pub(crate) fn judge(slo: &Slo, m: &Measured, inv: &InvariantCounts, seconds: f64) -> Vec<Verdict> {
    let mut out = Vec::new();
    let count: u64 = m.ops.iter().map(|o| o.count).sum();
    let errors: u64 = m.ops.iter().map(|o| o.errors).sum();
    out.push(Verdict {
        name: "operations measured".into(),
        bound: "> 0".into(),
        observed: count.to_string(),
        passed: count > 0,
    });
    for (name, n) in [
        ("lost sessions", inv.lost_sessions),
        ("rate-limit over-admissions", inv.ratelimit_over_admissions),
        ("revoked tokens validating", inv.revoked_tokens_validating),
    ] {
        out.push(Verdict {
            name: name.into(),
            bound: "= 0".into(),
            observed: n.to_string(),
            passed: n == 0,
        });
    }
    if let Some(max) = slo.max_error_rate {
        let rate = if count == 0 {
            0.0
        } else {
            errors as f64 / count as f64
        };
        out.push(Verdict {
            name: "error rate".into(),
            bound: format!("≤ {:.4}%", max * 100.0),
            observed: format!("{:.4}% ({errors} of {count})", rate * 100.0),
            passed: rate <= max,
        });
    }
    if let Some(min) = slo.min_throughput {
        let tput = count as f64 / seconds.max(1e-9);
        out.push(Verdict {
            name: "throughput".into(),
            bound: format!("≥ {min} ops/s"),
            observed: format!("{tput:.0} ops/s"),
            passed: tput >= min,
        });
    }
    for l in &slo.latency {
        let mut merged = new_histogram();
        let h = histogram(m, &l.op, l.time, &mut merged);
        let max_us = l.max.0.as_micros() as u64;
        let kind = match l.time {
            TimeKind::Response => "response",
            TimeKind::Service => "service",
        };
        let (observed, passed) = if h.is_empty() {
            ("no operations".to_string(), false)
        } else {
            let v = h.value_at_quantile(l.percentile / 100.0);
            (fmt_us(v), v <= max_us)
        };
        out.push(Verdict {
            name: format!("{} p{} {kind} time", l.op, l.percentile),
            bound: format!("≤ {}", fmt_us(max_us)),
            observed,
            passed,
        });
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
        };
        let v = judge(
            &slo,
            &m,
            &InvariantCounts {
                lost_sessions: 2,
                ..Default::default()
            },
            10.0,
        );
        let by = |n: &str| v.iter().find(|v| v.name.starts_with(n)).unwrap().passed;
        assert!(by("operations measured"));
        assert!(!by("lost sessions"));
        assert!(by("rate-limit"));
        assert!(!by("error rate"), "1 of 101 failed");
        assert!(by("throughput"));
        assert!(by("page_view p99 response"));
        assert!(!by("all p100 service"), "the 5 ms login is the max");
    }
}
