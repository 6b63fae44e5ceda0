//! Which shard of a scale-out run this process is, and when its load begins: from the flags, or
//! from the environment the orchestrator gives each worker. No coordinator is involved; every
//! orchestrator people already run can number its workers:
//!
//! | source | gives | count from |
//! |---|---|---|
//! | `--worker I/N` | index and count | the flag |
//! | `LOADGEN_WORKER=I/N` | index and count | the variable (Compose services, scripts) |
//! | `JOB_COMPLETION_INDEX` | index (Kubernetes Indexed Job) | `--workers N` or `LOADGEN_WORKERS` |
//! | `NOMAD_ALLOC_INDEX` | index (Nomad) | `--workers N` or `LOADGEN_WORKERS` |
//!
//! The first present wins, in that order. The shared start is `--start-at` or `LOADGEN_START_AT`
//! (RFC 3339, UTC). A start already past by more than [`MAX_PAST`] is refused: it is a stale
//! manifest or script, and workers starting "now" at different times would not measure one
//! window. A start only slightly past (a pod scheduled late) begins at once, and the run records
//! how late it began.

use std::time::{Duration, SystemTime};

use crate::engine::shard::Shard;

/// How far in the past `--start-at` may be before it is refused.
pub(crate) const MAX_PAST: Duration = Duration::from_secs(60);

/// The environment variables that can number a worker, read once at start-up.
#[derive(Debug, Default)]
pub(crate) struct WorkerEnv {
    pub(crate) loadgen_worker: Option<String>,
    pub(crate) loadgen_workers: Option<String>,
    pub(crate) job_completion_index: Option<String>,
    pub(crate) nomad_alloc_index: Option<String>,
    pub(crate) start_at: Option<String>,
}

impl WorkerEnv {
    pub(crate) fn from_process() -> WorkerEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        WorkerEnv {
            loadgen_worker: var("LOADGEN_WORKER"),
            loadgen_workers: var("LOADGEN_WORKERS"),
            job_completion_index: var("JOB_COMPLETION_INDEX"),
            nomad_alloc_index: var("NOMAD_ALLOC_INDEX"),
            start_at: var("LOADGEN_START_AT"),
        }
    }
}

/// `I/N` as given by `origin` (a flag or a variable name).
fn parse_pair(origin: &str, raw: &str) -> Result<Shard, String> {
    let bad = |why: String| format!("{origin} `{raw}`: {why}: expected I/N, e.g. 0/3 (0-based)");
    let (i, n) = raw
        .trim()
        .split_once('/')
        .ok_or_else(|| bad("no `/`".into()))?;
    let num = |t: &str, what: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("{what} `{t}` is not a whole number")))
    };
    Shard::new(num(i, "index")?, num(n, "count")?).map_err(bad)
}

/// The shard this process runs, or `None` for a plain run.
pub(crate) fn shard(
    flag: Option<&str>,
    workers: Option<u32>,
    env: &WorkerEnv,
) -> Result<Option<Shard>, String> {
    if let Some(raw) = flag {
        return parse_pair("--worker", raw).map(Some);
    }
    if let Some(raw) = &env.loadgen_worker {
        return parse_pair("LOADGEN_WORKER", raw).map(Some);
    }
    let indexed = [
        ("JOB_COMPLETION_INDEX", &env.job_completion_index),
        ("NOMAD_ALLOC_INDEX", &env.nomad_alloc_index),
    ];
    let Some((origin, raw)) = indexed
        .into_iter()
        .find_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    else {
        return Ok(None);
    };
    let count = match (workers, &env.loadgen_workers) {
        (Some(n), _) => n,
        (None, Some(n)) => n.trim().parse::<u32>().map_err(|_| {
            format!("LOADGEN_WORKERS `{n}` is not a whole number: expected the worker count")
        })?,
        (None, None) => {
            return Err(format!(
                "{origin}={raw} numbers this worker but the worker count is missing: pass \
                 --workers N or set LOADGEN_WORKERS=N (the Job's parallelism)"
            ));
        }
    };
    parse_pair(origin, &format!("{}/{count}", raw.trim())).map(Some)
}

/// The shared start time, refused if it is more than [`MAX_PAST`] before `now`.
pub(crate) fn start_at(
    flag: Option<&str>,
    env: &WorkerEnv,
    now: SystemTime,
) -> Result<Option<SystemTime>, String> {
    let (origin, raw) = match (flag, &env.start_at) {
        (Some(f), _) => ("--start-at", f),
        (None, Some(e)) => ("LOADGEN_START_AT", e.as_str()),
        (None, None) => return Ok(None),
    };
    let at = humantime::parse_rfc3339(raw.trim()).map_err(|e| {
        format!("{origin} `{raw}`: {e}: expected an RFC 3339 UTC time like 2026-11-30T12:00:00Z")
    })?;
    if let Ok(past) = now.duration_since(at)
        && past > MAX_PAST
    {
        return Err(format!(
            "{origin} `{raw}` was {} ago (more than {} in the past): give a time ahead, long \
             enough for every worker to start and seed, e.g. $(date -u -d '+2 min' +%FT%TZ)",
            humantime::format_duration(Duration::from_secs(past.as_secs())),
            humantime::format_duration(MAX_PAST)
        ));
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_variables_and_an_index_needs_a_count() {
        let env = WorkerEnv {
            loadgen_worker: Some("1/4".into()),
            job_completion_index: Some("2".into()),
            ..WorkerEnv::default()
        };
        let s = |f, n, e| shard(f, n, e);
        let none = WorkerEnv::default();
        assert_eq!(s(Some("0/2"), None, &env).unwrap(), Shard::new(0, 2).ok());
        assert_eq!(s(None, None, &env).unwrap(), Shard::new(1, 4).ok());
        let k8s = WorkerEnv {
            job_completion_index: Some("2".into()),
            ..WorkerEnv::default()
        };
        assert_eq!(s(None, Some(3), &k8s).unwrap(), Shard::new(2, 3).ok());
        let e = s(None, None, &k8s).unwrap_err();
        assert!(
            e.contains("JOB_COMPLETION_INDEX=2") && e.contains("--workers"),
            "{e}"
        );
        let e = s(None, Some(2), &k8s).unwrap_err();
        assert!(
            e.contains("JOB_COMPLETION_INDEX") && e.contains("outside 0..2"),
            "{e}"
        );
        for bad in ["3", "a/3", "1/0", "3/3"] {
            let e = s(Some(bad), None, &none).unwrap_err();
            assert!(e.starts_with("--worker"), "{e}");
        }
        assert_eq!(s(None, None, &none).unwrap(), None);
    }

    #[test]
    fn a_start_long_past_is_refused_naming_its_origin() {
        let at = humantime::parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
        let env = WorkerEnv::default();
        let ok = start_at(
            Some("2026-11-30T12:00:00Z"),
            &env,
            at + Duration::from_secs(5),
        );
        assert_eq!(ok.unwrap(), Some(at));
        let e = start_at(
            Some("2026-11-30T12:00:00Z"),
            &env,
            at + Duration::from_secs(600),
        );
        assert!(e.unwrap_err().starts_with("--start-at"));
        let e = start_at(Some("noon"), &env, at).unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
