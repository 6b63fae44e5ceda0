//! The results directory of one command, and the environment it records.
//!
//! `results/<name>-<UTC time>/` is created (and proven writable) before any load is sent, so an
//! unwritable `--out` fails in a second with exit 2 instead of after a ten-minute run. A name that
//! is taken gets `-2`, `-3`...

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::summary::{Calibration, Environment};

/// `(directory stamp, RFC 3339)` of now, UTC.
pub(crate) fn utc_stamp() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let dir = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "now".into());
    let iso = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (dir, iso)
}

/// Creates `out/<name>-<stamp>` (with `-2`, `-3`... if taken) and proves it is writable.
pub(crate) fn create_dir(out: &Path, name: &str, stamp: &str) -> Result<PathBuf> {
    let fail = |what: &'static str, source: std::io::Error| Error::Unwritable {
        flag: "--out",
        path: out.to_path_buf(),
        what,
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| fail("create it", e))?;
    let mut dir = out.join(format!("{name}-{stamp}"));
    let mut n = 2;
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                dir = out.join(format!("{name}-{stamp}-{n}"));
                n += 1;
            }
            Err(e) => return Err(fail("create the results directory in it", e)),
        }
    }
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| fail("write into it", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(dir)
}

/// Removes a results directory that stayed empty (the command failed before writing anything).
pub(crate) fn remove_if_empty(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}

/// Creates `dir/sub` for files written step by step (goose's per-step pages).
pub(crate) fn create_subdir(dir: &Path, sub: &str) -> Result<PathBuf> {
    let p = dir.join(sub);
    std::fs::create_dir_all(&p).map_err(|e| Error::write(&p, e))?;
    Ok(p)
}

/// This machine and build, for the results.
pub(crate) fn environment(redis_version: String, calibration: Option<Calibration>) -> Environment {
    Environment {
        loadgen_version: env!("CARGO_PKG_VERSION").into(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        redis_version,
        cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        calibration,
        loadgen_peak_rss_bytes: peak_rss(),
    }
}

/// `VmHWM` from `/proc/self/status`.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
