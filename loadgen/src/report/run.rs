//! One run's files for people: `report.md`, the console summary, `latency.svg` and the
//! `latency-<op>.hgrm` distributions, all rendered from the [`Summary`] that is written as
//! `summary.json` ([`write_all`] writes them together).

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use super::chart::{COLORS, Canvas, nice_step, ticks};
use super::console;
use super::fmt;
use super::hgrm::percentile_distribution;
use super::markdown::{Align, Table};
use super::summary::{SecondSample, Summary};
use crate::scenario::Op;

/// `report.md`: the summary as tables a person can read in a pull request or a terminal.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::new();
    let verdict = if s.slo.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(o, "# loadgen: {} — {verdict}\n", s.scenario.name);
    if let Some(d) = &s.scenario.description {
        let _ = writeln!(o, "{d}\n");
    }
    let c = &s.config;
    let model = match s.run.target_rate {
        Some(r) => format!("open model, target {r} ops/s"),
        None => "closed model".into(),
    };
    let _ = writeln!(
        o,
        "- target: `{}` ({}{})\n- load: {} users, {model}; warm-up {}, measured {:.1} s{}\n- keyspace: {} accounts × {} sessions, {} client IPs, distribution {}\n- started: {} UTC, scenario file `{}`\n",
        s.target.url,
        s.target.kind,
        if s.target.throwaway {
            ", throwaway server"
        } else {
            ""
        },
        c.load.users,
        c.load.warmup,
        s.run.measured_seconds,
        if s.run.interrupted {
            " (**interrupted**)"
        } else {
            ""
        },
        c.keyspace.users,
        c.keyspace.sessions_per_user,
        c.keyspace.client_ips,
        c.keyspace.distribution,
        s.run.started_utc,
        s.scenario.file,
    );
    if s.run.inject_delay_us > 0 {
        let _ = writeln!(
            o,
            "- **injected delay**: {} inside every operation\n",
            fmt::us(s.run.inject_delay_us)
        );
    }

    let mut t = Table::new(&[
        ("check", Align::Left),
        ("bound", Align::Left),
        ("observed", Align::Left),
        ("", Align::Left),
    ]);
    for v in &s.slo.verdicts {
        t.row([
            v.name.clone(),
            v.bound.clone(),
            v.observed.clone(),
            if v.passed { "pass" } else { "**FAIL**" }.to_string(),
        ]);
    }
    let _ = writeln!(o, "## Verdicts\n\n{}", t.render());

    let _ = writeln!(
        o,
        "## Operations\n\nResponse time counts from the intended start (queueing included); service time from the actual send. They are equal in a closed model.\n"
    );
    let r = Align::Right;
    let mut t = Table::new(&[
        ("op", Align::Left),
        ("count", r),
        ("ops/s", r),
        ("errors", r),
        ("denied", r),
        ("misses", r),
        ("p50", r),
        ("p90", r),
        ("p99", r),
        ("p99.9", r),
        ("max", r),
        ("service p99", r),
    ]);
    for (name, st) in &s.ops {
        let p = &st.response;
        t.row([
            name.clone(),
            st.count.to_string(),
            format!("{:.1}", st.throughput),
            st.errors.to_string(),
            st.denied.to_string(),
            st.misses.to_string(),
            fmt::us(p.p50_us),
            fmt::us(p.p90_us),
            fmt::us(p.p99_us),
            fmt::us(p.p99_9_us),
            fmt::us(p.max_us),
            fmt::us(st.service.p99_us),
        ]);
    }
    o.push_str(&t.render());

    let i = &s.invariants;
    let mut t = Table::new(&[("invariant", Align::Left), ("count", r)]);
    t.row(["lost sessions".to_string(), i.lost_sessions.to_string()])
        .row([
            "rate-limit over-admissions".to_string(),
            i.ratelimit_over_admissions.to_string(),
        ])
        .row([
            "revoked tokens still validating".to_string(),
            i.revoked_tokens_validating.to_string(),
        ])
        .row([
            "token cache misses (informational)".to_string(),
            i.token_cache_misses.to_string(),
        ]);
    let _ = write!(o, "\n## Invariants\n\n{}", t.render());

    if !s.errors.is_empty() {
        let mut t = Table::new(&[("op", Align::Left), ("error", Align::Left), ("count", r)]);
        for (op, kinds) in &s.errors {
            for (msg, n) in kinds {
                t.row([op.clone(), msg.clone(), n.to_string()]);
            }
        }
        let _ = write!(o, "\n## Errors\n\n{}", t.render());
    }

    let rd = &s.redis;
    let mut t = Table::new(&[
        ("field", Align::Left),
        ("before", r),
        ("after", r),
        ("delta", r),
    ]);
    for (k, after) in &rd.after {
        let before = rd.before.get(k).copied().unwrap_or(0.0);
        let delta = rd.deltas.get(k).map_or(String::new(), |d| format!("{d}"));
        t.row([k.clone(), format!("{before}"), format!("{after}"), delta]);
    }
    let _ = write!(o, "\n## Redis {}\n\n{}", rd.version, t.render());
    if !rd.bytes_per_key.is_empty() {
        let mut t = Table::new(&[("kind", Align::Left), ("mean", r), ("samples", r)]);
        for (kind, cost) in &rd.bytes_per_key {
            t.row([
                kind.clone(),
                fmt::bytes(cost.mean_bytes),
                cost.samples.to_string(),
            ]);
        }
        let _ = write!(o, "\n### Memory per key (`MEMORY USAGE`)\n\n{}", t.render());
    }
    if !rd.commandstats.is_empty() {
        let mut t = Table::new(&[
            ("command", Align::Left),
            ("calls", r),
            ("µs/call", r),
            ("failed", r),
        ]);
        for (cmd, st) in &rd.commandstats {
            let per = if st.calls == 0 {
                0.0
            } else {
                st.usec as f64 / st.calls as f64
            };
            t.row([
                cmd.clone(),
                st.calls.to_string(),
                format!("{per:.2}"),
                st.failed_calls.to_string(),
            ]);
        }
        let _ = write!(o, "\n### Commands during the run\n\n{}", t.render());
    }

    let e = &s.environment;
    let _ = writeln!(
        o,
        "\n## Environment\n\n- loadgen {} ({} build), Redis {}, {} CPUs, {}/{}",
        e.loadgen_version, e.build, e.redis_version, e.cpu_count, e.os, e.arch
    );
    if let Some(c) = &e.calibration {
        let _ = writeln!(
            o,
            "- calibration: {:.0} {}/s at concurrency {}",
            c.ops_per_sec, c.command, c.concurrency
        );
    }
    if let Some(rss) = e.loadgen_peak_rss_bytes {
        let _ = writeln!(o, "- loadgen peak RSS: {}", fmt::bytes(rss as f64));
    }
    let _ = writeln!(
        o,
        "\nFiles: `summary.json`, `latency.svg`, `latency-<op>.hgrm`, goose's `report.html`."
    );
    o
}

