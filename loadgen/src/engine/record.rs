//! Latency and throughput, per operation, in HdrHistograms: microseconds, 3 significant digits,
//! 1 µs to 60 s (longer values are clamped to 60 s rather than dropped).
//!
//! Why histograms and not samples: a 5-minute run at 100k ops/s is 30 M operations; a histogram
//! holds any number of them in ~140 KB with every percentile to 0.1 %, and two of them merge
//! exactly (runs on several machines can be combined). Memory stays flat however long the run.
//!
//! Each operation has four histograms behind one mutex: service and response time for the
//! measured window, and service and response time for the current second. A 1 Hz tick takes the
//! per-second ones (for the status line and the per-second series in `summary.json` and
//! `latency.svg`) and resets them. A `std::sync::Mutex` is right here: it is held for two
//! `record` calls (tens of nanoseconds) and never across an `.await`.
//!
//! Only operations that *complete* inside the measured window (after ramp and warm-up, for
//! `load.duration`) count toward the totals; the per-second histograms see everything, so the
//! status line is live during warm-up too.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::availability::{BUCKET_MS, Bucket};
use super::intervals::{self, Cut, HlogInterval, Intervals};
use crate::report::hlog;
use crate::report::run::OpHistograms;
use crate::report::summary::{ErrorClass, OpStats, Percentiles, SecondSample, SeriesReport};
use crate::scenario::Op;

/// Highest value tracked, µs.
pub(crate) const MAX_US: u64 = 60_000_000;
/// Longest example message kept per error class.
const MAX_EXAMPLE: usize = 300;

/// `message` cut to [`MAX_EXAMPLE`] characters, on one line.
fn example(message: &str) -> String {
    crate::report::fmt::clip(message, MAX_EXAMPLE)
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // Bounds are constants within the crate's limits: creation cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// Rate limited: the server answered "no" as designed.
    Denied,
    /// The key was not there (expired, evicted, lost: see the invariants).
    Miss,
    Error,
}

struct OpRec {
    service: Histogram<u64>,
    response: Histogram<u64>,
    tick_service: Histogram<u64>,
    tick_response: Histogram<u64>,
    count: u64,
    errors: u64,
    denied: u64,
    misses: u64,
    tick_count: u64,
    tick_errors: u64,
    errors_by_class: BTreeMap<cache::ErrorKind, ErrorClass>,
    /// Open model: how late each operation started behind its schedule (response − service).
    lag: Histogram<u64>,
    /// Outcomes per 100 ms since the recorder started (warm-up included), for availability.
    timeline: Vec<Bucket>,
    /// Measured since the last cut: the next `latency.hlog` interval.
    cut: Cut,
}

impl OpRec {
    fn new() -> OpRec {
        OpRec {
            service: new_histogram(),
            response: new_histogram(),
            tick_service: new_histogram(),
            tick_response: new_histogram(),
            count: 0,
            errors: 0,
            denied: 0,
            misses: 0,
            tick_count: 0,
            tick_errors: 0,
            errors_by_class: BTreeMap::new(),
            lag: new_histogram(),
            timeline: Vec::new(),
            cut: Cut::new(new_histogram()),
        }
    }
}

/// What a tick returns for the status line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tick {
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    pub(crate) p99_us: u64,
    /// Seconds since the window opened, if it has.
    pub(crate) window_second: Option<u64>,
}

/// The measured window: opens `warmup` after the last user started, lasts `duration`.
pub(crate) struct Window {
    start: OnceLock<Instant>,
    length: Duration,
}

impl Window {
    pub(crate) fn start(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    pub(crate) fn open_at(&self, at: Instant) {
        let _ = self.start.set(at);
    }

    pub(crate) fn length(&self) -> Duration {
        self.length
    }

    pub(crate) fn contains(&self, t: Instant) -> bool {
        self.start().is_some_and(|s| t >= s && t < s + self.length)
    }

    /// Seconds of the window that had passed at `end`: 0 before it opened, at most its length.
    pub(crate) fn seconds_until(&self, end: Instant) -> f64 {
        match self.start() {
            Some(start) if end > start => end.duration_since(start).min(self.length).as_secs_f64(),
            _ => 0.0,
        }
    }
}

pub(crate) struct Recorder {
    ops: Vec<Mutex<OpRec>>,
    pub(crate) window: Window,
    series: Mutex<Vec<[SecondSample; 7]>>,
    /// When recording started: the origin of the timeline and of the INFO series.
    pub(crate) started: Instant,
    /// The `latency.hlog` intervals cut so far.
    intervals: Intervals,
}

impl Recorder {
    pub(crate) fn new(duration: Duration) -> Recorder {
        Recorder {
            ops: Op::ALL.iter().map(|_| Mutex::new(OpRec::new())).collect(),
            window: Window {
                start: OnceLock::new(),
                length: duration,
            },
            series: Mutex::new(Vec::new()),
            started: Instant::now(),
            intervals: Intervals::new(),
        }
    }

