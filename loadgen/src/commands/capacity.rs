//! `loadgen capacity`: how many sessions, cached tokens and rate-limit counters fit in a
//! `maxmemory`, measured on the real server rather than guessed from value sizes
//! ([`crate::engine::capacity`] explains the measurement, the model and the headroom).
//!
//! ```text
//! loadgen capacity <scenario.toml> [--maxmemory 256mb] [--redis-url URL] [--headroom 10%]
//!                  [--samples 2000] [--format text|json] [--set key=value ...]
//! ```
//!
//! Without a URL the measurement runs on a throwaway server with no `maxmemory` (it needs room);
//! the limit is projected. Exit 0, or 1 when a `maxmemory` is known and the scenario's keyspace
//! does not fit in it with the headroom, or 3 when the measurement was refused: others kept
//! changing the server beyond the bound, or the ACL refused a command (the reason is printed,
//! never a projection built on it).

use std::path::PathBuf;

use crate::engine::capacity::{self, Limit};
use crate::engine::progress::{Event, Progress};
use crate::engine::redis_admin;
use crate::engine::target::{self, TargetSpec};
use crate::error::{EXIT_FAIL, EXIT_PASS, Result};
use crate::report::capacity::CapacityReport;
use crate::scenario::{Scenario, parse_size};

/// Everything `capacity` needs, resolved at the edge.
#[derive(Debug)]
pub(crate) struct CapacityOptions {
    pub(crate) scenario_file: PathBuf,
    pub(crate) scenario: Scenario,
    pub(crate) target: TargetSpec,
    /// `--maxmemory`, bytes.
    pub(crate) maxmemory: Option<u64>,
    /// Share of `maxmemory` kept free, 0–0.95.
    pub(crate) headroom: f64,
    /// Items written per kind.
    pub(crate) samples: usize,
}

/// The measurement and projection, and the (redacted) target it was measured on.
pub(crate) struct CapacityOutcome {
    pub(crate) report: CapacityReport,
    pub(crate) target: String,
}

impl CapacityOutcome {
    /// 1 when a `maxmemory` is known and the scenario's keyspace does not fit in it.
    pub(crate) fn exit_code(&self) -> i32 {
        match &self.report.projection {
            Some(p) if p.scenario_fits_times < 1.0 => EXIT_FAIL,
            _ => EXIT_PASS,
        }
    }
}

/// `loadgen capacity`.
pub(crate) async fn run(opts: &CapacityOptions, progress: &Progress) -> Result<CapacityOutcome> {
    let s = &opts.scenario;
    progress.emit(Event::Started {
        command: "capacity",
        scenario: s.display_name().to_string(),
        file: opts.scenario_file.display().to_string(),
    });
    // The measurement needs room: a throwaway server gets no maxmemory; the limit is projected.
    let mut redis_cfg = s.redis.clone();
    redis_cfg.maxmemory = None;
    redis_cfg.maxmemory_policy = None;
    let target = target::open(&opts.target, &redis_cfg, progress).await?;
    let limit = match opts.maxmemory {
        Some(bytes) => Some(Limit {
            bytes,
            source: "--maxmemory".into(),
        }),
        None if target.throwaway.is_none() => {
            redis_admin::maxmemory(&target.redis)
                .await
                .map(|bytes| Limit {
                    bytes,
                    source: "CONFIG GET maxmemory".into(),
                })
        }
        None => s
            .redis
            .maxmemory
            .as_deref()
            .and_then(|m| parse_size(m).ok())
            .map(|bytes| Limit {
                bytes,
                source: "scenario [redis] maxmemory".into(),
            }),
    };
    let shown = target.url.to_string();
    progress.emit(Event::Measuring {
        samples: opts.samples,
        url: shown.clone(),
    });
    let result = capacity::report(&target.redis, s, limit, opts.headroom, opts.samples).await;
    target.close().await;
    Ok(CapacityOutcome {
        report: result?,
        target: shown,
    })
}
