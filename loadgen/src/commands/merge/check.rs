//! Refusing a set of directories that is not one scale-out run. Every worker must have run the
//! same scenario (name, base seed, mix, SLOs, rate-limit rules, server settings, duration) with
//! the same worker count, and the indexes must be 0..N−1, each once: a missing worker would
//! silently shrink the load, a duplicate would count one shard twice. The error names the
//! directory and the field that differs.

use serde_json::Value;

use super::collect::Worker;
use crate::error::{Error, Result};

/// Fields of `summary.json` every worker must agree on, as JSON pointers, with their names.
const SAME: [(&str, &str); 11] = [
    ("/scenario/name", "scenario name"),
    ("/worker/count", "worker count (worker.count)"),
    ("/worker/base_seed", "scenario seed (worker.base_seed)"),
    ("/config/mix", "operation mix (config.mix)"),
    ("/config/slo", "SLOs (config.slo)"),
    ("/config/ratelimit", "rate-limit rules (config.ratelimit)"),
    ("/config/redis", "server settings (config.redis)"),
    (
        "/config/load/duration",
        "measured duration (config.load.duration)",
    ),
    ("/config/load/warmup", "warm-up (config.load.warmup)"),
    ("/run/model", "load model (run.model)"),
    ("/environment/build", "build (environment.build)"),
];

pub(super) fn one_run(workers: &[Worker]) -> Result<()> {
    let json = |w: &Worker| serde_json::to_value(&w.summary).unwrap_or(Value::Null);
    let first = &workers[0];
    let reference = json(first);
    for w in &workers[1..] {
        let v = json(w);
        for (ptr, what) in SAME {
            if reference.pointer(ptr) != v.pointer(ptr) {
                return Err(Error::usage(format!(
                    "merge: {}: {what} is {} but {} has {}: these are not workers of one run",
                    w.dir.display(),
                    show(v.pointer(ptr)),
                    first.dir.display(),
                    show(reference.pointer(ptr)),
                )));
            }
        }
    }
    let n = first.info.count as usize;
    let mut seen: Vec<Option<&Worker>> = vec![None; n];
    for w in workers {
        let i = w.info.index as usize;
        if i >= n {
            return Err(Error::usage(format!(
                "merge: {}: worker.index {i} is outside 0..{n}",
                w.dir.display()
            )));
        }
        if let Some(other) = seen[i] {
            return Err(Error::usage(format!(
                "merge: {}: worker.index {i} is also {}'s: a shard given twice",
                w.dir.display(),
                other.dir.display()
            )));
        }
        seen[i] = Some(w);
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| seen[*i].is_none())
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "merge: worker.index {} of {n} missing: give every worker's directory (the run had worker.count = {n})",
            missing.join(", ")
        )));
    }
    Ok(())
}

fn show(v: Option<&Value>) -> String {
    v.map_or("absent".into(), Value::to_string)
}
