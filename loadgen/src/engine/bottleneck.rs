//! Who was the limit: loadgen, Redis, or neither. A throughput figure is only Redis's capacity
//! when the generator had cores to spare; on a laptop or a small CI runner loadgen often runs out
//! first, and a capacity plan built on that number sizes production wrong.
//!
//! The evidence ([`Evidence`]) is gathered around each attack: loadgen's own CPU ([`super::cpu`]:
//! process, busiest thread, cgroup quota and throttling), Redis's CPU (`INFO cpu`, main thread and
//! all threads, when one node answered for the whole attack), a `PING` probe on a connection of its
//! own ([`super::sampler`]), and for an open model the offered rate and how late operations
//! started. The rules, in order (thresholds are the constants below):
//!
//! 1. **generator** — loadgen used ≥ 90 % of the cores it may use, or one of its threads was busy
//!    ≥ 90 % of the time (one thread serialises the work), or a cgroup quota throttled it in
//!    ≥ 20 % of periods. Add workers (`--worker`) or cores before reading the figures as Redis's.
//! 2. **server** — Redis's main thread was busy ≥ 90 % of the time.
//! 3. **generator** — Redis runs on this machine and loadgen + Redis used ≥ 90 % of its cores: the
//!    machine they share, not Redis, was the limit.
//! 4. **unknown** — the machine was busy (≥ 90 % of all its cores) and other processes took ≥ 20 %
//!    of it: they starve loadgen and a local Redis alike, so neither a slow answer nor a low rate
//!    can be blamed on Redis. Rerun on a quiet machine.
//! 5. **server** — while loadgen had headroom (< 70 % of its cores), Redis answered the idle probe
//!    slowly (median ≥ 1 ms and ≥ 5× its idle median): the server side stalled — a CPU quota, a
//!    starved host or the network — even if its CPU figures looked idle.
//! 6. **server** — open model: less than 90 % of the offered rate was achieved while loadgen had
//!    headroom: requests queued beyond loadgen.
//! 7. **unknown** — neither Redis's CPU nor the probe could be read.
//! 8. **none** — nothing was saturated: the offered load (users, rate) was the limit.

use crate::report::fmt;
use crate::report::summary::{Bottleneck, GeneratorUse, Limit, ProbeUse, ServerUse, ThreadUse};

use super::cpu::CpuUse;

/// A share of a resource at or above which it counts as saturated.
pub(crate) const SATURATED: f64 = 0.90;
/// A share under which the generator counts as having headroom.
pub(crate) const HEADROOM: f64 = 0.70;
/// Share of CFS periods throttled at or above which a cgroup quota is the limit.
pub(crate) const THROTTLED: f64 = 0.20;
/// The probe's median must reach this (µs) ...
pub(crate) const STALL_MIN_US: u64 = 1_000;
/// ... and this multiple of its idle median to count as a stall.
pub(crate) const STALL_FACTOR: u64 = 5;
/// Share of the machine that other processes must take, on a saturated machine, to make the
/// verdict `unknown`.
pub(crate) const OTHERS: f64 = 0.20;
/// Open model: achieved below this share of the offered rate counts as not keeping up.
pub(crate) const DELIVERED: f64 = 0.90;

/// Redis's CPU counters over the attack (`INFO cpu`, seconds), from one node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RedisCpu {
    pub(crate) main_thread_seconds: f64,
    pub(crate) all_threads_seconds: f64,
}

