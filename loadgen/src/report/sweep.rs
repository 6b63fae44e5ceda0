//! `loadgen sweep`'s results: the schema of `sweep.json` ([`SweepReport`]), and `sweep.md` (tables),
//! `sweep.svg` (throughput against p50/p99) and the console table, all rendered from it so they
//! cannot disagree.
//!
//! The chart is hand-written SVG like `latency.svg`: achieved throughput on x, response time on a
//! logarithmic y axis (near the knee p99 grows by orders of magnitude, and a linear axis would flatten
//! every step before it), p99 solid, p50 dashed, each step a dot (green met the SLO, red did not),
//! the SLO bounds as dotted lines and the knee as a vertical line.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::capacity::{self, CapacityReport};
use super::chart::{Canvas, esc, nice_step, ticks};
use super::console;
use super::fmt::us as fmt_us;
use super::markdown::{Align, Table};
use super::summary::{Environment, Limit, ScenarioInfo, TargetInfo};

/// Bumped on incompatible changes to `sweep.json`. 2: each step's bottleneck; a knee only where
/// an SLO break was bracketed with the generator unsaturated, else `no_knee` with the reason.
pub const SCHEMA_VERSION: u32 = 2;

/// One step as reported.
#[derive(Clone, Debug, Serialize)]
pub struct StepRow {
    pub index: usize,
    /// `step` (growing) or `refine` (bisecting towards the knee).
    pub phase: &'static str,
    /// Target ops/s (`--by rate`) or users (`--by users`).
    pub offered: f64,
    pub users: u32,
    pub target_rate: Option<f64>,
    /// Operations per second completed in the measured window.
    pub achieved: f64,
    pub count: u64,
    pub errors: u64,
    /// Response time over all operations, µs.
    pub p50_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
    pub invariant_violations: u64,
    pub evicted_keys: u64,
    pub passed: bool,
    /// Failed checks as `name observed (bound)`.
    pub failed: Vec<String>,
    /// Which component limited this step.
    pub bottleneck: Limit,
    pub bottleneck_rule: String,
    pub generator_utilisation: f64,
    pub redis_main_thread_utilisation: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Knee {
    pub offered: f64,
    pub achieved: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub step: usize,
    /// What limited the knee step (never the generator).
    pub bottleneck: Limit,
}

/// Why a sweep found no knee, and how far it got.
#[derive(Clone, Debug, Serialize)]
pub struct NoKnee {
    pub reason: String,
    pub highest_passing_offered: Option<f64>,
    pub highest_passing_step: Option<usize>,
}

#[derive(Serialize)]
pub struct SweepReport {
    pub schema_version: u32,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub started_utc: String,
    pub results_dir: String,
    /// `rate` or `users`.
    pub by: String,
    /// The SLO, one bound per entry, as judged.
    pub slo: Vec<String>,
    pub step_rule: String,
    pub min_gain: f64,
    pub step_duration: String,
    pub warmup: String,
    pub steps: Vec<StepRow>,
    /// The highest offered load that met the SLO, below one that broke it; `null` otherwise.
    pub knee: Option<Knee>,
    /// When there is no knee: why, and the highest passing step.
    pub no_knee: Option<NoKnee>,
    pub stopped_because: String,
    pub interrupted: bool,
    /// Bytes per key kind and what fits in the target's maxmemory (see `loadgen capacity`).
    pub memory_projection: Option<CapacityReport>,
    pub environment: Environment,
}

/// One step on one line, for the terminal and the table.
pub fn row_line(r: &StepRow) -> String {
    format!(
        "{:>4} {:<6} {:>10.0} {:>10.1} {:>9} {:>9} {:>9} {:>7} {:>9}  {}",
        r.index,
        r.phase,
        r.offered,
        r.achieved,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        fmt_us(r.p99_9_us),
        r.errors,
        r.bottleneck.as_str(),
        verdict(r)
    )
}

/// The sweep's answer in one sentence (after `knee: ` on the console, in bold in Markdown).
fn knee_sentence(r: &SweepReport) -> String {
    let unit = if r.by == "users" { "users" } else { "ops/s" };
    match (&r.knee, &r.no_knee) {
        (Some(k), _) => format!(
            "{:.0} {unit} offered, {:.0} ops/s achieved, p50 {}, p99 {}, step {}, {} (SLO: {})",
            k.offered,
            k.achieved,
            fmt_us(k.p50_us),
            fmt_us(k.p99_us),
            k.step,
            match k.bottleneck {
                Limit::None => "the SLO broke before loadgen or Redis saturated".to_string(),
                other => format!("limited by the {}", other.as_str()),
            },
            r.slo.join(", ")
        ),
        (None, Some(n)) => match n.highest_passing_offered {
            Some(h) => format!(
                "none — no knee below {h:.0} {unit} (step {}): {}",
                n.highest_passing_step.unwrap_or(0),
                n.reason
            ),
            None => format!("none — {} ({})", n.reason, r.slo.join(", ")),
        },
        (None, None) => format!("none — no step met the SLO ({})", r.slo.join(", ")),
    }
}

/// The terminal summary: every step, the knee, why it stopped.
pub fn table(r: &SweepReport) -> String {
    let rows = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.index.to_string(),
                s.phase.to_string(),
                format!("{:.0}", s.offered),
                format!("{:.1}", s.achieved),
                fmt_us(s.p50_us),
                fmt_us(s.p99_us),
                fmt_us(s.p99_9_us),
                s.errors.to_string(),
                s.bottleneck.as_str().to_string(),
                verdict(s),
            ]
        })
        .collect();
    let offered = if r.by == "users" {
        "users"
    } else {
        "offered/s"
    };
    let mut o = console::table(
        &[
            "step",
            "phase",
            offered,
            "achieved/s",
            "p50",
            "p99",
            "p99.9",
            "errors",
            "limit",
            "verdict",
        ],
        rows,
        2,
    );
    let _ = writeln!(o, "stopped: {}", r.stopped_because);
    let _ = writeln!(o, "knee: {}", knee_sentence(r));
    o
}

