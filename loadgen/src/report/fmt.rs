//! Numbers as people read them, the same way in every report: durations from microseconds
//! (`850µs`, `1.25ms`), counts with thousands separators (`28,112`, num-format), and sizes in
//! binary units (`1.5 MiB`, bytesize).

use num_format::{Locale, ToFormattedString};

/// `µs` as a short human figure: `850µs`, `1.25ms`, `2.50s`.
pub fn us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// A count with thousands separators: `28112` → `28,112`.
pub fn count(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

/// A rounded figure with thousands separators, sign kept: `-4200.4` → `-4,200`.
pub fn figure(v: f64) -> String {
    let n = count(v.abs().round() as u64);
    if v < 0.0 && n != "0" {
        format!("-{n}")
    } else {
        n
    }
}

/// Longest line any message loadgen prints may have.
pub const MAX_LINE: usize = 1000;

/// `text` on one line, cut to `max` characters (with `…`): a server reply quoted in an error must
/// not flood a terminal or a CI log (a cluster's `INFO` is 20 KB).
pub fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(b: f64) -> String {
    bytesize::ByteSize(b.max(0.0).round() as u64)
        .display()
        .iec()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(us(850), "850µs");
        assert_eq!(us(1250), "1.25ms");
        assert_eq!(us(2_500_000), "2.50s");
        assert_eq!(figure(28112.4), "28,112");
        assert_eq!(figure(999.0), "999");
        assert_eq!(figure(1_234_567.0), "1,234,567");
        assert_eq!(figure(-4200.0), "-4,200");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(bytes(1536.0 * 1024.0), "1.5 MiB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(
            clip(&"x".repeat(2000), MAX_LINE).chars().count(),
            MAX_LINE + 1
        );
    }
}
