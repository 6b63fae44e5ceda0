//! Tables for the terminal, through one function so every command's console output looks alike:
//! no borders, columns aligned, numbers right-aligned (tabled does the widths).

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

/// `header` and `rows` as aligned columns; columns from `right_from` on are right-aligned.
/// Ends with a newline.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, right_from: usize) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::blank())
        .modify(Columns::new(right_from..), Alignment::right());
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let t = super::table(
            &["op", "count"],
            vec![
                vec!["page_view".into(), "12".into()],
                vec!["login".into(), "3456".into()],
            ],
            1,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{t}");
        assert!(
            lines[1].trim_end().ends_with("12") && lines[2].contains("login"),
            "{t}"
        );
    }
}