    fn op(&self, op: Op) -> std::sync::MutexGuard<'_, OpRec> {
        self.ops[op.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn record(
        &self,
        op: Op,
        service: Duration,
        response: Duration,
        outcome: Outcome,
        error: Option<(cache::ErrorKind, &str)>,
        completed: Instant,
    ) {
        let s = service.as_micros().min(MAX_US as u128) as u64;
        let r = response.as_micros().min(MAX_US as u128) as u64;
        let measured = self.window.contains(completed);
        let bucket = completed
            .saturating_duration_since(self.started)
            .as_millis() as usize
            / BUCKET_MS as usize;
        let mut rec = self.op(op);
        rec.tick_service.saturating_record(s);
        rec.tick_response.saturating_record(r);
        rec.tick_count += 1;
        if outcome == Outcome::Error {
            rec.tick_errors += 1;
        }
        if rec.timeline.len() <= bucket {
            rec.timeline.resize(bucket + 1, Bucket::default());
        }
        rec.timeline[bucket].count(outcome == Outcome::Error, error.map(|(k, _)| k));
        if !measured {
            return;
        }
        rec.service.saturating_record(s);
        rec.response.saturating_record(r);
        rec.cut.record(s, r);
        rec.lag.saturating_record(r.saturating_sub(s));
        rec.count += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::Denied => rec.denied += 1,
            Outcome::Miss => rec.misses += 1,
            Outcome::Error => {
                rec.errors += 1;
                let (class, message) = error.unwrap_or((cache::ErrorKind::Other, "unknown"));
                rec.errors_by_class
                    .entry(class)
                    .or_insert_with(|| ErrorClass {
                        count: 0,
                        example: example(message),
                    })
                    .count += 1;
            }
        }
    }

    /// Takes and resets the last second's data; appends it to the series if the window is open.
    pub(crate) fn tick(&self, now: Instant) -> Tick {
        let mut all = new_histogram();
        let mut sample = [SecondSample::default(); 7];
        let mut t = Tick::default();
        for op in Op::ALL {
            let mut rec = self.op(op);
            let s = &mut sample[op.index()];
            s.count = rec.tick_count;
            s.errors = rec.tick_errors;
            if rec.tick_count > 0 {
                s.p50_us = rec.tick_response.value_at_quantile(0.5);
                s.p99_us = rec.tick_response.value_at_quantile(0.99);
                s.service_p99_us = rec.tick_service.value_at_quantile(0.99);
                let _ = all.add(&rec.tick_response);
            }
            t.ops += rec.tick_count;
            t.errors += rec.tick_errors;
            rec.tick_count = 0;
            rec.tick_errors = 0;
            rec.tick_service.reset();
            rec.tick_response.reset();
        }
        self.cut_interval();
        t.p99_us = if all.is_empty() {
            0
        } else {
            all.value_at_quantile(0.99)
        };
        if let Some(start) = self.window.start()
            && now > start
        {
            let second = now.duration_since(start).as_secs();
            t.window_second = Some(second);
            if now <= start + self.window.length + Duration::from_millis(500) {
                self.series
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(sample);
            }
        }
        t
    }

    /// Ends the current `latency.hlog` interval (ops with nothing measured are skipped).
    fn cut_interval(&self) {
        self.intervals.cut(|| {
            Op::ALL
                .iter()
                .filter_map(|&op| Some((op, self.op(op).cut.take()?)))
                .collect()
        });
    }

