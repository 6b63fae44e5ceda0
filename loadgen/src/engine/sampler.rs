//! Redis's view during the load: `INFO` once a second, a few fields kept per sample, on a task of
//! its own beside the attack. One `INFO` a second is noise next to the load; a sample that does not
//! come back within its second is skipped, not waited for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::Redis;
use tokio::sync::watch;

use super::redis_admin::{Info, info};
use crate::report::summary::InfoPoint;

/// The fields kept from each `INFO` sample.
pub(crate) const SERIES_FIELDS: [&str; 8] = [
    "used_memory",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
    "connected_clients",
    "instantaneous_ops_per_sec",
    "total_commands_processed",
];

/// The [`SERIES_FIELDS`] of one `INFO`, plus the key count: a run's "before" and "after".
pub(crate) fn selected(info: &Info) -> std::collections::BTreeMap<String, f64> {
    let mut m: std::collections::BTreeMap<String, f64> = SERIES_FIELDS
        .iter()
        .filter_map(|f| Some((f.to_string(), info.num(f)?)))
        .collect();
    m.insert("keys".into(), info.keys());
    m
}

fn point(t: f64, info: &Info) -> InfoPoint {
    InfoPoint {
        t: (t * 10.0).round() / 10.0,
        values: SERIES_FIELDS
            .iter()
            .filter_map(|f| Some((*f, info.num(f)?)))
            .collect(),
    }
}

/// Samples `INFO` once a second until stopped.
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    points: Arc<Mutex<Vec<InfoPoint>>>,
}

impl Sampler {
    pub(crate) fn start(redis: Redis) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let points = Arc::new(Mutex::new(Vec::new()));
        let out = points.clone();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => break,
                }
                // A sample that does not come back within the second is skipped, not waited for.
                if let Ok(Ok(i)) =
                    tokio::time::timeout(Duration::from_secs(1), info(&redis, "default")).await
                {
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(point(t0.elapsed().as_secs_f64(), &i));
                }
            }
        });
        Sampler { stop, task, points }
    }

    pub(crate) async fn finish(self) -> Vec<InfoPoint> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        std::mem::take(&mut *self.points.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
