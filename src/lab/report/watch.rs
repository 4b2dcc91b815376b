//! What `sdss lab watch` shows: the measured delay matrix of a running lab,
//! each pair classed by its error against the expected value. Pure: a plan's
//! verification and a terminal size in, lines of classed text out; the
//! terminal (or a pipe) is [`crate::lab::watch`]'s business.
//!
//! A lab whose matrix of numbers fits shows ms; a larger one (100 nodes) a
//! compact grid, one character per pair; either way a summary line first and
//! the worst pairs after. Marks tell the classes apart without colour too.

use std::collections::HashMap;

use crate::lab::judge::delays::{PairResult, PairVerdict, Verification};
use crate::lab::plan::{Plan, Program};

/// How far a pair is from its expected delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Within tolerance (green).
    Pass,
    /// Within twice the tolerance (yellow).
    Near,
    /// Beyond twice the tolerance (red).
    Off,
    /// Not measured yet, or not gradable (grey).
    Unmeasured,
}

impl Class {
    /// The grid's character, and the mark after a number (`' '` for none).
    pub fn mark(self) -> char {
        match self {
            Class::Pass => '.',
            Class::Near => '~',
            Class::Off => '!',
            Class::Unmeasured => '?',
        }
    }
}

/// A piece of a line, coloured by its class when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text (no control characters).
    pub text: String,
    /// Its class, or `None` for the terminal's own colour.
    pub class: Option<Class>,
}

/// A line of spans.
pub type Line = Vec<Span>;

/// The terminal's size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// One refresh of the view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// At most `rows` lines of at most `cols` characters.
    pub lines: Vec<Line>,
}