/// The console summary: one row per op, the invariants, the verdict line.
pub fn console(s: &Summary) -> String {
    let rows = s
        .ops
        .iter()
        .map(|(name, st)| {
            let r = &st.response;
            vec![
                name.clone(),
                st.count.to_string(),
                format!("{:.1}", st.throughput),
                fmt::us(r.p50_us),
                fmt::us(r.p99_us),
                fmt::us(r.p99_9_us),
                fmt::us(r.max_us),
                st.errors.to_string(),
            ]
        })
        .collect();
    let mut o = console::table(
        &[
            "op", "count", "ops/s", "p50", "p99", "p99.9", "max", "errors",
        ],
        rows,
        1,
    );
    let i = &s.invariants;
    let _ = writeln!(
        o,
        "invariants: lost sessions {}, rate-limit over-admissions {}, revoked tokens validating {} (token cache misses {})",
        i.lost_sessions,
        i.ratelimit_over_admissions,
        i.revoked_tokens_validating,
        i.token_cache_misses
    );
    let failed: Vec<String> = s
        .slo
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("{} {} (bound {})", v.name, v.observed, v.bound))
        .collect();
    if failed.is_empty() {
        let _ = writeln!(o, "verdict: PASS ({} checks)", s.slo.verdicts.len());
    } else {
        let _ = writeln!(o, "verdict: FAIL: {}", failed.join("; "));
    }
    o
}

/// One operation's histograms, for the `.hgrm` files.
pub struct OpHistograms<'a> {
    pub name: &'a str,
    pub response: &'a Histogram<u64>,
    pub service: &'a Histogram<u64>,
}

