//! The recorder's `latency.hlog` side: each op's measured values since the last cut, and the
//! intervals cut so far, compressed.
//!
//! Why a recorder keeps intervals at all: a scale-out run's workers are merged by adding their
//! histograms (see [`crate::report::hlog`]), interval by interval on absolute time. Every value
//! the recorder counts in the measured window also goes into the op's [`Cut`], under the same
//! lock, and each cut swaps the pair out, so the intervals of an op add up to its window
//! histogram exactly. A cut interval is kept V2+DEFLATE-compressed (a few hundred bytes) rather
//! than as two ~130 KB histograms, so a long run's memory stays small.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::report::hlog;
use crate::scenario::Op;

/// One op's service and response time since the last cut.
pub(crate) struct Cut {
    service: Histogram<u64>,
    response: Histogram<u64>,
}

impl Cut {
    /// Both histograms empty copies of `empty` (the recorder's bounds).
    pub(crate) fn new(empty: Histogram<u64>) -> Cut {
        Cut {
            service: empty.clone(),
            response: empty,
        }
    }

    pub(crate) fn record(&mut self, service_us: u64, response_us: u64) {
        self.service.saturating_record(service_us);
        self.response.saturating_record(response_us);
    }

    /// `(service, response)` since the last cut, if anything was recorded; starts afresh.
    pub(crate) fn take(&mut self) -> Option<(Histogram<u64>, Histogram<u64>)> {
        if self.response.is_empty() {
            return None;
        }
        let taken = (self.service.clone(), self.response.clone());
        self.service.reset();
        self.response.reset();
        Some(taken)
    }
}

/// One op's histograms over one interval of the measured window, compressed.
pub(crate) struct HlogInterval {
    pub(crate) op: Op,
    /// Since the Unix epoch.
    pub(crate) start: Duration,
    pub(crate) length: Duration,
    pub(crate) service: Vec<u8>,
    pub(crate) response: Vec<u8>,
}

/// The intervals cut so far, and when the current one began.
pub(crate) struct Intervals(Mutex<(SystemTime, Vec<HlogInterval>)>);

impl Intervals {
    pub(crate) fn new() -> Intervals {
        Intervals(Mutex::new((SystemTime::now(), Vec::new())))
    }

    /// Ends the current interval with what `take` returns (each op's [`Cut::take`]).
    pub(crate) fn cut(&self, take: impl FnOnce() -> Vec<(Op, (Histogram<u64>, Histogram<u64>))>) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        let since = guard.0;
        let start = since.duration_since(UNIX_EPOCH).unwrap_or_default();
        let length = now.duration_since(since).unwrap_or_default();
        for (op, (service, response)) in take() {
            guard.1.push(HlogInterval {
                op,
                start,
                length,
                service: hlog::encode(&service),
                response: hlog::encode(&response),
            });
        }
        guard.0 = now;
    }

    /// Every interval cut so far (the recorder is done).
    pub(crate) fn take_all(&self) -> Vec<HlogInterval> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()).1)
    }
}

/// The intervals as `latency.hlog` entries, decoded one at a time as the writer asks for them.
pub(crate) fn decoded(intervals: &[HlogInterval]) -> impl Iterator<Item = hlog::Interval> + '_ {
    intervals.iter().flat_map(|i| {
        [("response", &i.response), ("service", &i.service)]
            .into_iter()
            .filter_map(move |(kind, bytes)| {
                Some(hlog::Interval {
                    tag: hlog::tag(i.op.name(), kind),
                    start: i.start,
                    length: i.length,
                    histogram: hlog::decode(bytes).ok()?,
                })
            })
    })
}
