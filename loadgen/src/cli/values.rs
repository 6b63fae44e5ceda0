//! The small languages of flag values, each parsed into its type here, at the edge, with an
//! error that names the flag and the expected form: `--slo 'p99<2ms'`, `--step x1.5`, durations
//! (`--duration 10s`), fractions (`--headroom 10%`, `--min-gain 3%`, `--max-regression 10%`).
//!
//! An SLO is `[OP:][service:]p<PERCENTILE><BOUND>` on response time (from each operation's
//! intended start, so queueing counts — what a user waits) or, with `service:`, on service time
//! (from when it was actually sent: what Redis and the client cost, without the pacer's own timer
//! lateness of up to ~1 ms); or `errors<RATE` on the failed fraction:
//!
//! ```text
//! p99<2ms                  all operations' p99 response time at most 2 ms
//! page_view:p99.9<=10ms
//! service:p99<1ms          all operations' p99 service time
//! errors<0.1%              at most 0.1 % of operations may fail (or errors<0.001)
//! ```
//!
//! `<` and `<=` both mean "at most": latencies come from histograms with 3 significant digits,
//! so the distinction would be noise. The parsed bounds become an ordinary [`Slo`], judged by
//! [`crate::verdict::judge`] like a scenario's own.

use std::time::Duration;

use crate::commands::sweep::StepRule;
use crate::scenario::{Dur, LatencySlo, Op, Slo, TimeKind};

const SLO_EXPECTED: &str = "expected `[op:][service:]p<percentile><<duration>` such as p99<2ms, page_view:p99.9<=10ms or service:p99<1ms, or errors<<rate> such as errors<0.1%";

fn bad_slo(raw: &str, why: &str) -> String {
    format!("--slo `{raw}`: {why}: {SLO_EXPECTED}")
}