impl Frame {
    /// The frame as plain text, one line each, without escape codes.
    pub fn plain(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let text: String = line.iter().map(|s| s.text.as_str()).collect();
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The most worst pairs listed, however tall the terminal.
const WORST: usize = 10;

/// The class of one pair: by `|measured - expected|` against its tolerance.
pub fn classify(pair: &PairResult) -> Class {
    match (pair.verdict, pair.error_ms) {
        (PairVerdict::Skipped, _) | (_, None) => Class::Unmeasured,
        (_, Some(error)) if error.abs() <= pair.tolerance_ms => Class::Pass,
        (_, Some(error)) if error.abs() <= 2.0 * pair.tolerance_ms => Class::Near,
        _ => Class::Off,
    }
}

fn span(text: impl Into<String>, class: Option<Class>) -> Span {
    Span {
        text: text.into(),
        class,
    }
}

/// Renders the view of `verification` (of `plan`'s pairs) `elapsed_s` after
/// the nodes started, to fit `size`.
pub fn render(plan: &Plan, verification: &Verification, elapsed_s: f64, size: Size) -> Frame {
    let (cols, rows) = (usize::from(size.cols), usize::from(size.rows));
    let nodes: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.program != Program::Probe)
        .map(|n| n.name.as_str())
        .collect();
    let pairs: HashMap<(&str, &str), (&PairResult, Class)> = verification
        .pairs
        .iter()
        .map(|p| ((p.from.as_str(), p.to.as_str()), (p, classify(p))))
        .collect();
    let count = |class| pairs.values().filter(|(_, c)| *c == class).count();
    let mut lines: Vec<Line> = vec![vec![
        span(
            format!(
                "lab {} at t={elapsed_s:.1}s: {} pairs, ",
                plan.lab,
                pairs.len()
            ),
            None,
        ),
        span(
            format!("{} within tolerance", count(Class::Pass)),
            Some(Class::Pass),
        ),
        span(", ", None),
        span(
            format!("{} within 2x", count(Class::Near)),
            Some(Class::Near),
        ),
        span(", ", None),
        span(format!("{} beyond", count(Class::Off)), Some(Class::Off)),
        span(", ", None),
        span(
            format!("{} not measured", count(Class::Unmeasured)),
            Some(Class::Unmeasured),
        ),
    ]];
    let name_w = nodes.iter().map(|n| n.len()).max().unwrap_or(0).max(5);
    let cell_w = nodes.iter().map(|n| n.len()).max().unwrap_or(0).max(7);
    let numbers_w = 2 + name_w + nodes.len() * (2 + cell_w);
    // Header, legend, column names, the rows, and room for a worst pair.
    let numbers = numbers_w <= cols && nodes.len() + 4 <= rows;
    let cell = |from: &str, to: &str| pairs.get(&(from, to)).copied();
    if numbers {
        lines.push(vec![span(
            "ms measured (row: sender, column: receiver): ~ within 2x tolerance, ! beyond, ? not measured",
            None,
        )]);
        let mut header = vec![span(format!("  {:<name_w$}", "B \\ A"), None)];
        header.extend(
            nodes
                .iter()
                .map(|to| span(format!("  {to:>cell_w$}"), None)),
        );
        lines.push(header);
        for from in &nodes {
            let mut line = vec![span(format!("  {from:<name_w$}"), None)];
            for to in &nodes {
                line.push(match cell(from, to) {
                    None => span(format!("  {:>cell_w$}", "-"), None),
                    Some((pair, class)) => {
                        let text = match (pair.measured_ms, class) {
                            (Some(ms), Class::Pass) => format!("{ms:.1} "),
                            (Some(ms), _) => format!("{ms:.1}{}", class.mark()),
                            (None, _) => "? ".to_owned(),
                        };
                        span(format!("  {text:>cell_w$}"), Some(class))
                    }
                });
            }
            lines.push(line);
        }
    } else {
        let label_w = nodes.iter().map(|n| n.len()).max().unwrap_or(0).min(12);
        let index_w = nodes.len().saturating_sub(1).to_string().len();
        let prefix_w = index_w + label_w + 4;
        let shown_cols = nodes.len().min(cols.saturating_sub(prefix_w));
        // Header, legend, a note, two rulers; room for some worst pairs.
        let reserve = if rows >= 20 { 6 } else { 1 };
        let shown_rows = nodes.len().min(rows.saturating_sub(5 + reserve));
        lines.push(vec![span(
            "one cell per pair (rows send, columns receive, numbered as the rows): \
             . within tolerance, ~ within 2x, ! beyond, ? not measured",
            None,
        )]);
        if shown_cols < nodes.len() || shown_rows < nodes.len() {
            lines.push(vec![span(
                format!(
                    "showing {shown_rows} of {} rows, {shown_cols} of {} columns",
                    nodes.len(),
                    nodes.len()
                ),
                None,
            )]);
        }
        let pad = " ".repeat(prefix_w);
        let tens: String = (0..shown_cols)
            .map(|j| match j % 10 {
                0 => char::from_digit((j / 10 % 10) as u32, 10).unwrap_or(' '),
                _ => ' ',
            })
            .collect();
        let ones: String = (0..shown_cols)
            .map(|j| char::from_digit((j % 10) as u32, 10).unwrap_or(' '))
            .collect();
        lines.push(vec![span(format!("{pad}{tens}"), None)]);
        lines.push(vec![span(format!("{pad}{ones}"), None)]);
        for (i, from) in nodes.iter().take(shown_rows).enumerate() {
            let label: String = from.chars().take(label_w).collect();
            let mut line = vec![span(format!("  {i:>index_w$} {label:<label_w$} "), None)];
            for to in nodes.iter().take(shown_cols) {
                line.push(match cell(from, to) {
                    None => span(" ", None),
                    Some((_, class)) => span(class.mark().to_string(), Some(class)),
                });
            }
            lines.push(line);
        }
    }
    let room = rows.saturating_sub(lines.len()).min(WORST);
    lines.extend(worst(&verification.pairs, room));
    lines.truncate(rows);
    for line in &mut lines {
        clip(line, cols);
    }
    Frame { lines }
}

/// The pairs furthest from passing, worst first: measured ones by how many
/// tolerances they are off, then the unmeasured with their reasons.
fn worst(pairs: &[PairResult], room: usize) -> Vec<Line> {
    let mut failing: Vec<(&PairResult, Class)> = pairs
        .iter()
        .map(|p| (p, classify(p)))
        .filter(|(p, c)| *c != Class::Pass && p.verdict != PairVerdict::Skipped)
        .collect();
    let badness = |p: &PairResult| {
        p.error_ms
            .map_or(f64::INFINITY, |e| e.abs() / p.tolerance_ms.max(1e-9))
    };
    failing.sort_by(|(a, ca), (b, cb)| {
        (ca == &Class::Unmeasured)
            .cmp(&(cb == &Class::Unmeasured))
            .then(badness(b).total_cmp(&badness(a)))
    });
    if room == 0 || failing.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![vec![span(
        format!("worst pairs ({} not within tolerance):", failing.len()),
        None,
    )]];
    for (pair, class) in failing.into_iter().take(room - 1) {
        let what = match (pair.measured_ms, pair.error_ms) {
            (Some(measured), Some(error)) => format!(
                "{measured:.3} ms, expected {:.3}, off by {error:+.3} (tolerance {:.3})",
                pair.expected_ms, pair.tolerance_ms
            ),
            _ => pair
                .reason
                .clone()
                .unwrap_or_else(|| "not measured".to_owned()),
        };
        lines.push(vec![
            span(format!("  {} -> {}: ", pair.from, pair.to), None),
            span(what, Some(class)),
        ]);
    }
    lines
}

/// Cuts a line to `cols` characters.
fn clip(line: &mut Line, cols: usize) {
    let mut left = cols;
    line.retain_mut(|s| {
        if left == 0 {
            return false;
        }
        let n = s.text.chars().count();
        if n > left {
            s.text = s.text.chars().take(left).collect();
        }
        left = left.saturating_sub(n);
        true
    });
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
