//! The sweep's results as files: `sweep.json` (data), `sweep.md` (tables) and `sweep.svg`
//! (throughput against p50/p99), all rendered from one [`SweepReport`] so they cannot disagree.
//!
//! The chart is hand-written SVG like `latency.svg`: achieved throughput on x, response time on a
//! logarithmic y axis (near the knee p99 grows by orders of magnitude, and a linear axis would flatten
//! every step before it), p99 solid, p50 dashed, each step a dot (green met the SLO, red did not),
//! the SLO bounds as dotted lines and the knee as a vertical line.

use std::fmt::Write;
use std::path::Path;

use super::{StepRow, SweepReport};
use crate::report::{esc, nice_step};
use crate::verdict::fmt_us;

/// One step on one line, for the terminal and the table.
pub fn row_line(r: &StepRow) -> String {
    format!(
        "{:>4} {:<6} {:>10.0} {:>10.1} {:>9} {:>9} {:>9} {:>7}  {}",
        r.index,
        r.phase,
        r.offered,
        r.achieved,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        fmt_us(r.p99_9_us),
        r.errors,
        if r.passed {
            "PASS".to_string()
        } else {
            format!("FAIL: {}", r.failed.join("; "))
        }
    )
}

/// The terminal summary: every step, the knee, why it stopped.
pub fn table(r: &SweepReport) -> String {
    let mut o = format!(
        "{:>4} {:<6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}  verdict\n",
        "step",
        "phase",
        if r.by == "users" {
            "users"
        } else {
            "offered/s"
        },
        "achieved/s",
        "p50",
        "p99",
        "p99.9",
        "errors"
    );
    for s in &r.steps {
        o.push_str(&row_line(s));
        o.push('\n');
    }
    let _ = writeln!(o, "stopped: {}", r.stopped_because);
    match &r.knee {
        Some(k) => {
            let _ = writeln!(
                o,
                "knee: {:.0} {} offered, {:.0} ops/s achieved, p50 {}, p99 {} (SLO: {})",
                k.offered,
                if r.by == "users" { "users" } else { "ops/s" },
                k.achieved,
                fmt_us(k.p50_us),
                fmt_us(k.p99_us),
                r.slo.join(", ")
            );
        }
        None => {
            let _ = writeln!(o, "knee: none — no step met the SLO ({})", r.slo.join(", "));
        }
    }
    o
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
    match &r.knee {
        Some(k) => {
            let _ = writeln!(
                o,
                "**Knee: {:.0} {} offered** ({:.0} ops/s achieved, p50 {}, p99 {}, step {}).\n",
                k.offered,
                if r.by == "users" { "users" } else { "ops/s" },
                k.achieved,
                fmt_us(k.p50_us),
                fmt_us(k.p99_us),
                k.step
            );
        }
        None => o.push_str("**No step met the SLO.**\n\n"),
    }
    let _ = writeln!(o, "Stopped: {}.\n", r.stopped_because);
    o.push_str("| step | phase | offered | achieved ops/s | p50 | p99 | p99.9 | errors | violations | evicted | verdict |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for s in &r.steps {
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            s.index,
            s.phase,
            s.offered,
            s.achieved,
            fmt_us(s.p50_us),
            fmt_us(s.p99_us),
            fmt_us(s.p99_9_us),
            s.errors,
            s.invariant_violations,
            s.evicted_keys,
            if s.passed {
                "PASS".to_string()
            } else {
                format!("FAIL: {}", s.failed.join("; "))
            }
        );
    }
    o.push_str("\n![throughput vs latency](sweep.svg)\n\n");
    if let Some(p) = &r.memory_projection {
        o.push_str(&crate::capacity::render_markdown(p));
    }
    o
}

const W: f64 = 960.0;
const H: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// Throughput (x) against p50/p99 response time (y, log scale).
pub fn svg(r: &SweepReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(&format!(
            "{}: response time p99 (solid) and p50 (dashed) against throughput",
            r.scenario.name
        ))
    );
    let mut steps: Vec<&StepRow> = r.steps.iter().filter(|s| s.count > 0).collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    if steps.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no measured steps</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return s;
    }
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let xmax_raw = steps.iter().map(|s| s.achieved).fold(1.0, f64::max) * 1.05;
    let xstep = nice_step(xmax_raw, 8.0);
    let xmax = (xmax_raw / xstep).ceil() * xstep;
    // Decades from below the smallest p50 to above the largest p99 (and the SLO bounds), in µs.
    let bounds_us: Vec<f64> = r
        .slo
        .iter()
        .filter_map(|l| {
            let d = l.rsplit("≤ ").next()?;
            humantime::parse_duration(d.trim()).ok()
        })
        .map(|d| d.as_micros() as f64)
        .collect();
    let lo = steps
        .iter()
        .map(|s| s.p50_us.max(1) as f64)
        .fold(f64::MAX, f64::min);
    let hi = steps
        .iter()
        .map(|s| s.p99_us.max(1) as f64)
        .chain(bounds_us.iter().copied())
        .fold(1.0, f64::max);
    let (dlo, dhi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let x = |v: f64| LEFT + v / xmax * pw;
    let y = |us: f64| TOP + ph - (us.max(1.0).log10() - dlo) / (dhi - dlo) * ph;
    let _ = writeln!(s, r##"<g stroke="#ccc">"##);
    let mut d = dlo;
    while d <= dhi {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{v:.1}" y2="{v:.1}"/>"#,
            LEFT + pw,
            v = y(10f64.powf(d))
        );
        d += 1.0;
    }
    let _ = writeln!(s, "</g>");
    let mut d = dlo;
    while d <= dhi {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(10f64.powf(d)) + 4.0,
            fmt_us(10f64.powf(d) as u64)
        );
        d += 1.0;
    }
    let mut t = 0.0;
    while t <= xmax + xstep / 2.0 {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.0}</text>"#,
            x(t),
            TOP + ph + 18.0
        );
        t += xstep;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{}" y="{}" text-anchor="middle">achieved throughput, operations per second</text>
<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">response time (log scale)</text>"##,
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0
    );
    for (b, label) in bounds_us.iter().zip(&r.slo) {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{v:.1}" y2="{v:.1}" stroke="#d62728" stroke-dasharray="2 3"/>
<text x="{}" y="{:.1}" fill="#d62728" text-anchor="end">SLO {}</text>"##,
            LEFT + pw,
            LEFT + pw - 4.0,
            y(*b) - 4.0,
            esc(label),
            v = y(*b)
        );
    }
    if let Some(k) = &r.knee {
        let _ = writeln!(
            s,
            r##"<line x1="{v:.1}" x2="{v:.1}" y1="{TOP}" y2="{}" stroke="#2ca02c" stroke-dasharray="6 3"/>
<text x="{:.1}" y="{}" fill="#2ca02c">knee {:.0} offered</text>"##,
            TOP + ph,
            x(k.achieved) + 4.0,
            TOP + 14.0,
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

/// Writes `sweep.json`, `sweep.md` and `sweep.svg` into `dir`.
pub fn write_all(dir: &Path, r: &SweepReport) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("sweep.json"), json + "\n")?;
    std::fs::write(dir.join("sweep.md"), markdown(r))?;
    std::fs::write(dir.join("sweep.svg"), svg(r))
}
