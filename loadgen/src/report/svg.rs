//! `latency.svg`: p50 (dashed) and p99 (solid) response time per second for each operation, written
//! by hand — a few polylines and ticks do not justify a plotting crate and its fonts.
//!
//! [`Canvas`] holds what every hand-written chart of loadgen shares (this one and the sweep's
//! `sweep.svg`): the page, the title, the grid, the tick labels, the frame and the axis titles.
//! Each chart keeps only its scales and its data.

use std::fmt::Write;

use crate::record::SecondSample;
use crate::scenario::Op;

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

/// `from`, `from + step`, ... while at most `until` (by repeated addition, as the ticks are drawn).
pub(crate) fn ticks(from: f64, step: f64, until: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut v = from;
    while v <= until {
        out.push(v);
        v += step;
    }
    out
}

/// A 960 × 480 chart page with the plot area inside `left`/`right` (and fixed top/bottom)
/// margins, and the pieces drawn around the data.
pub(crate) struct Canvas {
    pub left: f64,
    pub right: f64,
}

impl Canvas {
    pub const W: f64 = 960.0;
    pub const H: f64 = 480.0;
    pub const TOP: f64 = 40.0;
    pub const BOTTOM: f64 = 50.0;

    /// Width of the plot area.
    pub fn pw(&self) -> f64 {
        Self::W - self.left - self.right
    }

    /// Height of the plot area.
    pub fn ph(&self) -> f64 {
        Self::H - Self::TOP - Self::BOTTOM
    }

    /// The `<svg>` element, a white page and the title centred over the plot area.
    pub fn open(&self, s: &mut String, title: &str) {
        let (w, h) = (Self::W, Self::H);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            (self.left + w - self.right) / 2.0,
            esc(title)
        );
    }

    /// A chart without data: `message` in the middle, and the document closed.
    pub fn close_empty(s: &mut String, message: &str) {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{message}</text></svg>"#,
            Self::W / 2.0,
            Self::H / 2.0
        );
    }

    /// Horizontal grid lines across the plot area at each `y`.
    pub fn grid(&self, s: &mut String, ys: impl IntoIterator<Item = f64>) {
        let _ = writeln!(s, r##"<g stroke="#ccc">"##);
        for y in ys {
            let _ = writeln!(
                s,
                r#"<line x1="{}" x2="{}" y1="{y:.1}" y2="{y:.1}"/>"#,
                self.left,
                self.left + self.pw()
            );
        }
        let _ = writeln!(s, "</g>");
    }

    /// Tick labels left of the plot area: `(y, label)`.
    pub fn y_labels(&self, s: &mut String, labels: impl IntoIterator<Item = (f64, String)>) {
        for (y, label) in labels {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
                self.left - 6.0,
                y + 4.0
            );
        }
    }

    /// Tick labels under the plot area: `(x, value)`, the value printed without decimals.
    pub fn x_labels(&self, s: &mut String, labels: impl IntoIterator<Item = (f64, f64)>) {
        for (x, t) in labels {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{t:.0}</text>"#,
                Self::TOP + self.ph() + 18.0
            );
        }
    }

    /// The plot area's border and the axis titles; the y title is drawn rotated at `y_title_x`.
    pub fn frame(&self, s: &mut String, x_title: &str, y_title: &str, y_title_x: f64) {
        let (pw, ph) = (self.pw(), self.ph());
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##,
            self.left,
            Self::TOP
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{x_title}</text>"#,
            self.left + pw / 2.0,
            Self::H - 12.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate({y_title_x} {}) rotate(-90)" text-anchor="middle">{y_title}</text>"#,
            Self::TOP + ph / 2.0
        );
    }
}

const CANVAS: Canvas = Canvas {
    left: 70.0,
    right: 170.0,
};

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
        assert_eq!(nice_step(0.99, 5.0), 0.2);
    }
}
