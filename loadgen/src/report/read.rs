//! Reading results back (`summary.json`), for `compare`: which runs a path names, the fields that
//! are read, and refusing comparisons that mean nothing.
//!
//! A path names one run (a results directory, or its `summary.json`) or several repetitions (a
//! directory whose subdirectories are results directories, like `results/baselines/smoke/`).
//!
//! Only the fields `compare` needs are read, through its own structs: `summary.json` may grow
//! fields without breaking the gate, and the writer ([`crate::report::Summary`]) stays free to
//! change its Rust types. An incompatible change bumps `schema_version`, which is checked first.
//!
//! Two runs are comparable when they ran the same workload: same scenario, model (closed or
//! open), users, target rate, operation mix, keyspace, rate-limit rules, server memory settings,
//! and the same kind of build (a debug build is ~10× slower). Anything else that differs —
//! duration, seed, Redis version, CPU count, `--inject-delay` — is listed as a note under the
//! table, because the reader should know, but it does not make the numbers meaningless.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::summary::SCHEMA_VERSION;

/// The `summary.json` versions this loadgen reads. Version 2 added fields (verdict `checked` and
/// `status`, errors by class, bottleneck, availability) and changed none that `compare` reads, so
/// a version-1 baseline still compares with a version-2 run.
const READS: std::ops::RangeInclusive<u64> = 1..=SCHEMA_VERSION as u64;
use crate::error::Error;

/// One run's `summary.json`, the parts `compare` reads.
pub struct Run {
    /// As the user can find it again: the results directory, or the file if given as a file.
    pub shown: String,
    pub raw: Value,
    pub summary: RunSummary,
}

#[derive(Deserialize)]
pub struct RunSummary {
    pub scenario: ScenarioPart,
    pub run: RunPart,
    pub ops: BTreeMap<String, OpPart>,
    pub series: SeriesPart,
    pub environment: EnvironmentPart,
}

#[derive(Deserialize)]
pub struct ScenarioPart {
    pub name: String,
}

#[derive(Deserialize)]
pub struct RunPart {
    pub started_utc: String,
    pub model: String,
    #[serde(default)]
    pub interrupted: bool,
    #[serde(default)]
    pub inject_delay_us: u64,
}

#[derive(Deserialize)]
pub struct OpPart {
    pub count: u64,
    pub response: PercentilesPart,
}

#[derive(Deserialize)]
pub struct PercentilesPart {
    pub p99_us: u64,
    pub p99_9_us: u64,
}

#[derive(Deserialize)]
pub struct SeriesPart {
    pub throughput: BTreeMap<String, Vec<u64>>,
    pub p99_us: BTreeMap<String, Vec<u64>>,
}

#[derive(Deserialize)]
pub struct EnvironmentPart {
    pub build: String,
    pub redis_version: String,
    pub cpu_count: usize,
    pub calibration: Option<CalibrationPart>,
}

#[derive(Deserialize, Clone)]
pub struct CalibrationPart {
    pub command: String,
    pub concurrency: usize,
    pub ops_per_sec: f64,
}

impl Run {
    /// Per-second samples in this run (the length of its series).
    pub fn seconds(&self) -> usize {
        self.summary
            .series
            .throughput
            .values()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
    }
}

/// Reads every run that `paths` name, for the side called `side` ("baseline" or "current").
pub fn load_side(side: &str, paths: &[PathBuf]) -> Result<Vec<Run>, Error> {
    let mut runs = Vec::new();
    for p in paths {
        for (file, shown) in summaries_under(side, p)? {
            runs.push(read_run(side, &file, shown)?);
        }
    }
    Ok(runs)
}

/// The `summary.json` files a path names, with the name to show for each.
fn summaries_under(side: &str, p: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
    let meta = std::fs::metadata(p).map_err(|e| {
        Error::usage(format!(
            "{side} {}: {e} (expected a loadgen results directory, its summary.json, or a directory of results directories)",
            p.display()
        ))
    })?;
    if meta.is_file() {
        return Ok(vec![(p.to_path_buf(), p.display().to_string())]);
    }
    let own = p.join("summary.json");
    if own.is_file() {
        return Ok(vec![(own, p.display().to_string())]);
    }
    let entries = std::fs::read_dir(p)
        .map_err(|e| Error::usage(format!("{side} {}: cannot list it: {e}", p.display())))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("summary.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::usage(format!(
            "{side} {}: not a loadgen results directory (no summary.json in it) and no results directories under it",
            p.display()
        )));
    }
    Ok(dirs
        .into_iter()
        .map(|d| (d.join("summary.json"), d.display().to_string()))
        .collect())
}