/// Parses every `--slo` into one [`Slo`].
pub(crate) fn parse_slos(raws: &[String]) -> Result<Slo, String> {
    let mut slo = Slo::default();
    for raw in raws {
        let (lhs, rhs) = match raw.split_once("<=") {
            Some(p) => p,
            None => raw.split_once('<').ok_or_else(|| bad_slo(raw, "no `<`"))?,
        };
        let (lhs, rhs) = (lhs.trim(), rhs.trim());
        if lhs == "errors" {
            slo.max_error_rate = Some(parse_rate(rhs).map_err(|w| bad_slo(raw, &w))?);
            continue;
        }
        let mut parts: Vec<&str> = lhs.split(':').map(str::trim).collect();
        let pct = parts.pop().unwrap_or_default();
        let (mut op, mut time) = ("all", TimeKind::Response);
        for part in parts {
            match part {
                "service" => time = TimeKind::Service,
                "response" => time = TimeKind::Response,
                p if p == "all" || Op::ALL.iter().any(|o| o.name() == p) => op = p,
                p => {
                    return Err(bad_slo(
                        raw,
                        &format!(
                            "`{p}` is not an operation (all, {}) nor service/response",
                            Op::ALL.map(Op::name).join(", ")
                        ),
                    ));
                }
            }
        }
        let percentile: f64 = pct
            .strip_prefix('p')
            .and_then(|p| p.parse().ok())
            .filter(|p: &f64| *p > 0.0 && *p <= 100.0)
            .ok_or_else(|| bad_slo(raw, &format!("`{pct}` is not a percentile p0–p100")))?;
        let max = humantime::parse_duration(rhs)
            .map_err(|e| bad_slo(raw, &format!("`{rhs}` is not a duration ({e})")))?;
        if max.is_zero() {
            return Err(bad_slo(raw, "the bound is zero"));
        }
        slo.latency.push(LatencySlo {
            op: op.to_string(),
            percentile,
            max: Dur(max),
            time,
        });
    }
    Ok(slo)
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    let v = match raw.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => raw.parse::<f64>(),
    }
    .map_err(|_| format!("`{raw}` is not a rate"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{raw}` is outside 0–100 %"))
    }
}

const STEP_EXPECTED: &str = "expected +N (add N each step, e.g. +500), xF (multiply, e.g. x1.5) or P% (grow by P percent, e.g. 25%)";

/// `--step`: `+N`, `xF` or `P%`.
pub(crate) fn parse_step_rule(raw: &str) -> Result<StepRule, String> {
    let t = raw.trim();
    let bad = |why: &str| format!("--step `{raw}`: {why}: {STEP_EXPECTED}");
    let num = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let rule = if let Some(n) = t.strip_prefix('+') {
        StepRule::Add(
            num(n)
                .filter(|v| *v > 0.0)
                .ok_or_else(|| bad("not a positive number"))?,
        )
    } else if let Some(f) = t.strip_prefix(['x', '*']) {
        StepRule::Multiply(
            num(f)
                .filter(|v| *v > 1.0)
                .ok_or_else(|| bad("the factor must be above 1"))?,
        )
    } else if let Some(p) = t.strip_suffix('%') {
        StepRule::Multiply(
            1.0 + num(p)
                .filter(|v| *v > 0.0)
                .ok_or_else(|| bad("not a positive percentage"))?
                / 100.0,
        )
    } else {
        return Err(bad("unknown form"));
    };
    Ok(rule)
}

/// A duration flag (`flag` names it in errors): `500ms`, `10s`, `2m`.
pub(crate) fn parse_duration(flag: &str, raw: &str) -> Result<Duration, String> {
    if raw.trim_start().starts_with('-') {
        return Err(format!(
            "{flag} `{raw}` is negative: expected a duration like \"5s\" or \"1m\", greater than zero"
        ));
    }
    humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{flag} `{raw}`: {e}: expected a duration like \"5s\" or \"1m\""))
}

/// A duration flag of at least one second.
pub(crate) fn parse_duration_flag(flag: &str, raw: &str) -> Result<Duration, String> {
    let d = parse_duration(flag, raw)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{flag} `{raw}`: expected at least 1s (a duration like \"5s\")"
        ));
    }
    Ok(d)
}

/// A share written as a percentage or a fraction, `10%` or `0.1`, from 0 up to (not including)
/// 0.95 (`--headroom`, `--min-gain`).
pub(crate) fn parse_fraction(flag: &str, raw: &str) -> Result<f64, String> {
    let t = raw.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        format!("{flag} `{raw}` is not a fraction: expected a percentage like 10% or 0.1")
    })?;
    if !(0.0..0.95).contains(&v) {
        return Err(format!(
            "{flag} `{raw}` is outside 0–95 %: expected a percentage like 10% or 0.1"
        ));
    }
    Ok(v)
}

/// `--max-regression`: "10%", "2.5 %" or "0.10", strictly between 0 and 1.
pub(crate) fn parse_threshold(raw: &str) -> Result<f64, String> {
    let s = raw.trim();
    let (num, percent) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (s, false),
    };
    let bad = |why: &str| {
        format!(
            "--max-regression `{raw}`: {why}; expected a percentage like \"10%\" or a fraction like \"0.10\""
        )
    };
    let v: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let f = if percent { v / 100.0 } else { v };
    if !percent && v >= 1.0 {
        return Err(bad(
            "a bare number is a fraction and must be below 1 (write 10% for ten percent)",
        ));
    }
    if !(f > 0.0 && f < 1.0) {
        return Err(bad("must be more than 0% and less than 100%"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slos_parse_into_latency_bounds_and_an_error_rate() {
        let s = parse_slos(&[
            "p99<2ms".into(),
            "page_view:p99.9<=10ms".into(),
            "errors<0.1%".into(),
            "api_call:service:p50<300us".into(),
        ])
        .unwrap();
        assert_eq!(s.latency.len(), 3);
        assert_eq!(s.latency[2].op, "api_call");
        assert_eq!(s.latency[2].time, TimeKind::Service);
        assert_eq!(s.latency[0].time, TimeKind::Response);
        assert_eq!(s.latency[0].op, "all");
        assert_eq!(s.latency[0].max.0, Duration::from_millis(2));
        assert_eq!(s.latency[1].op, "page_view");
        assert_eq!(s.latency[1].percentile, 99.9);
        assert_eq!(s.max_error_rate, Some(0.001));
    }

    #[test]
    fn bad_slos_name_the_flag_the_problem_and_the_form() {
        for (raw, why) in [
            ("p99>2ms", "no `<`"),
            ("p99<<2ms", "is not a duration"),
            ("p101<2ms", "is not a percentile"),
            ("99<2ms", "is not a percentile"),
            ("pageview:p99<2ms", "`pageview` is not an operation"),
            ("p99<2", "is not a duration"),
            ("p99<0ms", "zero"),
            ("errors<200%", "outside"),
        ] {
            let e = parse_slos(&[raw.into()]).unwrap_err();
            assert!(e.starts_with(&format!("--slo `{raw}`")), "{e}");
            assert!(
                e.contains(why) && e.contains("expected `[op:][service:]p<percentile>"),
                "{e}"
            );
        }
    }

    #[test]
    fn steps_add_or_multiply() {
        assert_eq!(parse_step_rule("+500").unwrap(), StepRule::Add(500.0));
        assert_eq!(parse_step_rule("x2").unwrap(), StepRule::Multiply(2.0));
        assert_eq!(parse_step_rule("50%").unwrap(), StepRule::Multiply(1.5));
        for bad in ["500", "x1", "x0.5", "+-3", "-10%", "fast"] {
            assert!(
                parse_step_rule(bad).unwrap_err().contains("expected +N"),
                "{bad}"
            );
        }
        assert!(parse_duration_flag("--step-duration", "500ms").is_err());
        let e = parse_duration("--duration", "5parsecs").unwrap_err();
        assert!(e.starts_with("--duration `5parsecs`"), "{e}");
        let e = parse_duration_flag("--duration", "-5s").unwrap_err();
        assert!(e.starts_with("--duration `-5s`"), "{e}");
        assert_eq!(
            parse_duration_flag("--step-duration", "5s").unwrap(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn fractions_and_thresholds_parse_as_percent_or_fraction() {
        assert_eq!(parse_fraction("--headroom", "10%").unwrap(), 0.1);
        assert_eq!(parse_fraction("--headroom", "0.25").unwrap(), 0.25);
        assert!(parse_fraction("--headroom", "120%").is_err());
        let e = parse_fraction("--min-gain", "lots").unwrap_err();
        assert!(e.starts_with("--min-gain `lots`"), "{e}");
        assert_eq!(parse_threshold("10%").unwrap(), 0.1);
        assert_eq!(parse_threshold(" 2.5 % ").unwrap(), 0.025);
        assert_eq!(parse_threshold("0.2").unwrap(), 0.2);
        for bad in ["10", "0", "0%", "100%", "-5%", "ten", ""] {
            let e = parse_threshold(bad).unwrap_err();
            assert!(e.contains("--max-regression"), "{e}");
        }
    }
}
