//! One run's files for people: `report.md` (and `report.html`), the console summary, `latency.svg` and the
//! `latency-<op>.hgrm` distributions, all rendered from the [`Summary`] that is written as
//! `summary.json` ([`write_all`] writes them together).

use std::fmt::Write;
use std::path::Path;

use hdrhistogram::Histogram;

use super::chart::{COLORS, Canvas, nice_step, ticks};
use super::console;
use super::hgrm::percentile_distribution;
use super::markdown::{Align, Table};
use super::summary::{Availability, Bottleneck, SecondSample, Status, Summary, Verdict};
use super::{fmt, html};
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
        ("checked", Align::Right),
        ("", Align::Left),
    ]);
    for v in &s.slo.verdicts {
        t.row([
            v.name.clone(),
            v.bound.clone(),
            v.observed.clone(),
            v.checked.to_string(),
            verdict_cell(v),
        ]);
    }
    let _ = writeln!(o, "## Verdicts\n\n{}", t.render());
    o.push_str(&super::workers::markdown(
        s.worker.as_ref(),
        s.merge.as_ref(),
    ));

    o.push_str(&bottleneck_md(&s.bottleneck));
    o.push_str(&availability_md(&s.availability));
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
    let mut t = Table::new(&[("invariant", Align::Left), ("count", r), ("checked", r)]);
    for (name, n, checked) in [
        ("lost sessions", i.lost_sessions, i.sessions_checked),
        (
            "rate-limit over-admissions",
            i.ratelimit_over_admissions,
            i.ratelimit_decisions_checked,
        ),
        (
            "admitted while degraded (fail-open)",
            i.admitted_while_degraded,
            i.degraded_decisions,
        ),
        (
            "revoked tokens still validating",
            i.revoked_tokens_validating,
            i.revoked_tokens_checked,
        ),
        (
            "token cache misses (informational)",
            i.token_cache_misses,
            i.tokens_checked,
        ),
    ] {
        t.row([name.to_string(), n.to_string(), checked.to_string()]);
    }
    let _ = write!(o, "\n## Invariants\n\n{}", t.render());

    if !s.errors.is_empty() {
        let mut t = Table::new(&[
            ("op", Align::Left),
            ("class", Align::Left),
            ("count", r),
            ("example", Align::Left),
        ]);
        for (op, classes) in &s.errors {
            for (class, e) in classes {
                t.row([
                    op.clone(),
                    class.clone(),
                    e.count.to_string(),
                    e.example.clone(),
                ]);
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
    if rd.nodes.len() > 1 {
        let mut t = Table::new(&[
            ("primary", Align::Left),
            ("slots", Align::Left),
            ("used memory", r),
            ("maxmemory", r),
            ("keys", r),
        ]);
        for n in &rd.nodes {
            t.row([
                n.address.clone(),
                n.slots.clone(),
                n.used_memory.map_or("-".into(), fmt::bytes),
                n.maxmemory.map_or("-".into(), |m| {
                    if m == 0.0 {
                        "unlimited".into()
                    } else {
                        fmt::bytes(m)
                    }
                }),
                format!("{:.0}", n.keys),
            ]);
        }
        let _ = write!(o, "\n### Primaries\n\n{}", t.render());
    }
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
        "\n![p50 and p99 response time per second](latency.svg)\n\nFiles: `summary.json`, `report.html` (this page, self-contained), `latency.svg`, `latency-<op>.hgrm`, goose's own `goose-report.html`."
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
        "invariants: lost sessions {} of {} checked, rate-limit over-admissions {} of {}, admitted while degraded {}, revoked tokens validating {} of {} (token cache misses {})",
        i.lost_sessions,
        i.sessions_checked,
        i.ratelimit_over_admissions,
        i.ratelimit_decisions_checked,
        i.admitted_while_degraded,
        i.revoked_tokens_validating,
        i.revoked_tokens_checked,
        i.token_cache_misses
    );
    o.push_str(&console_findings(s));
    let _ = writeln!(o, "{}", verdict_line(&s.slo.verdicts));
    o
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// "## Bottleneck": the verdict, its rule, and every figure it was decided on.
pub(crate) fn bottleneck_md(b: &Bottleneck) -> String {
    let g = &b.generator;
    let mut t = Table::new(&[("figure", Align::Left), ("value", Align::Right)]);
    t.row([
        "loadgen CPU (of the cores it may use)".to_string(),
        format!("{} of {:.2} cores", pct(g.utilisation), g.cores),
    ])
    .row([
        "loadgen CPU per operation".to_string(),
        format!("{:.1} µs", g.cpu_us_per_op),
    ]);
    if let Some(th) = &g.busiest_thread {
        t.row([
            format!("busiest loadgen thread (`{}`)", th.name),
            pct(th.utilisation),
        ]);
    }
    if let Some(th) = g.throttled {
        t.row(["periods throttled by a cgroup quota".to_string(), pct(th)]);
    }
    if let Some(sv) = &b.server {
        t.row([
            "Redis main thread".to_string(),
            pct(sv.main_thread_utilisation),
        ])
        .row([
            "Redis CPU, all threads".to_string(),
            format!("{:.2} cores", sv.cores_used),
        ])
        .row([
            "Redis CPU per operation".to_string(),
            format!("{:.1} µs", sv.cpu_us_per_op),
        ]);
    }
    if let Some(p) = &b.probe {
        t.row([
            "idle PING during the load (p50 / p99)".to_string(),
            format!("{} / {}", fmt::us(p.p50_us), fmt::us(p.p99_us)),
        ]);
        if let Some(idle) = p.idle_p50_us {
            t.row(["idle PING before the load (p50)".to_string(), fmt::us(idle)]);
        }
    }
    if let Some(o) = b.offered_ops_per_sec {
        t.row([
            "offered / achieved".to_string(),
            format!("{o:.0} / {:.0} ops/s", b.achieved_ops_per_sec),
        ]);
    }
    if let Some(l) = b.schedule_lag_p99_us {
        t.row(["start lag behind schedule (p99)".to_string(), fmt::us(l)]);
    }
    if let Some(m) = b.machine_utilisation {
        t.row([
            "this machine's cores used by loadgen + Redis".to_string(),
            pct(m),
        ]);
    }
    if let Some(h) = b.host_utilisation {
        t.row([
            "this machine's cores used by every process".to_string(),
            pct(h),
        ]);
    }
    format!(
        "## Bottleneck: {}\n\n{}\n\n{}\n",
        b.verdict.as_str(),
        b.rule,
        t.render()
    )
}

/// "## Availability": primaries, switches and unavailability windows (nothing when there were
/// neither switches nor windows).
pub(crate) fn availability_md(a: &Availability) -> String {
    if a.windows.is_empty() && a.switches.is_empty() {
        return String::new();
    }
    let mut o = String::from("## Availability\n\n");
    let _ = writeln!(
        o,
        "- primary at start: `{}`, at end: `{}`",
        a.primary_at_start.as_deref().unwrap_or("unknown"),
        a.primary_at_end.as_deref().unwrap_or("unknown")
    );
    for sw in &a.switches {
        let _ = writeln!(
            o,
            "- {:.1} s: {} `{}` → `{}`",
            sw.at_s,
            if sw.restarted {
                "restarted"
            } else {
                "switched"
            },
            sw.from,
            sw.to
        );
    }
    o.push('\n');
    if !a.windows.is_empty() {
        let right = Align::Right;
        let mut t = Table::new(&[
            ("from (s)", right),
            ("to (s)", right),
            ("lasted", right),
            ("failed ops", right),
            ("by class", Align::Left),
            ("succeeded inside", right),
        ]);
        for w in &a.windows {
            t.row([
                format!("{:.1}", w.start_s),
                format!("{:.1}", w.end_s),
                format!("{:.1} s", w.duration_s),
                fmt::count(w.failed_ops),
                classes(&w.failed_by_class),
                fmt::count(w.succeeded_ops),
            ]);
        }
        let _ = write!(
            o,
            "Unavailable {:.1} s in all (seconds since the attack started, warm-up included):\n\n{}\n",
            a.unavailable_s,
            t.render()
        );
    }
    o
}

/// `no_primary (31,329), connection_dropped (26)`.
fn classes(by: &std::collections::BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = by.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .map(|(k, n)| format!("{k} ({})", fmt::count(**n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The console's lines about the bottleneck and unavailability.
fn console_findings(s: &Summary) -> String {
    let mut o = format!(
        "bottleneck: {} — {}\n",
        s.bottleneck.verdict.as_str(),
        s.bottleneck.rule
    );
    for w in &s.availability.windows {
        let _ = writeln!(
            o,
            "unavailable from {:.1} s to {:.1} s ({:.1} s), {} ops failed: {}",
            w.start_s,
            w.end_s,
            w.duration_s,
            fmt::count(w.failed_ops),
            classes(&w.failed_by_class)
        );
    }
    for sw in &s.availability.switches {
        let _ = writeln!(
            o,
            "primary {} at {:.1} s: {} → {}",
            if sw.restarted {
                "restarted"
            } else {
                "switched"
            },
            sw.at_s,
            sw.from,
            sw.to
        );
    }
    o
}

/// `pass`, `**FAIL**`, `not checked` or `**not checked (required)**`.
fn verdict_cell(v: &Verdict) -> String {
    match (v.status, v.required) {
        (Status::Fail, _) => "**FAIL**".into(),
        (Status::NotChecked, true) => "**not checked (required)**".into(),
        (status, _) => status.words().into(),
    }
}

/// `verdict: PASS (5 checks; not checked: lost sessions)` or `verdict: FAIL: <each failure>`.
pub fn verdict_line(verdicts: &[Verdict]) -> String {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.holds())
        .map(|v| match v.status {
            Status::NotChecked => format!("{} not checked (required)", v.name),
            _ => format!("{} {} (bound {})", v.name, v.observed, v.bound),
        })
        .collect();
    let unchecked: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.status == Status::NotChecked && v.holds())
        .map(|v| v.name.as_str())
        .collect();
    let judged = verdicts.len() - unchecked.len();
    if !failed.is_empty() {
        return format!("verdict: FAIL: {}", failed.join("; "));
    }
    if unchecked.is_empty() {
        format!("verdict: PASS ({judged} checks)")
    } else {
        format!(
            "verdict: PASS ({judged} checks; not checked: {})",
            unchecked.join(", ")
        )
    }
}

/// One operation's histograms, for the `.hgrm` files.
pub struct OpHistograms<'a> {
    pub name: &'a str,
    pub response: &'a Histogram<u64>,
    pub service: &'a Histogram<u64>,
}

/// Writes `summary.json`, `report.md`, `latency-<op>.hgrm` (response and service time),
/// `latency.svg` and `report.html` (the Markdown with the chart inlined, [`super::html`]) into
/// `dir`. Goose writes its own `goose-report.html`.
pub fn write_all(
    dir: &Path,
    summary: &Summary,
    histograms: &[OpHistograms<'_>],
    series: &[[SecondSample; 7]],
) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    let md = markdown(summary);
    std::fs::write(dir.join("report.md"), &md)?;
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
    // Availability windows count from the attack's start, the chart from the measured window's.
    let from = summary.run.measured_from_s;
    let outages: Vec<(f64, f64)> = summary
        .availability
        .windows
        .iter()
        .map(|w| (w.start_s - from, w.end_s - from))
        .collect();
    let svg = latency_svg(&summary.scenario.name, series, &outages);
    std::fs::write(dir.join("latency.svg"), &svg)?;
    let title = format!("loadgen run: {}", summary.scenario.name);
    std::fs::write(
        dir.join("report.html"),
        html::page(&title, &md, &[("latency.svg", &svg)]),
    )
}

const CANVAS: Canvas = Canvas {
    left: 70.0,
    right: 170.0,
};

/// `latency.svg`: p50 (dashed) and p99 (solid) response time per second for each operation, with
/// unavailability windows (`outages`, seconds into the measured window) shaded in red.
pub fn latency_svg(title: &str, series: &[[SecondSample; 7]], outages: &[(f64, f64)]) -> String {
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
    for &(from, to) in outages {
        let (a, b) = (from.clamp(0.0, secs), to.clamp(0.0, secs));
        if b > a {
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{ph}" fill="#d62728" fill-opacity="0.15"><title>unavailable {from:.1}–{to:.1} s</title></rect>"##,
                x(a),
                Canvas::TOP,
                x(b) - x(a)
            );
        }
    }
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
        let svg = latency_svg("smoke", &[sec, sec, sec], &[]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">page_view</text>"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(latency_svg("x", &[], &[]).contains("no measured data"));
        let marked = latency_svg("smoke", &[sec, sec, sec], &[(0.5, 1.5)]);
        assert!(
            marked.contains("<title>unavailable 0.5–1.5 s</title>"),
            "{marked}"
        );
    }
}