    /// Everything measured in the window.
    pub(crate) fn finish(&self) -> Measured {
        self.cut_interval();
        let ops = Op::ALL
            .iter()
            .map(|&op| {
                let rec = self.op(op);
                OpMeasured {
                    op,
                    count: rec.count,
                    errors: rec.errors,
                    denied: rec.denied,
                    misses: rec.misses,
                    service: rec.service.clone(),
                    response: rec.response.clone(),
                    errors_by_class: rec.errors_by_class.clone(),
                    lag: rec.lag.clone(),
                    timeline: rec.timeline.clone(),
                }
            })
            .collect();
        Measured {
            ops,
            series: self
                .series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            intervals: self.intervals.take_all(),
        }
    }
}

pub(crate) struct OpMeasured {
    pub(crate) op: Op,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) denied: u64,
    pub(crate) misses: u64,
    pub(crate) service: Histogram<u64>,
    pub(crate) response: Histogram<u64>,
    /// Errors by [`cache::ErrorKind`], each with its first message.
    pub(crate) errors_by_class: BTreeMap<cache::ErrorKind, ErrorClass>,
    pub(crate) lag: Histogram<u64>,
    pub(crate) timeline: Vec<Bucket>,
}

pub(crate) struct Measured {
    pub(crate) ops: Vec<OpMeasured>,
    pub(crate) series: Vec<[SecondSample; 7]>,
    /// The measured window in `latency.hlog` intervals (see [`Measured::hlog`]).
    pub(crate) intervals: Vec<HlogInterval>,
}

impl Measured {
    /// Per-op stats (ops that ran or were weighted) plus `all`, over `seconds` of window.
    pub(crate) fn op_stats(&self, weighted: &[Op], seconds: f64) -> BTreeMap<String, OpStats> {
        let per_sec = |n: u64| ((n as f64 / seconds.max(1e-9)) * 10.0).round() / 10.0;
        let mut all_s = new_histogram();
        let mut all_r = new_histogram();
        let mut out = BTreeMap::new();
        let (mut c, mut e, mut d, mut mi) = (0, 0, 0, 0);
        for o in &self.ops {
            let _ = all_s.add(&o.service);
            let _ = all_r.add(&o.response);
            c += o.count;
            e += o.errors;
            d += o.denied;
            mi += o.misses;
            if o.count == 0 && !weighted.contains(&o.op) {
                continue;
            }
            out.insert(
                o.op.name().to_string(),
                OpStats {
                    count: o.count,
                    errors: o.errors,
                    denied: o.denied,
                    misses: o.misses,
                    throughput: per_sec(o.count),
                    service: Percentiles::of(&o.service),
                    response: Percentiles::of(&o.response),
                },
            );
        }
        out.insert(
            "all".into(),
            OpStats {
                count: c,
                errors: e,
                denied: d,
                misses: mi,
                throughput: per_sec(c),
                service: Percentiles::of(&all_s),
                response: Percentiles::of(&all_r),
            },
        );
        out
    }

    /// The per-second series, per op that had operations.
    pub(crate) fn series_report(&self) -> SeriesReport {
        let mut s = SeriesReport {
            interval_seconds: 1,
            ..SeriesReport::default()
        };
        for op in Op::ALL {
            if !self.series.iter().any(|sec| sec[op.index()].count > 0) {
                continue;
            }
            let col = |f: fn(&SecondSample) -> u64| -> Vec<u64> {
                self.series.iter().map(|sec| f(&sec[op.index()])).collect()
            };
            let name = op.name().to_string();
            s.throughput.insert(name.clone(), col(|x| x.count));
            s.errors.insert(name.clone(), col(|x| x.errors));
            s.p50_us.insert(name.clone(), col(|x| x.p50_us));
            s.p99_us.insert(name.clone(), col(|x| x.p99_us));
            s.service_p99_us.insert(name, col(|x| x.service_p99_us));
        }
        s
    }

    /// Errors per op that had errors, by class name.
    pub(crate) fn errors(&self) -> BTreeMap<String, BTreeMap<String, ErrorClass>> {
        self.ops
            .iter()
            .filter(|o| !o.errors_by_class.is_empty())
            .map(|o| {
                let classes = o
                    .errors_by_class
                    .iter()
                    .map(|(k, e)| (k.as_str().to_string(), e.clone()))
                    .collect();
                (o.op.name().to_string(), classes)
            })
            .collect()
    }

