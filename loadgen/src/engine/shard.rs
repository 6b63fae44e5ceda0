//! Scale-out: shard `index` of `count`, and the scenario such a worker runs.
//!
//! One loadgen process tops out long before a production Redis does, so a capacity run uses N
//! processes (a Kubernetes Indexed Job, a Compose profile, N shells) that each run one shard and
//! whose results `loadgen merge` adds up exactly. There is no coordinator: every worker computes
//! its own share from `(index, count)` and the same scenario, so the shards are disjoint and
//! cover the whole run by construction.
//!
//! What a worker gets ([`Shard::apply`]):
//! - **load**: its part of `load.users` and of the open-model `load.rate` (whole units split
//!   evenly, the remainder one each to the lowest indexes; a fractional rate goes to worker 0), and
//!   `load.ramp / count`, so all workers together ramp as one process would;
//! - **keyspace**: its own contiguous slice of the accounts and of the client IPs (same split), so
//!   no two workers touch the same session, token or rate-limit counter, and each worker's
//!   invariants (lost sessions, over-admission, revoked tokens) stay checkable on its own. The
//!   whole keyspace stays the scenario's size. A skewed distribution (zipf) is applied within each
//!   slice, so N workers have N hot heads rather than one;
//! - **seed**: `seed + index`, so a rerun of the same shard does the same work and worker 0 of 1
//!   is exactly a plain run.
//!
//! A scenario too small to split (fewer users, accounts, client IPs or ops/s than workers) is
//! refused with the field that is too small.

use crate::error::{Error, Result};
use crate::report::workers::WorkerInfo;
use crate::scenario::{Scenario, SliceStart};

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

/// `(first, len)` of part `index` when `total` is cut into `count` parts: `total / count` each,
/// the remainder one each to the lowest indexes.
pub(crate) fn part(total: u64, index: u32, count: u32) -> (u64, u64) {
    let (n, i) = (count.max(1) as u64, index as u64);
    let (each, rest) = (total / n, total % n);
    (i * each + i.min(rest), each + u64::from(i < rest))
}

impl Shard {
    /// A shard; `index < count` and `count ≥ 1` (the CLI refuses anything else, naming the flag).
    pub(crate) fn new(index: u32, count: u32) -> std::result::Result<Shard, String> {
        if count == 0 {
            return Err("the worker count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "worker index {index} is outside 0..{count} (indexes start at 0)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The scenario this worker runs, and what its results say about its shard (`start_at`,
    /// `late_s`, host and pid are filled in by the run).
    pub(crate) fn apply(&self, s: &Scenario) -> Result<(Scenario, WorkerInfo)> {
        let split = |field: &str, total: u64| -> Result<(u64, u64)> {
            if total < self.count as u64 {
                return Err(Error::usage(format!(
                    "{field} = {total} cannot be split over {} workers: each needs at least 1 \
                     (raise {field} or run fewer workers)",
                    self.count
                )));
            }
            Ok(part(total, self.index, self.count))
        };
        let mut w = s.clone();
        let (_, users) = split("load.users", s.load.users as u64)?;
        let (accounts_from, accounts) = split("keyspace.users", s.keyspace.users as u64)?;
        let (ips_from, ips) = split("keyspace.client_ips", s.keyspace.client_ips as u64)?;
        w.load.users = users as u32;
        w.load.ramp = s.load.ramp.map(|r| r / self.count as f64);
        if let Some(rate) = s.load.rate {
            let (_, whole) = split("load.rate", rate.floor() as u64)?;
            let fraction = if self.index == 0 { rate.fract() } else { 0.0 };
            w.load.rate = Some(whole as f64 + fraction);
        }
        w.keyspace.users = accounts as u32;
        w.keyspace.client_ips = ips as u32;
        w.keyspace.slice_from = SliceStart {
            accounts: accounts_from as u32,
            client_ips: ips_from as u32,
        };
        w.seed = s.seed.wrapping_add(self.index as u64);
        let info = WorkerInfo {
            index: self.index,
            count: self.count,
            base_seed: s.seed,
            base_ramp: s.load.ramp,
            accounts_from: accounts_from as u32,
            client_ips_from: ips_from as u32,
            start_at: None,
            late_s: None,
            host: host_name(),
            pid: std::process::id(),
        };
        Ok((w, info))
    }
}

/// This machine's (or pod's, or container's) host name, for the worker's identity.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_cover_the_total_and_favour_low_indexes() {
        for (total, n) in [(10u64, 3u32), (3, 3), (1000, 7), (5, 1)] {
            let parts: Vec<_> = (0..n).map(|i| part(total, i, n)).collect();
            let mut next = 0;
            for (first, len) in &parts {
                assert_eq!(*first, next, "{total}/{n}: contiguous");
                next = first + len;
            }
            assert_eq!(next, total, "{total}/{n}: covers the total");
            assert!(parts.windows(2).all(|w| w[0].1 >= w[1].1));
        }
        assert_eq!(part(10, 0, 3), (0, 4));
        assert_eq!(part(10, 2, 3), (7, 3));
    }

    #[test]
    fn a_worker_gets_its_share_and_a_scenario_too_small_is_refused() {
        let s = crate::scenario::parse(
            std::path::Path::new("t.toml"),
            "[load]\nusers = 50\nduration = \"5s\"\nrate = 1000.5\nramp = 100\n[keyspace]\nusers = 10\nclient_ips = 4\n[mix]\napi_call = 1\n",
            &[],
        )
        .unwrap();
        let (w, info) = Shard::new(1, 3).unwrap().apply(&s).unwrap();
        assert_eq!(w.load.users, 17);
        assert_eq!(w.load.rate, Some(333.0));
        assert_eq!(w.load.ramp, Some(100.0 / 3.0));
        assert_eq!((w.keyspace.users, info.accounts_from), (3, 4));
        assert_eq!((w.keyspace.client_ips, info.client_ips_from), (1, 2));
        assert_eq!(w.seed, s.seed + 1);
        let (w0, _) = Shard::new(0, 3).unwrap().apply(&s).unwrap();
        assert_eq!(w0.load.rate, Some(334.5));
        let e = Shard::new(0, 5).unwrap().apply(&s).unwrap_err();
        assert!(e.to_string().contains("keyspace.client_ips = 4"), "{e}");
        assert!(Shard::new(3, 3).is_err() && Shard::new(0, 0).is_err());
    }
}
