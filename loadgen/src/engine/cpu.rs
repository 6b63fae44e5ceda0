//! How much CPU loadgen itself used, and how much it was allowed: the generator's half of the
//! bottleneck question ([`super::bottleneck`]).
//!
//! - The process: user + system time from `getrusage(RUSAGE_SELF)`.
//! - Its threads (Linux): `utime` + `stime` of every `/proc/self/task/<tid>/stat`, so one thread
//!   that serialises the work (a connection's driver, a metrics channel) shows even when the
//!   process as a whole has cores to spare.
//! - The cores it may use: the CPU affinity mask, narrowed by a cgroup CPU quota (v2 `cpu.max`,
//!   v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) as a fraction — 0.3 when a container or a CI
//!   job is given 30 % of one core, which `available_parallelism` would round up to 1.
//! - Whether the quota bit: the cgroup's `nr_throttled` / `nr_periods` (`cpu.stat`).
//! - The whole machine (Linux `/proc/stat`): how busy all its cores were, whoever used them. On a
//!   shared laptop or CI runner other processes can starve loadgen and a local Redis alike, and a
//!   slow answer then says nothing about Redis.
//!
//! Where a source does not exist (not Linux, no cgroup CPU controller), its figure is `None` and
//! the attribution says what it could not see.

use std::collections::BTreeMap;
use std::time::Instant;

/// A reading of this process's CPU use at one instant.
#[derive(Clone, Debug)]
pub(crate) struct CpuReading {
    at: Instant,
    /// User + system CPU of the process, seconds.
    process: f64,
    /// Per thread: `tid → (name, cpu seconds)`.
    threads: BTreeMap<u32, (String, f64)>,
    throttling: Option<Throttling>,
    /// Machine-wide `(busy, total)` CPU ticks since boot.
    host: Option<(f64, f64)>,
}

#[derive(Clone, Copy, Debug)]
struct Throttling {
    periods: u64,
    throttled: u64,
}

/// CPU used between two readings.
#[derive(Clone, Debug)]
pub(crate) struct CpuUse {
    pub(crate) wall_seconds: f64,
    pub(crate) cpu_seconds: f64,
    /// Cores this process may use (affinity ∩ cgroup quota), fractional.
    pub(crate) cores: f64,
    /// The busiest thread: name and its share of one core.
    pub(crate) busiest_thread: Option<(String, f64)>,
    /// Share of CFS periods in which the cgroup was throttled, if a quota applies.
    pub(crate) throttled: Option<f64>,
    /// Share of all the machine's cores that were busy (any process), 0–1.
    pub(crate) host_busy: Option<f64>,
}

impl CpuUse {
    /// Share of the allowed cores used, 0–1 (can exceed 1 by measurement jitter).
    pub(crate) fn utilisation(&self) -> f64 {
        self.cpu_seconds / (self.wall_seconds * self.cores).max(1e-9)
    }
}

/// Reads the process's CPU use now.
pub(crate) fn read() -> CpuReading {
    CpuReading {
        at: Instant::now(),
        process: process_seconds(),
        threads: threads(),
        throttling: cgroup_file("cpu.stat").and_then(|t| throttling(&t)),
        host: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| host_ticks(&t)),
    }
}

impl CpuReading {
    /// What was used from this reading to `later`.
    pub(crate) fn until(&self, later: &CpuReading) -> CpuUse {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        let busiest_thread = later
            .threads
            .iter()
            .map(|(tid, (name, cpu))| {
                let before = self.threads.get(tid).map_or(0.0, |(_, c)| *c);
                (name.clone(), (cpu - before) / wall.max(1e-9))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let throttled = match (self.throttling, later.throttling) {
            (Some(a), Some(b)) if b.periods > a.periods => {
                Some((b.throttled - a.throttled) as f64 / (b.periods - a.periods) as f64)
            }
            _ => None,
        };
        let host_busy = match (self.host, later.host) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some(((b1 - b0) / (t1 - t0)).max(0.0)),
            _ => None,
        };
        CpuUse {
            wall_seconds: wall,
            cpu_seconds: (later.process - self.process).max(0.0),
            cores: cores(),
            busiest_thread,
            throttled,
            host_busy,
        }
    }
}

fn process_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we hand it and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Clock ticks per second for `/proc` times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `tid → (name, cpu seconds)` from `/proc/self/task` (empty where there is no `/proc`).
fn threads() -> BTreeMap<u32, (String, f64)> {
    let tick = ticks_per_second();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return BTreeMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, cpu) = parse_stat(&stat)?;
            Some((tid, (name, cpu / tick)))
        })
        .collect()
}

