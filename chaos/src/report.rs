//! report: `results/chaos-<experiment>-<UTC time>/` with `report.json` (data, versioned),
//! `history.json` (the whole [`Recorded`] history, for `chaos check`) and `report.md` (the same
//! facts for a person: checks, numbers, lost writes by kind, and a timeline of faults, Sentinel
//! events, both primaries' write windows, first ok write, restart and rejoin).
//!
//! No secret reaches these files: the URL is printed through `cache::RedisUrl`'s redacting
//! `Display`, sessions are referred to by index, tokens not at all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checker::{Status, Verdict};
use crate::db::{BackendKind, NodeInfo};
use crate::events::is_notable;
use crate::experiment::Experiment;
use crate::history::{FaultEvent, SentinelEvent};
use crate::observe::FinalState;
use crate::recorded::Recorded;

/// Bumped on any incompatible change of `report.json`.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub experiment: Experiment,
    pub backend: BackendKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub started_utc: String,
    /// This experiment's own time: setup + workload + finish (in a suite, not the time its
    /// prepared topology waited for the previous experiment).
    pub wall_time_s: f64,
    pub timing: Timing,
    /// The client URL with the password redacted.
    pub url: String,
    pub nodes: Vec<NodeInfo>,
    pub faults: Vec<FaultEvent>,
    pub sentinel_events: Vec<SentinelEvent>,
    pub final_state: FinalState,
    pub verdict: Verdict,
    pub total_ops: usize,
}

/// Where an experiment's wall time went (see [`crate::phases`]).
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Nodes started and the topology formed (in a suite, overlapping the previous experiment's
    /// finish).
    pub setup_s: f64,
    /// Clients connected and the workload ran for `duration`.
    pub workload_s: f64,
    /// Late TTL probes, the old primary's rejoin, final reads, teardown excluded.
    pub finish_s: f64,
}

/// `chaos-<name>-<YYYYmmddTHHMMSSZ>` (+ `-N` if that exists already).
pub fn results_dir(root: &Path, name: &str, started: time::OffsetDateTime) -> PathBuf {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = started
        .format(&fmt)
        .unwrap_or_else(|_| "unknown-time".into());
    let base = root.join(format!("chaos-{name}-{stamp}"));
    let mut dir = base.clone();
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = PathBuf::from(format!("{}-{n}", base.display()));
    }
    dir
}

