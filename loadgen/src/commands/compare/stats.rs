//! The statistics behind `loadgen compare`: a confidence interval for the ratio current /
//! baseline of a metric, from the samples the runs recorded — per-second values within runs, or
//! one value per run.
//!
//! Why not "the two summary numbers": two 5-second runs of the same build on the same machine
//! differ by several percent, and tail latency by several times when anything else runs on the
//! machine. A gate that compares two bare numbers either fails on noise or needs a threshold so
//! wide that it misses real regressions.
//!
//! **The interval is a permutation test, inverted.** For a candidate ratio r, the current samples
//! are divided by r and pooled with the baseline's; if the two sides are then exchangeable, the
//! observed difference of means should look like the difference of a random split of the pool.
//! The 95 % interval is every r that a two-sided test at 5 % does not reject (Ernst, "Permutation
//! Methods: A Basis for Exact Inference", Statistical Science 2004, §3.3). It is exact for any
//! distribution, which matters here: per-second tail latency on a shared machine is mostly calm
//! seconds plus a few seconds 10× worse.
//!
//! Why not a bootstrap of each side on its own (the first version of this gate): with 4–5
//! seconds a side, a bootstrap treats what one run happened to see as the whole truth. A baseline
//! with one slow second out of four and a current run with three "differ significantly", though
//! the pooled eight seconds say that slow seconds simply happen on this machine. In the gate's
//! self-test that version raised false alarms on half of the identical runs; the permutation test
//! pools exactly that evidence.
//!
//! Two consequences, both deliberate:
//! - **Autocorrelation**: slow seconds come in runs (a compile next door, a compaction), so with
//!   enough seconds the units are means of non-overlapping blocks of ⌈n^⅓⌉ seconds, kept to at
//!   least 8 blocks a side; with fewer seconds the units are single seconds.
//! - **A minimum of data**: n_b + n_c units can be split C(n_b + n_c, n_c) ways; when that is
//!   fewer than 40, no split is rare enough for 2.5 % in a tail and there is no 95 % interval (4
//!   seconds a side is the smallest equal design: 70 splits; a stricter confidence needs more).
//!   Whole-run figures (p99.9) are one unit per run, so they need repetitions.
//!
//! Up to [`EXACT_SPLITS`] splits are enumerated; beyond, [`RANDOM_SPLITS`] random ones from a fixed
//! seed: the same inputs always get the same verdict.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::report::compare::Interval;

/// Up to this many splits of the pooled samples are enumerated exactly.
pub(crate) const EXACT_SPLITS: usize = 20_000;
/// Random splits used when there are more.
pub(crate) const RANDOM_SPLITS: usize = 10_000;
/// Fewest blocks a side keeps when seconds are grouped into blocks.
const MIN_BLOCKS: usize = 8;

/// Mean of a slice (0 for an empty one).
pub(crate) fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// A side's level: the mean of its runs' means (each run counts once, however long).
pub(crate) fn level(runs: &[Vec<f64>]) -> f64 {
    let means: Vec<f64> = runs
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| mean(r))
        .collect();
    mean(&means)
}

/// Block length for a run of `n` seconds: ⌈n^⅓⌉, but leaving at least [`MIN_BLOCKS`] blocks.
pub(crate) fn block_len(n: usize) -> usize {
    ((n as f64).cbrt().ceil() as usize)
        .min(n / MIN_BLOCKS)
        .max(1)
}

/// The test's units for one side: each run cut into non-overlapping blocks, block means pooled.
pub(crate) fn units(runs: &[Vec<f64>]) -> Vec<f64> {
    runs.iter()
        .flat_map(|r| {
            let l = block_len(r.len());
            r.chunks_exact(l).map(mean).collect::<Vec<_>>()
        })
        .collect()
}

fn binomial(n: usize, k: usize) -> usize {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > usize::MAX as u128 {
            return usize::MAX;
        }
    }
    c as usize
}

/// For every split (a set S of n_c pooled indices labelled "current"), the statistic
/// T_S(r) = mean(S) − mean(rest) with current values divided by r is A_S / r + B_S.
struct Splits {
    /// (A, B) of the split that was observed.
    observed: (f64, f64),
    /// (A, B) of every split considered, the observed one exactly once.
    all: Vec<(f64, f64)>,
}