/// `(comm, utime + stime in ticks)` from a `/proc/<pid>/task/<tid>/stat` line. The name is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted after the
/// last `)`.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime is field 14 of the line, index 11 here.
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Cores this process may use: the affinity mask's count, or less under a cgroup CPU quota.
pub(crate) fn cores() -> f64 {
    let affinity = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    match quota() {
        Some(q) if q > 0.0 => q.min(affinity),
        _ => affinity,
    }
}

/// The cgroup CPU quota in cores, if one applies.
fn quota() -> Option<f64> {
    if let Some(max) = cgroup_file("cpu.max") {
        // v2: "<quota> <period>" or "max <period>".
        let mut f = max.split_whitespace();
        let (q, p) = (f.next()?, f.next()?);
        return if q == "max" {
            None
        } else {
            Some(q.parse::<f64>().ok()? / p.parse::<f64>().ok()?)
        };
    }
    let q: f64 = cgroup_file("cpu.cfs_quota_us")?.trim().parse().ok()?;
    let p: f64 = cgroup_file("cpu.cfs_period_us")?.trim().parse().ok()?;
    (q > 0.0 && p > 0.0).then(|| q / p)
}

/// A file of this process's CPU cgroup (v2 unified, else the v1 `cpu` controller).
fn cgroup_file(name: &str) -> Option<String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let dir = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}")
        } else if controllers.split(',').any(|c| c == "cpu") {
            format!("/sys/fs/cgroup/cpu{path}")
        } else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(format!("{dir}/{name}")) {
            return Some(text);
        }
    }
    None
}

/// `(busy, total)` ticks of all cores from `/proc/stat`'s first line: `cpu user nice system idle
/// iowait irq softirq steal ...`; idle and iowait are not busy, steal is (another guest had it).
fn host_ticks(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 5 {
        return None;
    }
    let total: f64 = f.iter().sum();
    Some((total - f[3] - f[4], total))
}

fn throttling(stat: &str) -> Option<Throttling> {
    let field = |k: &str| -> Option<u64> {
        stat.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse().ok())
    };
    Some(Throttling {
        periods: field("nr_periods ")?,
        throttled: field("nr_throttled ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(
            parse_stat(line),
            Some(("tokio-runtime-w".to_string(), 300.0))
        );
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 2 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c".to_string(), 3.0)));
        assert_eq!(parse_stat("garbage"), None);
        let host = host_ticks("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n");
        assert_eq!(host, Some((150.0, 1000.0)));
    }

    #[test]
    fn spinning_shows_as_cpu_used_by_this_thread() {
        // Spin until this very thread has burned 100 ms of CPU (however busy the machine is, and
        // whatever the other tests' threads do meanwhile).
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let mine = || threads().get(&tid).map_or(0.0, |(_, cpu)| *cpu);
        let (before, own_before) = (read(), mine());
        let start = Instant::now();
        let mut x = 0u64;
        while mine() - own_before < 0.1 && start.elapsed().as_secs() < 30 {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let used = before.until(&read());
        assert!(mine() - own_before >= 0.1, "the thread's own CPU is read");
        assert!(used.cpu_seconds >= 0.1, "the process includes it: {used:?}");
        assert!(used.cores > 0.0);
        assert!(used.host_busy.is_some_and(|b| b > 0.0), "{used:?}");
        let t = throttling("nr_periods 10\nnr_throttled 4\nthrottled_time 5\n").unwrap();
        assert_eq!((t.periods, t.throttled), (10, 4));
    }
}
