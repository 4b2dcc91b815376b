//! `sdss lab graph --format dot`: the star for Graphviz; a running lab's
//! nodes filled by their pairs' verdicts, each link's label with the mean
//! error through it, and the measured delays as one matrix beside the star.

use std::fmt::Write;

use crate::lab::judge::delays::PairVerdict;
use crate::lab::plan::Plan;

use super::star::{describe_link, mean_error, NodeVerdict};
use super::Report;

/// A string inside Graphviz double quotes.
pub(super) fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn dot(plan: &Plan, measured: Option<&Report>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&plan.lab));
    let _ = writeln!(
        out,
        "  label={};\n  layout=neato;\n  overlap=false;\n  node [shape=box, style=rounded];",
        dot_quote(&format!("lab {} on {}", plan.lab, plan.subnet))
    );
    let _ = writeln!(
        out,
        "  switch [shape=ellipse, label={}];",
        dot_quote(&format!("switch\n{}", plan.switch_netns))
    );
    for node in &plan.nodes {
        let fill = measured
            .map(|r| {
                let fill = NodeVerdict::of(&node.name, r).fill();
                format!(", style=\"rounded,filled\", fillcolor=\"{fill}\"")
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} [label={}{fill}];",
            dot_quote(&node.name),
            dot_quote(&format!("{}\n{}", node.name, node.address))
        );
    }
    for node in &plan.nodes {
        let mut label = describe_link(&node.link);
        if let Some(error) = measured.and_then(|r| mean_error(node, r)) {
            let _ = write!(label, "\nmean error {error:+.2}ms");
        }
        let _ = writeln!(
            out,
            "  {} -> switch [dir=none, label={}];",
            dot_quote(&node.name),
            dot_quote(&label)
        );
    }
    for pair in plan.expected.iter().filter(|p| p.overridden) {
        let _ = writeln!(
            out,
            "  {} -> {} [style=dashed, constraint=false, label={}];",
            dot_quote(&pair.from),
            dot_quote(&pair.to),
            dot_quote(&format!("pair {}", describe_link(&pair.impairment)))
        );
    }
    // What was measured: one matrix beside the star, not a label per
    // ordered pair (20 overlapping labels for five nodes).
    if let Some(report) = measured {
        out.push_str(&dot_matrix(plan, report));
    }
    out.push_str("}\n");
    out
}

/// Nodes up to which the DOT graph of a running lab has its matrix of pairs.
const DOT_MATRIX: usize = 16;

/// Text inside a Graphviz HTML-like label.
pub(super) fn dot_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The measured delays as one table node beside the star (row: sender,
/// column: receiver, ms; failed cells red), or, past [`DOT_MATRIX`] nodes,
/// a count in a note.
fn dot_matrix(plan: &Plan, report: &Report) -> String {
    let s = &report.summary;
    let names: Vec<&str> = plan
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| report.pairs.iter().any(|p| p.from == *n || p.to == *n))
        .collect();
    if names.len() > DOT_MATRIX {
        return format!(
            "  measured [shape=note, label={}];\n",
            dot_quote(&format!(
                "measured: {} of {} pairs pass (sdss lab verify lists them)",
                s.passed, s.pairs
            ))
        );
    }
    let mut table =
        String::from("<table border=\"0\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"3\">");
    let _ = write!(
        table,
        "<tr><td colspan=\"{}\"><b>measured ms (row: sender, column: receiver): {} of {} pass</b></td></tr><tr><td></td>",
        names.len() + 1,
        s.passed,
        s.pairs
    );
    for name in &names {
        let _ = write!(table, "<td><b>{}</b></td>", dot_html(name));
    }
    table.push_str("</tr>");
    for from in &names {
        let _ = write!(table, "<tr><td><b>{}</b></td>", dot_html(from));
        for to in &names {
            let pair = report.pairs.iter().find(|p| p.from == *from && p.to == *to);
            let (text, colour) = match pair {
                None => (String::new(), ""),
                Some(p) => (
                    p.measured_ms.map_or("-".to_owned(), |m| format!("{m:.2}")),
                    if p.verdict == PairVerdict::Fail {
                        " bgcolor=\"#fed7d7\""
                    } else {
                        ""
                    },
                ),
            };
            let _ = write!(table, "<td{colour}>{text}</td>");
        }
        table.push_str("</tr>");
    }
    table.push_str("</table>");
    format!("  measured [shape=plaintext, label=<{table}>];\n")
}