fn splits(base: &[f64], cur: &[f64], seed: u64) -> Splits {
    let (nb, nc) = (base.len(), cur.len());
    let (sum_b, sum_c) = (base.iter().sum::<f64>(), cur.iter().sum::<f64>());
    let (fb, fc) = (nb as f64, nc as f64);
    let ab = |members: &mut dyn Iterator<Item = usize>| {
        let (mut sb, mut sc) = (0.0, 0.0);
        for i in members {
            if i < nb {
                sb += base[i];
            } else {
                sc += cur[i - nb];
            }
        }
        (sc / fc - (sum_c - sc) / fb, sb / fc - (sum_b - sb) / fb)
    };
    let n = nb + nc;
    let observed = ab(&mut (nb..n));
    let mut all = Vec::new();
    if binomial(n, nc) <= EXACT_SPLITS {
        // Every combination in lexicographic order; the observed one is the last.
        let mut idx: Vec<usize> = (0..nc).collect();
        loop {
            all.push(ab(&mut idx.iter().copied()));
            let Some(i) = (0..nc).rev().find(|&i| idx[i] != i + n - nc) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..nc {
                idx[j] = idx[j - 1] + 1;
            }
        }
    } else {
        // The observed split plus random ones: p = (1 + #as extreme) / (1 + R).
        all.push(observed);
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut pool: Vec<usize> = (0..n).collect();
        for _ in 0..RANDOM_SPLITS {
            // A partial Fisher-Yates shuffle: the first nc are a uniform random subset.
            for i in 0..nc {
                let j = rng.random_range(i..n);
                pool.swap(i, j);
            }
            all.push(ab(&mut pool[..nc].iter().copied()));
        }
    }
    Splits { observed, all }
}

/// Share of splits whose statistic is at least (upper) or at most (lower) the observed one, for
/// the ratio `r`.
fn p_values(s: &Splits, r: f64) -> (f64, f64) {
    let (a0, b0) = s.observed;
    let observed = a0 / r + b0;
    let tolerance = 1e-9 * (a0.abs() / r + b0.abs()).max(1e-12);
    let (mut upper, mut lower) = (0usize, 0usize);
    for &(a, b) in &s.all {
        let t = a / r + b;
        if t >= observed - tolerance {
            upper += 1;
        }
        if t <= observed + tolerance {
            lower += 1;
        }
    }
    let n = s.all.len() as f64;
    (upper as f64 / n, lower as f64 / n)
}

/// Bisection in log space for the boundary where `accept` turns from `from` to `!from`.
fn boundary(mut lo: f64, mut hi: f64, accept: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..80 {
        let mid = (lo * hi).sqrt();
        if accept(mid) == accept(lo) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo * hi).sqrt()
}