fn verdict(s: &StepRow) -> String {
    if s.passed {
        "PASS".to_string()
    } else {
        format!("FAIL: {}", s.failed.join("; "))
    }
}

fn markdown(r: &SweepReport) -> String {
    let mut o = format!(
        "# loadgen sweep: {}\n\n- target: `{}`{}\n- SLO: {}\n- stepping {} by {} (stop under +{:.0} % throughput), {} per step after {} warm-up\n- started {} UTC\n\n",
        r.scenario.name,
        r.target.url,
        if r.target.throwaway {
            " (throwaway server)"
        } else {
            ""
        },
        r.slo.join("; "),
        if r.by == "users" {
            "users"
        } else {
            "the open-model target rate"
        },
        r.step_rule,
        r.min_gain * 100.0,
        r.step_duration,
        r.warmup,
        r.started_utc,
    );
    let _ = writeln!(o, "**Knee: {}**.\n", knee_sentence(r));
    let _ = writeln!(o, "Stopped: {}.\n", r.stopped_because);
    let right = Align::Right;
    let mut t = Table::new(&[
        ("step", right),
        ("phase", Align::Left),
        ("offered", right),
        ("achieved ops/s", right),
        ("p50", right),
        ("p99", right),
        ("p99.9", right),
        ("errors", right),
        ("violations", right),
        ("evicted", right),
        ("limit", Align::Left),
        ("verdict", Align::Left),
    ]);
    for s in &r.steps {
        t.row([
            s.index.to_string(),
            s.phase.to_string(),
            format!("{:.0}", s.offered),
            format!("{:.1}", s.achieved),
            fmt_us(s.p50_us),
            fmt_us(s.p99_us),
            fmt_us(s.p99_9_us),
            s.errors.to_string(),
            s.invariant_violations.to_string(),
            s.evicted_keys.to_string(),
            s.bottleneck.as_str().to_string(),
            verdict(s),
        ]);
    }
    o.push_str(&t.render());
    o.push_str("\n![throughput vs latency](sweep.svg)\n\n");
    if let Some(p) = &r.memory_projection {
        o.push_str(&capacity::markdown(p));
    }
    o
}

const CANVAS: Canvas = Canvas {
    left: 80.0,
    right: 40.0,
};