/// Writes `summary.json`, `report.md`, `latency-<op>.hgrm` (response and service time) and
/// `latency.svg` into `dir`. Goose writes its own `goose-report.html`.
pub fn write_all(
    dir: &Path,
    summary: &Summary,
    histograms: &[OpHistograms<'_>],
    series: &[[SecondSample; 7]],
) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("report.md"), markdown(summary))?;
    for h in histograms {
        std::fs::write(
            dir.join(format!("latency-{}.hgrm", h.name)),
            percentile_distribution(h.response),
        )?;
        std::fs::write(
            dir.join(format!("latency-{}-service.hgrm", h.name)),
            percentile_distribution(h.service),
        )?;
    }
    std::fs::write(
        dir.join("latency.svg"),
        latency_svg(&summary.scenario.name, series),
    )
}

const CANVAS: Canvas = Canvas {
    left: 70.0,
    right: 170.0,
};

/// `latency.svg`: p50 (dashed) and p99 (solid) response time per second for each operation.
pub fn latency_svg(title: &str, series: &[[SecondSample; 7]]) -> String {
    let c = &CANVAS;
    let mut s = String::new();
    c.open(
        &mut s,
        &format!("{title}: response time p50 (dashed) and p99 (solid) per second"),
    );
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| series.iter().any(|sec| sec[op.index()].count > 0))
        .collect();
    let (pw, ph) = (c.pw(), c.ph());
    if ops.is_empty() {
        Canvas::close_empty(&mut s, "no measured data");
        return s;
    }
    let secs = series.len().max(2) as f64 - 1.0;
    let ymax_ms = series
        .iter()
        .flat_map(|sec| ops.iter().map(move |op| sec[op.index()].p99_us))
        .max()
        .unwrap_or(1) as f64
        / 1000.0
        * 1.1;
    let ystep = nice_step(ymax_ms.max(0.001), 5.0);
    let ytop = (ymax_ms / ystep).ceil().max(1.0) * ystep;
    let x = |i: f64| c.left + i / secs * pw;
    let y = |ms: f64| Canvas::TOP + ph - ms / ytop * ph;
    // Axes, grid and ticks.
    let yticks = ticks(0.0, ystep, ytop + ystep / 2.0);
    c.grid(&mut s, yticks.iter().map(|v| y(*v)));
    c.y_labels(
        &mut s,
        yticks.iter().map(|&v| {
            let label = if ystep < 0.01 {
                format!("{v:.3}")
            } else if ystep < 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.0}")
            };
            (y(v), label)
        }),
    );
    let xstep = nice_step(secs, 10.0).max(1.0);
    c.x_labels(
        &mut s,
        ticks(0.0, xstep, secs + 1e-9)
            .into_iter()
            .map(|t| (x(t), t)),
    );
    c.frame(
        &mut s,
        "seconds into the measured window",
        "milliseconds",
        18.0,
    );
    // One pair of lines per op, and the legend.
    for (n, op) in ops.iter().enumerate() {
        let color = COLORS[op.index() % COLORS.len()];
        for (dash, pick) in [("", 0usize), (r#" stroke-dasharray="5 4""#, 1)] {
            let points: Vec<String> = series
                .iter()
                .enumerate()
                .filter(|(_, sec)| sec[op.index()].count > 0)
                .map(|(i, sec)| {
                    let v = if pick == 0 {
                        sec[op.index()].p99_us
                    } else {
                        sec[op.index()].p50_us
                    };
                    format!("{:.1},{:.1}", x(i as f64), y(v as f64 / 1000.0))
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{}"/>"#,
                points.join(" ")
            );
        }
        let ly = Canvas::TOP + 10.0 + n as f64 * 20.0;
        let lx = c.left + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>"#,
            lx + 20.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 26.0,
            ly + 4.0,
            op.name()
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_pair_per_op_with_data() {
        let mut sec = [SecondSample::default(); 7];
        sec[Op::PageView.index()] = SecondSample {
            count: 10,
            errors: 0,
            p50_us: 100,
            p99_us: 900,
            service_p99_us: 900,
        };
        let svg = latency_svg("smoke", &[sec, sec, sec]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">page_view</text>"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(latency_svg("x", &[]).contains("no measured data"));
    }
}
