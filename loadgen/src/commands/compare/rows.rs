//! One comparison row per operation and metric: the samples each metric is judged on, taken out
//! of the runs (and scaled by `--normalize`), the interval, and the verdict. Why these samples and
//! not others is explained in [`crate::compare`].

use super::stats;
use crate::report::compare::{Interval, Metric, Row, Verdict};
use crate::report::read::Run;

/// Per-second throughput of `op` (`all`: every op's, summed).
fn throughput_series(run: &Run, op: &str) -> Vec<f64> {
    let t = &run.summary.series.throughput;
    if op != "all" {
        return t
            .get(op)
            .map(|v| v.iter().map(|&x| x as f64).collect())
            .unwrap_or_default();
    }
    let mut sum = vec![0.0; run.seconds()];
    for series in t.values() {
        for (s, &x) in sum.iter_mut().zip(series) {
            *s += x as f64;
        }
    }
    sum
}

/// Per-second p99 of `op`, seconds without samples left out (`all`: count-weighted mean of the
/// operations' per-second p99s, which tracks the tail's level from second to second).
fn p99_series(run: &Run, op: &str) -> Vec<f64> {
    let s = &run.summary.series;
    let ops: Vec<&String> = if op == "all" {
        s.p99_us.keys().collect()
    } else {
        s.p99_us.keys().filter(|k| k.as_str() == op).collect()
    };
    (0..run.seconds())
        .filter_map(|i| {
            let (mut weighted, mut count) = (0.0, 0.0);
            for o in &ops {
                let n = s
                    .throughput
                    .get(*o)
                    .and_then(|v| v.get(i))
                    .copied()
                    .unwrap_or(0);
                let p = s.p99_us[*o].get(i).copied().unwrap_or(0);
                // A second with samples but no quantile is a gap in the series, not a 0 µs tail.
                if n > 0 && p > 0 {
                    weighted += n as f64 * p as f64;
                    count += n as f64;
                }
            }
            (count > 0.0).then(|| weighted / count)
        })
        .collect()
}

fn seed(op: &str, metric: Metric) -> u64 {
    // FNV-1a: a stable seed per row, so a row's interval does not depend on the others.
    op.bytes()
        .chain(metric.name().bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn judge(interval: Option<Interval>, higher_is_better: bool, t: f64) -> Verdict {
    let Some(i) = interval else {
        return Verdict::NotEnoughData;
    };
    // The change's interval as "worse by" fractions: positive is worse, for either direction.
    let (least_worse, most_worse) = if higher_is_better {
        (1.0 - i.high, 1.0 - i.low)
    } else {
        (i.low - 1.0, i.high - 1.0)
    };
    if least_worse > t {
        Verdict::Regressed
    } else if most_worse < -t {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    }
}

/// The samples of one metric on one side: per run, per-second values (or one whole-run value).
type Samples = Vec<Vec<f64>>;

pub(super) fn rows_for(
    op: &str,
    base: &[Run],
    cur: &[Run],
    (fb, fc): (&[f64], &[f64]),
    t: f64,
    confidence: f64,
) -> Vec<Row> {
    // `m` is the run's throughput multiplier; latency is divided by it.
    let samples = |runs: &[Run], f: &[f64], metric: Metric| -> Samples {
        runs.iter()
            .zip(f)
            .map(|(r, &m)| match metric {
                Metric::Throughput => throughput_series(r, op).iter().map(|x| x * m).collect(),
                // p99: the mean of the per-second p99s. The whole-run p99 of a short run is at
                // the mercy of one stall: a 140 ms freeze in one second of four puts > 1 % of an
                // open model's ops behind it and moves the whole-run p99 20×, while per second it
                // is one bad sample of four, which the test weighs as such.
                Metric::P99 => p99_series(r, op).iter().map(|x| x / m).collect(),
                // p99.9: the whole-run figure, one sample per run.
                Metric::P999 => vec![r.summary.ops[op].response.p99_9_us as f64 / m],
            })
            .collect()
    };
    [Metric::Throughput, Metric::P99, Metric::P999]
        .into_iter()
        .map(|metric| {
            let (b, c) = (samples(base, fb, metric), samples(cur, fc, metric));
            let interval = stats::ratio_interval(&b, &c, confidence, seed(op, metric));
            Row {
                op: op.to_string(),
                metric,
                baseline: stats::level(&b),
                current: stats::level(&c),
                interval,
                confidence,
                verdict: judge(interval, metric.higher_is_better(), t),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_need_the_whole_interval_beyond_the_threshold() {
        let i = |low, point, high| Some(Interval { point, low, high });
        // Throughput (higher is better), threshold 10 %.
        assert_eq!(judge(i(0.70, 0.75, 0.80), true, 0.1), Verdict::Regressed);
        assert_eq!(judge(i(0.80, 0.88, 0.95), true, 0.1), Verdict::WithinNoise);
        assert_eq!(judge(i(0.95, 0.97, 0.99), true, 0.1), Verdict::WithinNoise);
        assert_eq!(judge(i(1.20, 1.30, 1.40), true, 0.1), Verdict::Improved);
        // Latency (lower is better).
        assert_eq!(judge(i(1.15, 1.3, 1.5), false, 0.1), Verdict::Regressed);
        assert_eq!(judge(i(0.9, 1.05, 1.3), false, 0.1), Verdict::WithinNoise);
        assert_eq!(judge(i(0.5, 0.6, 0.7), false, 0.1), Verdict::Improved);
        assert_eq!(judge(None, false, 0.1), Verdict::NotEnoughData);
    }
}