    /// Errors of one class over every op.
    pub(crate) fn errors_of(&self, kind: cache::ErrorKind) -> u64 {
        self.ops
            .iter()
            .filter_map(|o| o.errors_by_class.get(&kind))
            .map(|e| e.count)
            .sum()
    }

    /// The load's refusals by the ACL as one error (the first message names the command), or
    /// `None` when the ACL refused nothing. A refused operation is not a slow or failed one: the
    /// run measured nothing about Redis, so commands stop with exit 3 instead of judging SLOs.
    pub(crate) fn permission_refusal(&self) -> Option<crate::error::Error> {
        let kind = cache::ErrorKind::NoPermission;
        let example = self.ops.iter().find_map(|o| o.errors_by_class.get(&kind))?;
        Some(crate::error::Error::refused_during_load(
            self.errors_of(kind),
            &example.example,
        ))
    }

    /// How late operations started behind their schedule, p99, µs (open model; 0 when closed).
    pub(crate) fn lag_p99_us(&self) -> u64 {
        let mut all = new_histogram();
        for o in &self.ops {
            let _ = all.add(&o.lag);
        }
        if all.is_empty() {
            0
        } else {
            all.value_at_quantile(0.99)
        }
    }

    /// Every op's outcomes per 100 ms, added up.
    pub(crate) fn timeline(&self) -> Vec<Bucket> {
        let mut out: Vec<Bucket> = Vec::new();
        for o in &self.ops {
            if out.len() < o.timeline.len() {
                out.resize(o.timeline.len(), Bucket::default());
            }
            for (acc, b) in out.iter_mut().zip(&o.timeline) {
                acc.add(b);
            }
        }
        out
    }

    /// The `latency.hlog` intervals (per tag they add up to the op's measured histogram).
    pub(crate) fn hlog(&self) -> impl Iterator<Item = hlog::Interval> + '_ {
        intervals::decoded(&self.intervals)
    }

    /// The histograms of every op that ran, for the `.hgrm` files.
    pub(crate) fn histograms(&self) -> Vec<OpHistograms<'_>> {
        self.ops
            .iter()
            .filter(|o| o.count > 0)
            .map(|o| OpHistograms {
                name: o.op.name(),
                response: &o.response,
                service: &o.service,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_window_counts_but_ticks_see_everything() {
        let r = Recorder::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        r.record(Op::Login, ms(1), ms(2), Outcome::Ok, None, t0);
        assert_eq!(r.window.seconds_until(t0 + ms(6)), 0.0, "not open yet");
        r.window.open_at(t0 + ms(5));
        assert_eq!(r.window.seconds_until(t0 + ms(5)), 0.0);
        assert_eq!(r.window.seconds_until(t0 + ms(1005)), 1.0);
        assert_eq!(r.window.seconds_until(t0 + Duration::from_secs(60)), 10.0);
        r.record(
            Op::Login,
            ms(1),
            ms(3),
            Outcome::Error,
            Some((cache::ErrorKind::Timeout, "boom")),
            t0 + ms(6),
        );
        r.record(Op::Login, ms(1), ms(4), Outcome::Denied, None, t0 + ms(7));
        r.record(
            Op::Login,
            ms(1),
            ms(4),
            Outcome::Ok,
            None,
            t0 + Duration::from_secs(11),
        );
        let tick = r.tick(t0 + Duration::from_secs(1));
        assert_eq!((tick.ops, tick.errors), (4, 1));
        let m = r.finish();
        let login = &m.ops[Op::Login.index()];
        assert_eq!((login.count, login.errors, login.denied), (2, 1, 1));
        assert_eq!(
            login.errors_by_class[&cache::ErrorKind::Timeout].example,
            "boom"
        );
        assert_eq!(m.errors_of(cache::ErrorKind::Timeout), 1);
        assert_eq!(m.errors()["login"]["timeout"].count, 1);
        assert_eq!(example(&"x".repeat(5000)).chars().count(), MAX_EXAMPLE + 1);
        let p = Percentiles::of(&login.response);
        assert!((2999..=3001).contains(&p.p50_us), "{p:?}");
        assert_eq!(m.series.len(), 1);
        assert_eq!(m.series[0][Op::Login.index()].count, 4);
    }
}