/// Ratio of levels current / baseline with the interval, at `confidence`, from the inverted
/// permutation test over the sides' units ([`units`]); `None` when there are too few units for
/// an interval at that confidence or the baseline's level is not positive.
pub(crate) fn ratio_interval(
    base: &[Vec<f64>],
    cur: &[Vec<f64>],
    confidence: f64,
    seed: u64,
) -> Option<Interval> {
    let (ub, uc) = (units(base), units(cur));
    let base_level = level(base);
    if ub.is_empty() || uc.is_empty() || base_level <= 0.0 {
        return None;
    }
    let tail = (1.0 - confidence) / 2.0;
    if (binomial(ub.len() + uc.len(), uc.len()) as f64) * tail < 1.0 {
        return None;
    }
    let point = level(cur) / base_level;
    if point <= 0.0 {
        return None;
    }
    let s = splits(&ub, &uc, seed);
    // Outside [min(c)/max(b), max(c)/min(b)] the observed split is the most extreme one, so the
    // boundaries lie within (a little margin for the tolerance).
    let max_b = ub.iter().copied().fold(f64::MIN, f64::max);
    let min_b = ub.iter().copied().fold(f64::MAX, f64::min);
    let max_c = uc.iter().copied().fold(f64::MIN, f64::max);
    let min_c = uc.iter().copied().fold(f64::MAX, f64::min);
    let far_low = (min_c / max_b).clamp(point * 1e-6, point) * 0.5;
    let far_high = if min_b > 0.0 {
        (max_c / min_b).max(point) * 2.0
    } else {
        point * 1e6
    };
    let upper_ok = |r: f64| p_values(&s, r).0 > tail;
    let lower_ok = |r: f64| p_values(&s, r).1 > tail;
    let low = if upper_ok(far_low) {
        far_low
    } else {
        boundary(far_low, point, upper_ok)
    };
    let high = if lower_ok(far_high) {
        far_high
    } else {
        boundary(point, far_high, lower_ok)
    };
    Some(Interval {
        point,
        low: low.min(point),
        high: high.max(point),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::CONFIDENCE;

    fn one(v: &[f64]) -> Vec<Vec<f64>> {
        vec![v.to_vec()]
    }

    #[test]
    fn identical_samples_give_an_interval_around_one() {
        let run = one(&[1000.0, 1040.0, 980.0, 1010.0, 995.0, 1020.0]);
        let i = ratio_interval(&run, &run, CONFIDENCE, 1).unwrap();
        assert_eq!(i.point, 1.0);
        assert!(i.low < 1.0 && i.high > 1.0, "{i:?}");
        assert!(i.low > 0.95 && i.high < 1.05, "{i:?}");
    }

    #[test]
    fn a_clear_shift_excludes_one_and_noise_widens_the_interval() {
        let base = one(&[1000.0, 1040.0, 980.0, 1010.0, 995.0]);
        let slow = one(&[700.0, 728.0, 686.0, 707.0, 696.5]);
        let i = ratio_interval(&base, &slow, CONFIDENCE, 1).unwrap();
        assert!((i.point - 0.7).abs() < 1e-9);
        assert!(i.high < 0.75 && i.low > 0.65, "{i:?}");
        let noisy = one(&[700.0, 1300.0, 650.0, 1250.0, 800.0]);
        let j = ratio_interval(&base, &noisy, CONFIDENCE, 1).unwrap();
        assert!(j.low < 0.9 && j.high > 1.1, "{j:?}");
    }

    #[test]
    fn slow_seconds_on_both_sides_are_noise_not_a_regression() {
        // p99 per second: the baseline had one slow second, the current run three.
        let base = one(&[12_623.0, 4_643.0, 5_323.0, 5_499.0]);
        let cur = one(&[6_547.0, 61_439.0, 44_383.0, 54_175.0]);
        let i = ratio_interval(&base, &cur, CONFIDENCE, 1).unwrap();
        assert!(i.point > 5.0, "{i:?}");
        assert!(
            i.low < 1.1,
            "one slow baseline second makes three plausible: {i:?}"
        );
        // But every current second slower than every baseline second is a regression.
        let all_slow = one(&[16_000.0, 61_439.0, 44_383.0, 54_175.0]);
        assert!(ratio_interval(&base, &all_slow, CONFIDENCE, 1).unwrap().low > 1.1);
    }

    #[test]
    fn too_few_units_give_no_interval() {
        // 3 + 3 seconds: C(6,3) = 20 splits, none rarer than 5 %.
        assert!(
            ratio_interval(
                &one(&[1.0, 2.0, 3.0]),
                &one(&[4.0, 5.0, 6.0]),
                CONFIDENCE,
                1
            )
            .is_none()
        );
        // One value per run (p99.9), one run a side.
        assert!(ratio_interval(&one(&[5.0]), &one(&[50.0]), CONFIDENCE, 1).is_none());
        // Four runs a side: C(8,4) = 70 splits.
        let runs = |v: &[f64]| v.iter().map(|x| vec![*x]).collect::<Vec<_>>();
        let i = ratio_interval(
            &runs(&[5.0, 5.2, 4.9, 5.1]),
            &runs(&[9.0, 9.5, 8.8, 9.2]),
            CONFIDENCE,
            1,
        );
        assert!(i.unwrap().low > 1.5);
        // The same at 99.5 %: no split of 70 is rare enough.
        let strict = ratio_interval(
            &one(&[5.0, 5.2, 4.9, 5.1]),
            &one(&[9.0, 9.5, 8.8, 9.2]),
            0.995,
            1,
        );
        assert!(strict.is_none());
        let zero = ratio_interval(&one(&[0.0; 4]), &one(&[1.0; 4]), CONFIDENCE, 1);
        assert!(zero.is_none());
    }

    #[test]
    fn long_runs_use_blocks_and_random_splits_deterministically() {
        assert_eq!(block_len(4), 1);
        assert_eq!(block_len(16), 2);
        assert_eq!(block_len(60), 4);
        let wave: Vec<f64> = (0..60)
            .map(|i| 1000.0 + 50.0 * (i as f64 / 5.0).sin())
            .collect();
        let shifted: Vec<f64> = wave.iter().map(|v| v * 1.3).collect();
        assert_eq!(units(&one(&wave)).len(), 15);
        let i = ratio_interval(&one(&wave), &one(&shifted), CONFIDENCE, 3).unwrap();
        assert!(i.low > 1.2 && i.high < 1.4, "{i:?}");
        assert_eq!(
            Some(i),
            ratio_interval(&one(&wave), &one(&shifted), CONFIDENCE, 3)
        );
    }

    #[test]
    fn exact_enumeration_visits_every_split_once() {
        // C(6,2) = 15 splits, the observed one last.
        let s = splits(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0], 0);
        assert_eq!(s.all.len(), 15);
        assert_eq!(s.all[14], s.observed);
        assert_eq!(s.all.iter().filter(|x| **x == s.observed).count(), 1);
        assert_eq!(binomial(8, 4), 70);
        assert_eq!(binomial(120, 60), usize::MAX);
    }
}
