//! What loadgen's two charts (`latency.svg`, `sweep.svg`) share: a [`Canvas`] with the page, the
//! title, the grid, the tick labels, the frame and the axis titles. Each chart keeps only its scales
//! and its data.
//!
//! Why hand-written SVG and not plotters: weighed for issue 9. plotters (SVG backend only) builds
//! in ~2 s and would replace the tick and frame code here (~150 lines), but (a) its text layout
//! guesses font metrics without a font file, so labels are placed by estimate either way; (b) a
//! trivial plotters chart is ~19 KB of SVG, and these charts are also inlined into `report.html`,
//! where a 7-op, 60-second `latency.svg` from this canvas is a few KB; (c) the charts need exactly
//! what is here — dashed p50 lines, a log axis, SLO bounds, knee and failover markers — and every
//! one is a line of SVG with a known output that the tests read (`<polyline`, `>knee `). The
//! canvas stays; both charts use it, so there is one copy of it.

use std::fmt::Write;

/// Line colours, one per series, in a fixed order.
pub(crate) const COLORS: [&str; 7] = [
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
    pub(crate) left: f64,
    pub(crate) right: f64,
}

impl Canvas {
    pub(crate) const W: f64 = 960.0;
    pub(crate) const H: f64 = 480.0;
    pub(crate) const TOP: f64 = 40.0;
    pub(crate) const BOTTOM: f64 = 50.0;

    /// Width of the plot area.
    pub(crate) fn pw(&self) -> f64 {
        Self::W - self.left - self.right
    }

    /// Height of the plot area.
    pub(crate) fn ph(&self) -> f64 {
        Self::H - Self::TOP - Self::BOTTOM
    }

    /// The `<svg>` element, a white page and the title centred over the plot area.
    pub(crate) fn open(&self, s: &mut String, title: &str) {
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
    pub(crate) fn close_empty(s: &mut String, message: &str) {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{message}</text></svg>"#,
            Self::W / 2.0,
            Self::H / 2.0
        );
    }

    /// Horizontal grid lines across the plot area at each `y`.
    pub(crate) fn grid(&self, s: &mut String, ys: impl IntoIterator<Item = f64>) {
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
    pub(crate) fn y_labels(&self, s: &mut String, labels: impl IntoIterator<Item = (f64, String)>) {
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
    pub(crate) fn x_labels(&self, s: &mut String, labels: impl IntoIterator<Item = (f64, f64)>) {
        for (x, t) in labels {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{t:.0}</text>"#,
                Self::TOP + self.ph() + 18.0
            );
        }
    }

    /// The plot area's border and the axis titles; the y title is drawn rotated at `y_title_x`.
    pub(crate) fn frame(&self, s: &mut String, x_title: &str, y_title: &str, y_title_x: f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(0.99, 5.0), 0.2);
        assert_eq!(ticks(0.0, 0.5, 1.2), vec![0.0, 0.5, 1.0]);
        assert_eq!(esc("a<b&c"), "a&lt;b&amp;c");
    }
}
