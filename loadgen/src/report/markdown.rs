//! Markdown tables, built one way for every report.
//!
//! Why not the table crate used for the console ([`tabled`]): its Markdown style pads every cell to
//! the column's width and has no alignment row, so numbers come out left-aligned on GitHub and a
//! one-character change reflows the whole table in a diff. A Markdown table needs neither padding
//! nor more than this: a header, an alignment per column (`---` or `---:`), rows, and `|` escaped.

use std::fmt::Write;

/// Column alignment in the rendered table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A Markdown table under construction.
pub(crate) struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns as `(title, alignment)`.
    pub(crate) fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(t, _)| t.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; cells beyond the header are dropped, missing ones left empty.
    pub(crate) fn row<I, S>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table, ending with a newline.
    pub(crate) fn render(&self) -> String {
        let line = |cells: &[String]| {
            let cells: Vec<String> = (0..self.header.len())
                .map(|i| cell(cells.get(i).map_or("", String::as_str)))
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let mut o = String::new();
        let _ = writeln!(o, "{}", line(&self.header));
        let rule: Vec<&str> = self
            .align
            .iter()
            .map(|a| match a {
                Align::Left => "---",
                Align::Right => "---:",
            })
            .collect();
        let _ = writeln!(o, "|{}|", rule.join("|"));
        for r in &self.rows {
            let _ = writeln!(o, "{}", line(r));
        }
        o
    }
}

/// A cell's text: `|` escaped, line breaks flattened (a cell is one line).
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_alignment_rows_and_escapes() {
        let mut t = Table::new(&[("op", Align::Left), ("count", Align::Right)]);
        t.row(["page_view", "12"]).row(["a|b\nc", "3"]);
        assert_eq!(
            t.render(),
            "| op | count |\n|---|---:|\n| page_view | 12 |\n| a\\|b c | 3 |\n"
        );
    }
}
