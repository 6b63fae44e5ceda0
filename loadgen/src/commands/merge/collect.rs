//! Reading one worker's results directory back: its `summary.json` (the whole schema, as
//! [`Summary`]) and its `latency.hlog`. A directory that is not a worker's (no `worker` section:
//! a plain run) or misses a file is refused with exit 2, naming the directory and the file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::hlog::{self, Interval};
use crate::report::workers::WorkerInfo;
use crate::report::{SCHEMA_VERSION, Summary};

/// One worker's results, as read.
pub(super) struct Worker {
    pub(super) dir: PathBuf,
    pub(super) summary: Summary,
    /// `summary.worker`, known present.
    pub(super) info: WorkerInfo,
    pub(super) intervals: Vec<Interval>,
}

/// Every directory, in the order given.
pub(super) fn all(dirs: &[PathBuf]) -> Result<Vec<Worker>> {
    if dirs.is_empty() {
        return Err(Error::usage(
            "merge: no results directories given: expected the workers' directories, e.g. \
             loadgen merge results/w0 results/w1 results/w2 --out results/merged",
        ));
    }
    let mut expanded = Vec::new();
    for d in dirs {
        if d.join("summary.json").is_file() {
            expanded.push(d.clone());
            continue;
        }
        // A directory of workers' directories (a shared volume's `workers/`): take each of them.
        let mut subs: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| Error::usage(format!("merge: {}: cannot read it: {e}", d.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("summary.json").is_file())
            .collect();
        if subs.is_empty() {
            return Err(Error::usage(format!(
                "merge: {}: no summary.json in it or in its subdirectories (expected a worker's results directory)",
                d.display()
            )));
        }
        subs.sort();
        expanded.append(&mut subs);
    }
    expanded.iter().map(|d| one(d)).collect()
}

fn one(dir: &Path) -> Result<Worker> {
    let bad = |file: &str, why: String| {
        Error::usage(format!(
            "merge: {}: {file}: {why}",
            dir.join(file).display()
        ))
    };
    let text = std::fs::read_to_string(dir.join("summary.json")).map_err(|e| {
        bad(
            "summary.json",
            format!("cannot read it: {e} (expected a worker's results directory)"),
        )
    })?;
    let raw: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad("summary.json", format!("not JSON: {e}")))?;
    let version = raw
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(SCHEMA_VERSION as u64) {
        return Err(bad(
            "summary.json",
            format!(
                "schema_version {}: this loadgen merges schema_version {SCHEMA_VERSION} (rerun the workers with one loadgen version)",
                version.map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let summary: Summary = serde_json::from_value(raw).map_err(|e| {
        bad(
            "summary.json",
            format!("not a complete loadgen summary: {e}"),
        )
    })?;
    let info = summary.worker.clone().ok_or_else(|| {
        bad(
            "summary.json",
            "no `worker` section: a plain run, not a scale-out worker's (run each worker with --worker I/N)".into(),
        )
    })?;
    let intervals = hlog::read(&dir.join("latency.hlog")).map_err(|e| bad("latency.hlog", e))?;
    Ok(Worker {
        dir: dir.to_path_buf(),
        summary,
        info,
        intervals,
    })
}
