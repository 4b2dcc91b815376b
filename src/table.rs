//! Columns of text aligned for a terminal: every table sdss prints (the node's
//! neighbors, a lab's pairs, its plan, the labs that are up) goes through one
//! [`Table`], so a long name widens its column instead of shifting the rest.

/// Where a column's cells sit in their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

#[derive(Debug)]
struct Column {
    header: String,
    align: Align,
    width: usize,
}

/// A header and rows; each column as wide as its widest cell, at least its
/// header and its minimum width. The last column, when left-aligned, is not padded.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    indent: &'static str,
    gap: &'static str,
}

impl Table {
    /// A table of these columns (header, alignment, minimum width: tables
    /// printed one after another line up), two spaces between them.
    pub fn new(columns: &[(&str, Align, usize)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|(header, align, min)| Column {
                    header: (*header).to_owned(),
                    align: *align,
                    width: header.chars().count().max(*min),
                })
                .collect(),
            rows: Vec::new(),
            indent: "",
            gap: "  ",
        }
    }

    /// Starts every line with `indent`.
    pub fn indent(mut self, indent: &'static str) -> Table {
        self.indent = indent;
        self
    }

    /// Puts `gap` between columns instead of two spaces.
    pub fn gap(mut self, gap: &'static str) -> Table {
        self.gap = gap;
        self
    }

    /// Adds a row: one cell per column (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        for (column, cell) in self.columns.iter_mut().zip(&cells) {
            column.width = column.width.max(cell.chars().count());
        }
        self.rows.push(cells);
    }

    /// The header line, without its newline (for a caller that styles it).
    pub fn header(&self) -> String {
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_str()).collect();
        self.line(&headers)
    }

    /// The rows, each ending in a newline.
    pub fn body(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            out.push_str(&self.line(&cells));
            out.push('\n');
        }
        out
    }

    /// The header and the rows, each line ending in a newline.
    pub fn render(&self) -> String {
        format!("{}\n{}", self.header(), self.body())
    }

    fn line(&self, cells: &[&str]) -> String {
        let mut out = self.indent.to_owned();
        let last = self.columns.len().saturating_sub(1);
        for (i, column) in self.columns.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            if i > 0 {
                out.push_str(self.gap);
            }
            let pad = column.width.saturating_sub(cell.chars().count());
            match column.align {
                Align::Left if i == last => out.push_str(cell),
                Align::Left => {
                    out.push_str(cell);
                    out.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(cell);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell_and_numbers_align_right() {
        let mut table = Table::new(&[
            ("NAME", Align::Left, 0),
            ("MS", Align::Right, 0),
            ("NOTE", Align::Left, 0),
        ]);
        table.row(vec!["a".into(), "1.500".into(), "ok".into()]);
        table.row(vec!["a-long-name".into(), "12.000".into(), "late".into()]);
        assert_eq!(
            table.render(),
            "NAME             MS  NOTE\n\
             a             1.500  ok\n\
             a-long-name  12.000  late\n"
        );
    }

    #[test]
    fn minimum_widths_indent_and_gap_keep_a_fixed_layout() {
        let mut table = Table::new(&[("ID", Align::Left, 6), ("N", Align::Right, 4)])
            .indent("  ")
            .gap(" ");
        table.row(vec!["abc".into(), "7".into()]);
        assert_eq!(table.header(), "  ID        N");
        assert_eq!(table.body(), "  abc       7\n");
    }

    #[test]
    fn a_short_row_leaves_cells_empty() {
        let mut table = Table::new(&[
            ("A", Align::Left, 0),
            ("B", Align::Right, 0),
            ("C", Align::Left, 0),
        ]);
        table.row(vec!["x".into()]);
        assert_eq!(table.body(), "x     \n");
    }
}