impl Report {
    /// Writes the three files into `dir` (created).
    pub fn write(&self, dir: &Path, recorded: &Recorded) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        let history = recorded.to_json().map_err(std::io::Error::other)?;
        std::fs::write(dir.join("history.json"), history)?;
        std::fs::write(dir.join("report.md"), self.markdown())
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        format!(
            "{}, wall {:.1} s",
            verdict_line(
                &self.experiment.name,
                backend_name(self.backend),
                &self.verdict
            ),
            self.wall_time_s
        )
    }

    /// `report.md`: the checks, the operations and the timeline.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let e = &self.experiment;
        let _ = writeln!(
            s,
            "# chaos: {} — {}\n",
            e.name,
            if self.verdict.pass { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(s, "{}\n", e.description.trim());
        let _ = writeln!(
            s,
            "- started {} (UTC), wall time {:.1} s (setup {:.1} s, workload {:.1} s, finish {:.1} s), backend `{}`{}\n- topology `{:?}`, persistence `{:?}`, down-after {} ms, failover-timeout {} ms, min-replicas-to-write {}{}\n- client `{}`, {} clients, {} operations recorded\n",
            self.started_utc,
            self.wall_time_s,
            self.timing.setup_s,
            self.timing.workload_s,
            self.timing.finish_s,
            backend_name(self.backend),
            self.image
                .as_ref()
                .map_or(String::new(), |i| format!(" (image `{i}`)")),
            e.topology.kind,
            e.topology.persistence,
            e.topology.down_after_ms,
            e.topology.failover_timeout_ms,
            e.topology.min_replicas_to_write,
            sentinel_periods(e),
            self.url,
            e.workload.clients,
            self.total_ops
        );
        s.push_str(
            "## Checks\n\n| check | expected | checked | measured | status |\n|---|---|---|---|---|\n",
        );
        for c in &self.verdict.checks {
            let status = match (c.status, c.required) {
                (Status::Pass, _) => "pass",
                (Status::Fail, _) => "**FAIL**",
                (Status::NotChecked, true) => "**not_checked** (expected: fails the run)",
                (Status::NotChecked, false) => "not_checked",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | `{}` | {} |",
                c.name, c.expected, c.checked, c.measured, status
            );
        }
        let m = &self.verdict.measures;
        if !m.lost_by_kind.is_empty() {
            s.push_str("\n## Acknowledged writes lost, by kind\n\n| kind | lost |\n|---|---|\n");
            for (kind, n) in &m.lost_by_kind {
                let _ = writeln!(s, "| {kind} | {n} |");
            }
        }
        s.push_str("\n## Operations\n\n| op | ok | fail | indeterminate | errors from | errors until |\n|---|---|---|---|---|---|\n");
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0} ms", v));
        for (name, o) in &self.verdict.ops {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} |",
                o.ok,
                o.fail,
                o.indeterminate,
                ms(o.first_error_ms),
                ms(o.last_error_ms)
            );
        }
        s.push_str("\n## Timeline (ms since the workload started)\n\n");
        for (t, line) in self.timeline() {
            let _ = writeln!(s, "- `{t:>8.0}` {line}");
        }
        s
    }

    fn timeline(&self) -> Vec<(f64, String)> {
        let mut t: Vec<(f64, String)> = Vec::new();
        for f in &self.faults {
            let what = match &f.error {
                None => format!(
                    "nemesis: {} {} ({}, port {})",
                    f.action, f.node, f.role, f.port
                ),
                Some(e) => format!("nemesis: {} {} FAILED: {e}", f.action, f.node),
            };
            t.push((f.at_ms, what));
        }
        for e in self.sentinel_events.iter().filter(|e| is_notable(&e.event)) {
            t.push((e.at_ms, format!("{}: {} {}", e.sentinel, e.event, e.detail)));
        }
        let m = &self.verdict.measures;
        for sw in &m.failovers {
            t.push((
                sw.at_ms,
                format!(
                    "checker: primary is now port {} (was {})",
                    sw.new_port, sw.old_port
                ),
            ));
        }
        if let Some(w) = m.split_brain_window_ms
            && let Some(at) = m.switch_master_ms
        {
            t.push((
                at + w,
                format!(
                    "checker: last of {} writes acked by a replaced primary (split brain for {w:.0} ms)",
                    m.split_brain_writes
                ),
            ));
        }
        if let Some(at) = m.first_ok_write_after_fault_ms {
            t.push((at, "client: first ok write after the fault".into()));
        }
        if let Some((a, b)) = m.lost_window_ms {
            t.push((
                a,
                format!(
                    "checker: first of {} lost acked writes",
                    m.acked_writes_lost
                ),
            ));
            t.push((b, "checker: last lost acked write".into()));
        }
        if let Some(at) = self.final_state.settled_ms {
            t.push((at, "checker: settled, final reads".into()));
        }
        t.sort_by(|a, b| a.0.total_cmp(&b.0));
        t
    }
}

/// The Sentinel polling periods, when the experiment changes them from Sentinel's defaults.
fn sentinel_periods(e: &Experiment) -> String {
    let t = &e.topology;
    let show = |v: Option<u64>, default: u64| {
        v.map_or(format!("{default} ms (default)"), |v| format!("{v} ms"))
    };
    if t.sentinel_info_period_ms.is_none() && t.sentinel_publish_period_ms.is_none() {
        return String::new();
    }
    format!(
        ", Sentinel INFO period {}, hello period {}",
        show(t.sentinel_info_period_ms, 10_000),
        show(t.sentinel_publish_period_ms, 2_000)
    )
}

pub fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Process => "process",
        BackendKind::Docker => "docker",
    }
}

/// `<name> [<backend>] PASS|FAIL: failover …, write gap …, acked writes lost n/N …`: the line
/// `chaos run` and `chaos check` print.
pub fn verdict_line(name: &str, backend: &str, v: &Verdict) -> String {
    let m = &v.measures;
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ms"));
    let gap = match (m.write_gap_ms, m.writes_resumed) {
        (Some(g), false) => format!("{g:.0} ms (writes never resumed)"),
        (g, _) => ms(g),
    };
    let mut line = format!(
        "{name} [{backend}] {}: failover {}, write gap {gap}, acked writes lost {}/{}",
        if v.pass { "PASS" } else { "FAIL" },
        ms(m.failover_time_ms),
        m.acked_writes_lost,
        m.acked_writes,
    );
    if m.failovers.len() > 1 {
        line.push_str(&format!(", {} failovers", m.failovers.len()));
    }
    if m.split_brain_writes > 0 {
        line.push_str(&format!(
            ", split brain {} writes over {}",
            m.split_brain_writes,
            ms(m.split_brain_window_ms)
        ));
    }
    line
}
