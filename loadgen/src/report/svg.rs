//! `latency.svg`: p50 (dashed) and p99 (solid) response time per second for each operation, written
//! by hand — a few polylines and ticks do not justify a plotting crate and its fonts.

use std::fmt::Write;

use crate::record::SecondSample;
use crate::scenario::Op;

const W: f64 = 960.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
];

/// A "nice" step (1, 2 or 5 × 10^k) giving about `n` ticks up to `max`.
pub(crate) fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn latency_svg(title: &str, series: &[[SecondSample; 7]]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(&format!(
            "{title}: response time p50 (dashed) and p99 (solid) per second"
        ))
    );
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| series.iter().any(|sec| sec[op.index()].count > 0))
        .collect();
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    if ops.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no measured data</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
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
    let x = |i: f64| LEFT + i / secs * pw;
    let y = |ms: f64| TOP + ph - ms / ytop * ph;
    // Axes, grid and ticks.
    let _ = writeln!(s, r##"<g stroke="#ccc">"##);
    let mut v = 0.0;
    while v <= ytop + ystep / 2.0 {
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/>"#,
            LEFT + pw,
            y = y(v)
        );
        v += ystep;
    }
    let _ = writeln!(s, "</g>");
    let mut v = 0.0;
    while v <= ytop + ystep / 2.0 {
        let label = if ystep < 0.01 {
            format!("{v:.3}")
        } else if ystep < 1.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.0}")
        };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 6.0,
            y(v) + 4.0
        );
        v += ystep;
    }
    let xstep = nice_step(secs, 10.0).max(1.0);
    let mut t = 0.0;
    while t <= secs + 1e-9 {
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
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the measured window</text>"#,
        LEFT + pw / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">milliseconds</text>"#,
        TOP + ph / 2.0
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
        let ly = TOP + 10.0 + n as f64 * 20.0;
        let lx = LEFT + pw + 15.0;
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
        assert_eq!(nice_step(0.99, 5.0), 0.2);
    }
}