/// Throughput (x) against p50/p99 response time (y, log scale).
pub fn svg(r: &SweepReport) -> String {
    let c = &CANVAS;
    let mut s = String::new();
    c.open(
        &mut s,
        &format!(
            "{}: response time p99 (solid) and p50 (dashed) against throughput",
            r.scenario.name
        ),
    );
    let mut steps: Vec<&StepRow> = r.steps.iter().filter(|s| s.count > 0).collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    if steps.is_empty() {
        Canvas::close_empty(&mut s, "no measured steps");
        return s;
    }
    let (pw, ph) = (c.pw(), c.ph());
    let xmax_raw = steps.iter().map(|s| s.achieved).fold(1.0, f64::max) * 1.05;
    let xstep = nice_step(xmax_raw, 8.0);
    let xmax = (xmax_raw / xstep).ceil() * xstep;
    // Decades from below the smallest p50 to above the largest p99 (and the SLO bounds), in µs.
    // Each bound is read back from its line (`... ≤ 2ms`); the error-rate line has none.
    let bounds: Vec<(f64, &String)> = r
        .slo
        .iter()
        .filter_map(|l| {
            let d = l.rsplit("≤ ").next()?;
            let bound = humantime::parse_duration(d.trim()).ok()?;
            Some((bound.as_micros() as f64, l))
        })
        .collect();
    let lo = steps
        .iter()
        .map(|s| s.p50_us.max(1) as f64)
        .fold(f64::MAX, f64::min);
    let hi = steps
        .iter()
        .map(|s| s.p99_us.max(1) as f64)
        .chain(bounds.iter().map(|(b, _)| *b))
        .fold(1.0, f64::max);
    let (dlo, dhi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let x = |v: f64| c.left + v / xmax * pw;
    let y = |us: f64| Canvas::TOP + ph - (us.max(1.0).log10() - dlo) / (dhi - dlo) * ph;
    let decades = ticks(dlo, 1.0, dhi);
    c.grid(&mut s, decades.iter().map(|d| y(10f64.powf(*d))));
    c.y_labels(
        &mut s,
        decades
            .iter()
            .map(|d| (y(10f64.powf(*d)), fmt_us(10f64.powf(*d) as u64))),
    );
    c.x_labels(
        &mut s,
        ticks(0.0, xstep, xmax + xstep / 2.0)
            .into_iter()
            .map(|t| (x(t), t)),
    );
    c.frame(
        &mut s,
        "achieved throughput, operations per second",
        "response time (log scale)",
        16.0,
    );
    let (left, top) = (c.left, Canvas::TOP);
    for (b, label) in &bounds {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{v:.1}" y2="{v:.1}" stroke="#d62728" stroke-dasharray="2 3"/>
<text x="{}" y="{:.1}" fill="#d62728" text-anchor="end">SLO {}</text>"##,
            left + pw,
            left + pw - 4.0,
            y(*b) - 4.0,
            esc(label),
            v = y(*b)
        );
    }
    if let Some(k) = &r.knee {
        let _ = writeln!(
            s,
            r##"<line x1="{v:.1}" x2="{v:.1}" y1="{top}" y2="{}" stroke="#2ca02c" stroke-dasharray="6 3"/>
<text x="{:.1}" y="{}" fill="#2ca02c">knee {:.0} offered</text>"##,
            top + ph,
            x(k.achieved) + 4.0,
            top + 14.0,
            k.offered,
            v = x(k.achieved)
        );
    }
    for (dash, pick) in [("", 99u8), (r#" stroke-dasharray="5 4""#, 50)] {
        let points: Vec<String> = steps
            .iter()
            .map(|st| {
                let us = if pick == 99 { st.p99_us } else { st.p50_us };
                format!("{:.1},{:.1}", x(st.achieved), y(us as f64))
            })
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5"{dash} points="{}"/>"##,
            points.join(" ")
        );
    }
    for st in &steps {
        let color = if st.passed { "#2ca02c" } else { "#d62728" };
        for us in [st.p50_us, st.p99_us] {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                x(st.achieved),
                y(us as f64)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `sweep.json`, `sweep.md`, `sweep.svg` and `sweep.html` (self-contained) into `dir`.
pub fn write_all(dir: &Path, r: &SweepReport) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("sweep.json"), json + "\n")?;
    let (md, chart) = (markdown(r), svg(r));
    std::fs::write(dir.join("sweep.md"), &md)?;
    std::fs::write(dir.join("sweep.svg"), &chart)?;
    let title = format!("loadgen sweep: {}", r.scenario.name);
    std::fs::write(
        dir.join("sweep.html"),
        super::html::page(&title, &md, &[("sweep.svg", &chart)]),
    )
}