/// Everything the rules look at.
#[derive(Clone, Debug)]
pub(crate) struct Evidence {
    pub(crate) generator: CpuUse,
    pub(crate) redis: Option<RedisCpu>,
    pub(crate) probe: Option<ProbeUse>,
    pub(crate) ops: u64,
    pub(crate) achieved: f64,
    pub(crate) offered: Option<f64>,
    pub(crate) lag_p99_us: Option<u64>,
    /// Redis is on this machine, which has this many cores.
    pub(crate) same_host: Option<f64>,
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Applies the rules to the evidence.
pub(crate) fn attribute(e: &Evidence) -> Bottleneck {
    let g = &e.generator;
    let wall = g.wall_seconds.max(1e-9);
    let per_op = |cpu: f64| cpu * 1e6 / e.ops.max(1) as f64;
    let gen_util = g.utilisation();
    let server = e.redis.map(|r| ServerUse {
        main_thread_utilisation: round3(r.main_thread_seconds / wall),
        cores_used: round3(r.all_threads_seconds / wall),
        cpu_us_per_op: round3(per_op(r.all_threads_seconds)),
    });
    let machine_utilisation = match (e.same_host, e.redis) {
        (Some(cores), Some(r)) => {
            Some((g.cpu_seconds + r.all_threads_seconds) / (wall * cores.max(1e-9)))
        }
        _ => None,
    };
    // What the machine's other processes took: all busy cores minus loadgen's (and a local
    // Redis's) own share.
    let host_cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let own_share = machine_utilisation.unwrap_or(g.cpu_seconds / (wall * host_cores));
    let crowded = g
        .host_busy
        .filter(|h| *h >= SATURATED && *h - own_share >= OTHERS);
    let stall = e.probe.as_ref().filter(|p| {
        p.p50_us >= STALL_MIN_US
            && p.idle_p50_us
                .is_none_or(|idle| p.p50_us >= STALL_FACTOR * idle)
    });
    let busiest = g.busiest_thread.as_ref().filter(|(_, u)| *u >= SATURATED);
    let throttled = g.throttled.filter(|t| *t >= THROTTLED);
    let (verdict, rule) = if gen_util >= SATURATED {
        (
            Limit::Generator,
            format!(
                "loadgen used {} of the {:.1} cores it may use (≥ {}): it, not Redis, was the limit — add workers or cores",
                pct(gen_util),
                g.cores,
                pct(SATURATED)
            ),
        )
    } else if let Some((name, u)) = busiest {
        (
            Limit::Generator,
            format!(
                "loadgen's thread `{name}` was busy {} of the time (≥ {}): one thread serialised the work — add workers or connections",
                pct(*u),
                pct(SATURATED)
            ),
        )
    } else if let Some(t) = throttled {
        (
            Limit::Generator,
            format!(
                "a cgroup CPU quota ({:.2} cores) throttled loadgen in {} of its periods (≥ {}) — give it more CPU or add workers",
                g.cores,
                pct(t),
                pct(THROTTLED)
            ),
        )
    } else if let Some(s) = server
        .as_ref()
        .filter(|s| s.main_thread_utilisation >= SATURATED)
    {
        (
            Limit::Server,
            format!(
                "Redis's main thread was busy {} of the time (≥ {}): Redis was the limit",
                pct(s.main_thread_utilisation),
                pct(SATURATED)
            ),
        )
    } else if let (Some(m), Some(cores)) =
        (machine_utilisation.filter(|m| *m >= SATURATED), e.same_host)
    {
        (
            Limit::Generator,
            format!(
                "loadgen and Redis share this machine's {cores:.0} cores and used {} of them (≥ {}): the machine, not Redis, was the limit — run loadgen on other hosts",
                pct(m),
                pct(SATURATED)
            ),
        )
    } else if let Some(h) = crowded {
        (
            Limit::Unknown,
            format!(
                "this machine's cores were {} busy and other processes took {} of them: they starve loadgen and a local Redis alike, so slow answers say nothing about Redis — rerun on a quiet machine",
                pct(h),
                pct(h - own_share)
            ),
        )
    } else if let Some(p) = stall.filter(|_| gen_util < HEADROOM) {
        (
            Limit::Server,
            format!(
                "Redis answered an idle PING in {} at the median during the load ({} before it) while loadgen used {} of its cores: the server side stalled (a CPU quota, a starved host or the network)",
                fmt::us(p.p50_us),
                p.idle_p50_us.map_or("unknown".into(), fmt::us),
                pct(gen_util)
            ),
        )
    } else if let Some(offered) = e
        .offered
        .filter(|o| e.achieved < DELIVERED * o && gen_util < HEADROOM)
    {
        (
            Limit::Server,
            format!(
                "{:.0} of {offered:.0} offered ops/s achieved ({} < {}) while loadgen used {} of its cores: requests queued beyond loadgen",
                e.achieved,
                pct(e.achieved / offered),
                pct(DELIVERED),
                pct(gen_util)
            ),
        )
    } else if server.is_none() && e.probe.is_none() {
        (
            Limit::Unknown,
            "Redis's CPU could not be read (INFO refused, or the primary changed) and no probe answered".into(),
        )
    } else {
        (
            Limit::None,
            format!(
                "nothing saturated: loadgen used {} of its cores{}; the offered load was the limit",
                pct(gen_util),
                server
                    .as_ref()
                    .map(|s| format!(", Redis's main thread {}", pct(s.main_thread_utilisation)))
                    .unwrap_or_default()
            ),
        )
    };
    Bottleneck {
        verdict,
        rule,
        generator: GeneratorUse {
            cpu_seconds: round3(g.cpu_seconds),
            cores: round3(g.cores),
            utilisation: round3(gen_util),
            cpu_us_per_op: round3(per_op(g.cpu_seconds)),
            busiest_thread: g.busiest_thread.as_ref().map(|(name, u)| ThreadUse {
                name: name.clone(),
                utilisation: round3(*u),
            }),
            throttled: g.throttled.map(round3),
        },
        server,
        probe: e.probe.clone(),
        offered_ops_per_sec: e.offered,
        achieved_ops_per_sec: e.achieved,
        schedule_lag_p99_us: e.lag_p99_us,
        same_host: e.same_host.is_some(),
        machine_utilisation: machine_utilisation.map(round3),
        host_utilisation: g.host_busy.map(round3),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(generator: f64, thread: f64) -> Evidence {
        Evidence {
            generator: CpuUse {
                wall_seconds: 10.0,
                cpu_seconds: generator * 20.0,
                cores: 2.0,
                busiest_thread: Some(("tokio-runtime-w".into(), thread)),
                throttled: None,
                host_busy: None,
            },
            redis: Some(RedisCpu {
                main_thread_seconds: 3.0,
                all_threads_seconds: 3.5,
            }),
            probe: Some(ProbeUse {
                idle_p50_us: Some(60),
                p50_us: 80,
                p99_us: 400,
                samples: 100,
            }),
            ops: 100_000,
            achieved: 10_000.0,
            offered: None,
            lag_p99_us: None,
            same_host: None,
        }
    }

    #[test]
    fn each_rule_decides_on_its_evidence() {
        assert_eq!(attribute(&evidence(0.95, 0.6)).verdict, Limit::Generator);
        let one_thread = attribute(&evidence(0.5, 0.97));
        assert_eq!(one_thread.verdict, Limit::Generator);
        assert!(
            one_thread.rule.contains("tokio-runtime-w"),
            "{}",
            one_thread.rule
        );
        let mut e = evidence(0.4, 0.5);
        assert_eq!(attribute(&e).verdict, Limit::None);
        e.redis = Some(RedisCpu {
            main_thread_seconds: 9.5,
            all_threads_seconds: 9.8,
        });
        assert_eq!(attribute(&e).verdict, Limit::Server);
        let mut e = evidence(0.4, 0.5);
        e.probe = Some(ProbeUse {
            idle_p50_us: Some(60),
            p50_us: 20_000,
            p99_us: 80_000,
            samples: 100,
        });
        assert_eq!(attribute(&e).verdict, Limit::Server, "a stalled server");
        let mut e = evidence(0.4, 0.5);
        e.offered = Some(20_000.0);
        assert_eq!(
            attribute(&e).verdict,
            Limit::Server,
            "half the rate, loadgen idle"
        );
        let mut e = evidence(0.6, 0.5);
        e.same_host = Some(2.0);
        e.redis = Some(RedisCpu {
            main_thread_seconds: 6.0,
            all_threads_seconds: 7.0,
        });
        assert_eq!(
            attribute(&e).verdict,
            Limit::Generator,
            "the shared machine is full"
        );
        let mut e = evidence(0.4, 0.5);
        e.redis = None;
        e.probe = None;
        assert_eq!(attribute(&e).verdict, Limit::Unknown);
        let mut e = evidence(0.3, 0.3);
        e.probe = Some(ProbeUse {
            idle_p50_us: Some(60),
            p50_us: 20_000,
            p99_us: 80_000,
            samples: 100,
        });
        e.generator.host_busy = Some(0.97);
        let crowded = attribute(&e);
        assert_eq!(crowded.verdict, Limit::Unknown, "others took the machine");
        assert!(crowded.rule.contains("other processes"), "{}", crowded.rule);
        let mut e = evidence(0.3, 0.3);
        e.generator.throttled = Some(0.6);
        assert_eq!(
            attribute(&e).verdict,
            Limit::Generator,
            "a throttling quota"
        );
    }
}
