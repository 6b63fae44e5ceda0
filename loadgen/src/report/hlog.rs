//! `latency.hlog`: every measured operation's latency, one HdrHistogram per operation, kind
//! (response or service time) and second, in the standard interval-log format (the one Java's
//! `HistogramLogWriter`, wrk2 and memtier's `--hdr-file-prefix` write; readable by
//! `HistogramLogProcessor` and the `hdrhistogram` crate).
//!
//! Why keep intervals and not only the run's totals: a scale-out run is N processes, and the only
//! exact way to combine their latencies is to add their histograms. Percentiles cannot be
//! averaged; histograms can be added, interval by interval, on absolute time. So each worker
//! writes this file next to its `summary.json`, and `loadgen merge` reads them back
//! ([`read`]) and adds them up. The intervals of one tag add up exactly to the run's measured
//! histogram for that op: the recorder writes each measured value into both.
//!
//! Format: a header (`#[StartTime: ...]`, no `BaseTime`, so every interval's timestamp is seconds
//! since the Unix epoch), then one line per interval:
//! `Tag=<op>.<response|service>,<start>,<length>,<max>,<base64 V2+DEFLATE histogram>`. Values are
//! microseconds.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

/// The two kinds of latency an operation has (coordinated omission: `response` counts from when
/// the operation should have started, `service` from when it did).
pub const KINDS: [&str; 2] = ["response", "service"];

/// One interval of one tag.
pub struct Interval {
    /// `<op>.response` or `<op>.service` (see [`tag`]).
    pub tag: String,
    /// When it started, since the Unix epoch (millisecond precision in the file).
    pub start: Duration,
    pub length: Duration,
    pub histogram: Histogram<u64>,
}

/// The tag of one op's response or service time.
pub fn tag(op: &str, kind: &str) -> String {
    format!("{op}.{kind}")
}

/// `(op, kind)` of a tag written by [`tag`].
pub fn split_tag(tag: &str) -> Option<(&str, &str)> {
    tag.rsplit_once('.')
        .filter(|(op, kind)| !op.is_empty() && KINDS.contains(kind))
}

/// A histogram compressed as V2 + DEFLATE: what a recorder keeps per interval (a few hundred
/// bytes instead of the ~130 KB a 1 µs–60 s histogram occupies in memory).
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing into a Vec cannot fail for a histogram of u64 counts.
    let _ = V2DeflateSerializer::new().serialize(h, &mut out);
    out
}

/// The histogram [`encode`] compressed.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a V2 histogram: {e:?}"))
}

/// Writes `intervals` to `path`, with `start` as the log's StartTime. `intervals` is an iterator
/// so that a long run's histograms are decoded one at a time, never all in memory.
pub fn write(
    path: &Path,
    start: SystemTime,
    intervals: impl IntoIterator<Item = Interval>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("loadgen latency log: microseconds; tags <op>.response and <op>.service")
        .with_start_time(start)
        .begin_log_with(&mut out, &mut serializer)?;
    for i in intervals {
        let tag = Tag::new(&i.tag).ok_or_else(|| {
            std::io::Error::other(format!("{:?} is not a valid interval-log tag", i.tag))
        })?;
        log.write_histogram(&i.histogram, i.start, i.length, Some(tag))
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    drop(log);
    out.flush()
}

/// Reads an interval log: every tagged interval, its timestamp made absolute (a `BaseTime` header
/// is added in). Untagged intervals are not loadgen's and are refused, as are unparsable lines.
pub fn read(path: &Path) -> Result<Vec<Interval>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut base = Duration::ZERO;
    let mut out = Vec::new();
    for (n, entry) in IntervalLogIterator::new(&bytes).enumerate() {
        let entry =
            entry.map_err(|e| format!("entry {}: not an interval-log line: {e:?}", n + 1))?;
        let i = match entry {
            LogEntry::BaseTime(b) => {
                base = b;
                continue;
            }
            LogEntry::StartTime(_) => continue,
            LogEntry::Interval(i) => i,
        };
        let tag = i
            .tag()
            .map(|t| t.as_str().to_string())
            .filter(|t| split_tag(t).is_some())
            .ok_or_else(|| {
                format!(
                    "entry {}: expected a tag <op>.response or <op>.service",
                    n + 1
                )
            })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .map_err(|e| format!("entry {} ({tag}): not base64: {e}", n + 1))?;
        out.push(Interval {
            histogram: decode(&raw).map_err(|e| format!("entry {} ({tag}): {e}", n + 1))?,
            tag,
            start: base + i.start_timestamp(),
            length: i.duration(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hlog");
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in [1, 17, 250, 9_999, 1_234_567] {
            h.record(v).unwrap();
        }
        let start = Duration::from_millis(1_800_000_000_123);
        let interval = |tag: &str| Interval {
            tag: tag.into(),
            start,
            length: Duration::from_secs(1),
            histogram: decode(&encode(&h)).unwrap(),
        };
        write(
            &path,
            SystemTime::UNIX_EPOCH + start,
            [interval("api_call.response"), interval("api_call.service")],
        )
        .unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].tag, "api_call.response");
        assert_eq!(back[0].start, start);
        assert_eq!(back[1].histogram, h);
        assert_eq!(
            split_tag("logout_everywhere.service"),
            Some(("logout_everywhere", "service"))
        );
        assert_eq!(split_tag("api_call.p99"), None);
    }
}