fn read_run(side: &str, file: &Path, shown: String) -> Result<Run, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::usage(format!("{side} {}: cannot read it: {e}", file.display())))?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "{side} {}: not JSON ({e}); expected a loadgen summary.json",
            file.display()
        ))
    })?;
    match raw.get("schema_version").and_then(Value::as_u64) {
        None => {
            return Err(Error::usage(format!(
                "{side} {}: no schema_version: not a loadgen summary.json",
                file.display()
            )));
        }
        Some(v) if !READS.contains(&v) => {
            return Err(Error::usage(format!(
                "{side} {}: schema_version {v}, but this loadgen reads schema_version {} to {SCHEMA_VERSION}; compare results written by a loadgen of that range (or regenerate the baseline)",
                file.display(),
                READS.start(),
            )));
        }
        Some(_) => {}
    }
    let summary: RunSummary = serde_json::from_value(raw.clone()).map_err(|e| {
        Error::usage(format!(
            "{side} {}: not a complete loadgen summary.json: {e}",
            file.display()
        ))
    })?;
    let run = Run {
        shown,
        raw,
        summary,
    };
    if run.summary.run.interrupted {
        return Err(Error::usage(format!(
            "{side} {}: the run was interrupted (Ctrl-C): its measured window is cut short; use a complete run",
            run.shown
        )));
    }
    if run.seconds() < 2 {
        return Err(Error::usage(format!(
            "{side} {}: {} per-second sample(s); compare needs at least 2 (run with --duration 2s or more)",
            run.shown,
            run.seconds()
        )));
    }
    Ok(run)
}

/// Fields that must be equal for a comparison to mean anything, as JSON pointers into
/// `summary.json`, with the words for the message.
const MUST_MATCH: [(&str, &str); 10] = [
    ("/scenario/name", "scenario"),
    ("/run/model", "load model (closed vs open)"),
    ("/config/load/users", "users"),
    ("/config/load/rate", "target rate (--rate)"),
    ("/config/mix", "operation mix"),
    ("/config/ratelimit", "rate-limit rules"),
    ("/config/redis/maxmemory", "server maxmemory"),
    ("/config/redis/maxmemory_policy", "server eviction policy"),
    ("/config/redis/persistence", "server persistence"),
    ("/environment/build", "build (debug vs release)"),
];

/// Fields worth a note when they differ.
const NOTE_IF_DIFFERENT: [(&str, &str); 8] = [
    ("/config/load/duration", "measured duration"),
    ("/config/load/warmup", "warm-up"),
    ("/config/seed", "seed"),
    (
        "/run/inject_delay_us",
        "injected delay per op (µs, --inject-delay)",
    ),
    ("/environment/redis_version", "Redis version"),
    ("/environment/cpu_count", "CPU count"),
    ("/environment/loadgen_version", "loadgen version"),
    ("/target/kind", "target kind"),
];

/// The keyspace settings minus the key prefix (a prefix changes no cost).
fn keyspace(v: &Value) -> serde_json::Map<String, Value> {
    let mut k = v
        .pointer("/config/keyspace")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    k.remove("prefix");
    k
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Checks that every run ran the same workload as the first baseline run; returns the notes for
/// differences that do not invalidate the comparison.
pub fn check_comparable(base: &[Run], cur: &[Run]) -> Result<Vec<String>, Error> {
    let reference = &base[0];
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for (side, run) in base
        .iter()
        .skip(1)
        .map(|r| ("baseline", r))
        .chain(cur.iter().map(|r| ("current", r)))
    {
        let (ks_ref, ks_run) = (keyspace(&reference.raw), keyspace(&run.raw));
        let keyspace_fields: Vec<(String, String)> = ks_ref
            .keys()
            .chain(ks_run.keys())
            .map(|k| (format!("/config/keyspace/{k}"), format!("keyspace.{k}")))
            .collect();
        let fields = MUST_MATCH
            .iter()
            .map(|(p, w)| (p.to_string(), w.to_string()))
            .chain(keyspace_fields);
        for (ptr, what) in fields {
            match (reference.raw.pointer(&ptr), run.raw.pointer(&ptr)) {
                (Some(a), Some(b)) if a != b => problems.push(format!(
                    "{what}: {} in baseline {}, {} in {side} {}",
                    show(Some(a)),
                    reference.shown,
                    show(Some(b)),
                    run.shown
                )),
                // A field one side does not have comes from another loadgen version: worth
                // saying, not worth refusing (a new setting's default is the old behaviour).
                (Some(_), None) | (None, Some(_)) => {
                    let note = format!(
                        "{what} is recorded in only one of baseline {} and {side} {} (results from different loadgen versions?)",
                        reference.shown, run.shown
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                _ => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::usage(format!(
            "these runs did not run the same workload, so comparing them is meaningless:\n  {}\nre-run both sides with the same scenario file and overrides",
            problems.join("\n  ")
        )));
    }
    for (ptr, what) in NOTE_IF_DIFFERENT {
        let values = |runs: &[Run]| {
            let mut v: Vec<String> = runs.iter().map(|r| show(r.raw.pointer(ptr))).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        let (b, c) = (values(base), values(cur));
        if b != c {
            notes.push(format!("{what} differs: baseline {b}, current {c}"));
        }
    }
    Ok(notes)
}
