//! `report.html` and `sweep.html`: loadgen's own pages, one self-contained file each.
//!
//! goose's HTML report loads its chart library from a CDN (empty charts on a machine without
//! internet) and counts the warm-up, so its figures disagree with `report.md`; it is kept as
//! `goose-report.html` for what only goose shows. loadgen's page is the Markdown report a
//! command already writes — the same tables, from the same data — rendered to HTML, with each
//! chart the Markdown links (`![..](latency.svg)`) inlined as SVG. No script, no stylesheet or
//! font from elsewhere, no link out: it opens the same on an air-gapped machine.
//!
//! The converter knows only the Markdown the report renderers write ([`super::markdown`] tables,
//! `#` headings, `- ` lists, fenced blocks, `**bold**` and `` `code` ``); anything else is shown
//! as text, escaped.

use std::fmt::Write;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}\
td.r,th.r{text-align:right}th{background:#f2f2f2}code,pre{background:#f6f6f6}pre{padding:.5em;overflow:auto}\
svg{max-width:100%;height:auto;display:block;margin:.5em 0}";

/// The page for `markdown`, titled `title`, with `charts` (file name → SVG text) inlined where
/// the Markdown shows them.
pub fn page(title: &str, markdown: &str, charts: &[(&str, &str)]) -> String {
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    let mut table: Vec<&str> = Vec::new();
    let mut list = false;
    let mut fenced = false;
    for line in markdown.lines() {
        if fenced || line.starts_with("```") {
            if line.starts_with("```") {
                o.push_str(if fenced { "</pre>\n" } else { "<pre>" });
                fenced = !fenced;
            } else {
                let _ = writeln!(o, "{}", escape(line));
            }
            continue;
        }
        if line.starts_with('|') {
            table.push(line);
            continue;
        }
        if !table.is_empty() {
            o.push_str(&render_table(&table));
            table.clear();
        }
        if let Some(item) = line.strip_prefix("- ") {
            if !list {
                o.push_str("<ul>\n");
                list = true;
            }
            let _ = writeln!(o, "<li>{}</li>", inline(item, charts));
            continue;
        }
        if list {
            o.push_str("</ul>\n");
            list = false;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            let _ = writeln!(
                o,
                "<h{level}>{}</h{level}>",
                inline(line[level..].trim(), charts)
            );
        } else if !line.trim().is_empty() {
            let _ = writeln!(o, "<p>{}</p>", inline(line, charts));
        }
    }
    if !table.is_empty() {
        o.push_str(&render_table(&table));
    }
    if list {
        o.push_str("</ul>\n");
    }
    if fenced {
        o.push_str("</pre>\n");
    }
    o.push_str("</body></html>\n");
    o
}

/// A Markdown table: header row, alignment row (`---:` right-aligns a column), body rows.
fn render_table(rows: &[&str]) -> String {
    let cells = |row: &str| -> Vec<String> {
        let row = row.trim().trim_start_matches('|').trim_end_matches('|');
        row.split('|').map(|c| c.trim().to_string()).collect()
    };
    let right: Vec<bool> = rows
        .get(1)
        .map(|r| cells(r).iter().map(|c| c.ends_with(':')).collect())
        .unwrap_or_default();
    let class = |i: usize| {
        if right.get(i).copied().unwrap_or(false) {
            " class=\"r\""
        } else {
            ""
        }
    };
    let mut o = String::from("<table>\n<tr>");
    for (i, c) in cells(rows[0]).iter().enumerate() {
        let _ = write!(o, "<th{}>{}</th>", class(i), inline(c, &[]));
    }
    o.push_str("</tr>\n");
    for row in rows.iter().skip(2) {
        o.push_str("<tr>");
        for (i, c) in cells(row).iter().enumerate() {
            let _ = write!(o, "<td{}>{}</td>", class(i), inline(c, &[]));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    o
}

/// Inline Markdown: `![alt](file)` becomes the chart's SVG (or its alt text when not given),
/// `[text](target)` its text (no link leaves the page), `` `code` `` and `**bold**` their tags.
fn inline(text: &str, charts: &[(&str, &str)]) -> String {
    let mut o = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('[') {
        let image = at > 0 && rest[..at].ends_with('!');
        let (before, after) = rest.split_at(at);
        let parsed = after[1..].split_once("](").and_then(|(label, tail)| {
            let (target, tail) = tail.split_once(')')?;
            Some((label, target, tail))
        });
        let Some((label, target, tail)) = parsed else {
            break;
        };
        o.push_str(&styled(if image {
            &before[..before.len() - 1]
        } else {
            before
        }));
        match charts.iter().find(|(file, _)| *file == target) {
            Some((_, svg)) if image => o.push_str(svg),
            _ => o.push_str(&styled(label)),
        }
        rest = tail;
    }
    o.push_str(&styled(rest));
    o
}

/// Escapes `text` and turns `` `code` `` and `**bold**` into tags.
fn styled(text: &str) -> String {
    let mut o = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(o, "<code>{}</code>", escape(part));
            continue;
        }
        for (j, bold) in escape(part).split("**").enumerate() {
            if j % 2 == 1 {
                let _ = write!(o, "<b>{bold}</b>");
            } else {
                o.push_str(bold);
            }
        }
    }
    o
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_headings_lists_and_charts_render_with_no_link_out() {
        let md = "# run: **PASS**\n\n- target `redis://h`\n- see [goose](https://example.com/x)\n\n| op | p99 |\n|---|---:|\n| get | 1 <ms> |\n\n![latency](latency.svg)\n";
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"><line/></svg>";
        let html = page("run", md, &[("latency.svg", svg)]);
        assert!(html.contains("<h1>run: <b>PASS</b></h1>"), "{html}");
        assert!(
            html.contains("<li>target <code>redis://h</code></li>"),
            "{html}"
        );
        assert!(html.contains("<th class=\"r\">p99</th>"), "{html}");
        assert!(html.contains("<td class=\"r\">1 &lt;ms&gt;</td>"), "{html}");
        assert!(html.contains(svg), "{html}");
        assert!(!html.contains("href") && !html.contains("src="), "{html}");
        assert!(html.contains("<li>see goose</li>"), "{html}");
    }
}
