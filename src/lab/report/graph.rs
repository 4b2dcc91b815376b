//! `sdss lab graph`: a lab's topology (its nodes around the switch, each link's
//! injected delay, jitter and loss, and the per-pair overrides) as Graphviz dot,
//! Mermaid, a standalone SVG or JSON; for a running lab, what its nodes measured
//! beside what was injected. The SVG star is also the HTML report's topology.

use std::f64::consts::PI;
use std::fmt::Write;

use maud::{html, Markup};
use serde_json::json;

use crate::lab::judge::delays::{PairResult, PairVerdict};
use crate::lab::plan::impairment::{describe_shape, Impairment};
use crate::lab::plan::shape::Loss;
use crate::lab::plan::{NodePlan, Plan};
use crate::units::format_duration;

use super::markup::fixed;
use super::Report;

/// How `lab graph` prints the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    #[default]
    Dot,
    /// A Mermaid flowchart (renders in Markdown on most forges).
    Mermaid,
    /// A standalone SVG picture.
    Svg,
    /// One JSON document for programs.
    Json,
}

/// The topology of `plan` in `format`; `measured` (a running lab's fresh report)
/// adds what the nodes measured beside what was injected.
pub fn render_graph(
    plan: &Plan,
    measured: Option<&Report>,
    format: GraphFormat,
) -> serde_json::Result<String> {
    Ok(match format {
        GraphFormat::Dot => dot(plan, measured),
        GraphFormat::Mermaid => mermaid(plan, measured),
        GraphFormat::Svg => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            out.push_str(&topology_svg(plan, measured).into_string());
            out.push('\n');
            out
        }
        GraphFormat::Json => {
            let mut out = serde_json::to_string_pretty(&graph_json(plan, measured))?;
            out.push('\n');
            out
        }
    })
}

/// A link's impairment as people write it: `5ms`, `5ms ±1ms 2% loss`, then
/// any other shape it has (`5ms, rate 10 Mbit/s`).
pub fn describe_link(link: &Impairment) -> String {
    let mut text = format_duration(link.delay);
    if !link.jitter.is_zero() {
        let _ = write!(text, " ±{}", format_duration(link.jitter));
    }
    if let Loss::Random(chance) = link.loss {
        if chance.is_some() && chance.correlation == 0.0 {
            let _ = write!(text, " {}% loss", round3(chance.probability * 100.0));
        }
    }
    for part in describe_shape(link) {
        let _ = write!(text, ", {part}");
    }
    text
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn ms(duration: std::time::Duration) -> f64 {
    round3(duration.as_secs_f64() * 1000.0)
}

/// A measured pair's label: `15ms -> 15.102ms` or `15ms -> not measured`.
fn measured_label(pair: &PairResult) -> String {
    let measured = pair
        .measured_ms
        .map_or("not measured".to_owned(), |m| format!("{m:.3}ms"));
    let verdict = match pair.verdict {
        PairVerdict::Pass => "",
        PairVerdict::Fail => " FAIL",
        PairVerdict::Skipped => " skipped",
    };
    format!("{}ms -> {measured}{verdict}", round3(pair.expected_ms))
}

/// A string inside Graphviz double quotes.
fn dot_quote(text: &str) -> String {
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

fn dot(plan: &Plan, measured: Option<&Report>) -> String {
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
        let _ = writeln!(
            out,
            "  {} [label={}];",
            dot_quote(&node.name),
            dot_quote(&format!("{}\n{}", node.name, node.address))
        );
    }
    for node in &plan.nodes {
        let _ = writeln!(
            out,
            "  {} -> switch [dir=none, label={}];",
            dot_quote(&node.name),
            dot_quote(&describe_link(&node.link))
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
    for pair in measured.map_or(&[][..], |r| &r.pairs) {
        let color = if pair.verdict == PairVerdict::Fail {
            "red"
        } else {
            "gray"
        };
        let _ = writeln!(
            out,
            "  {} -> {} [style=dotted, color={color}, constraint=false, label={}];",
            dot_quote(&pair.from),
            dot_quote(&pair.to),
            dot_quote(&measured_label(pair))
        );
    }
    out.push_str("}\n");
    out
}

/// Text inside a Mermaid `"..."` label.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => "#quot;".to_owned(),
            '<' => "#lt;".to_owned(),
            '>' => "#gt;".to_owned(),
            '#' => "#35;".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn mermaid(plan: &Plan, measured: Option<&Report>) -> String {
    // Nodes get positional ids (n0, n1, ...): any name is safe in a label.
    let id = |name: &str| {
        plan.nodes
            .iter()
            .position(|n| n.name == name)
            .map_or_else(|| "unknown".to_owned(), |i| format!("n{i}"))
    };
    let mut out = String::from("flowchart LR\n");
    let _ = writeln!(
        out,
        "  switch((\"switch {}\"))",
        mermaid_text(&plan.switch_netns)
    );
    for (i, node) in plan.nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  n{i}[\"{}<br/>{}\"]",
            mermaid_text(&node.name),
            node.address
        );
        let _ = writeln!(
            out,
            "  n{i} ---|\"{}\"| switch",
            mermaid_text(&describe_link(&node.link))
        );
    }
    for pair in plan.expected.iter().filter(|p| p.overridden) {
        let _ = writeln!(
            out,
            "  {} -.->|\"pair {}\"| {}",
            id(&pair.from),
            mermaid_text(&describe_link(&pair.impairment)),
            id(&pair.to)
        );
    }
    for pair in measured.map_or(&[][..], |r| &r.pairs) {
        let _ = writeln!(
            out,
            "  {} -.->|\"{}\"| {}",
            id(&pair.from),
            mermaid_text(&measured_label(pair)),
            id(&pair.to)
        );
    }
    out
}

fn graph_json(plan: &Plan, measured: Option<&Report>) -> serde_json::Value {
    let impairment = |link: &Impairment| {
        json!({
            "delay_ms": ms(link.delay),
            "jitter_ms": ms(link.jitter),
            "loss_percent": round3(link.loss.mean() * 100.0),
            "shape": describe_shape(link),
        })
    };
    let nodes: Vec<_> = plan
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "address": n.address.to_string(),
                "netns": n.netns,
                "link": impairment(&n.link),
            })
        })
        .collect();
    let overrides: Vec<_> = plan
        .expected
        .iter()
        .filter(|p| p.overridden)
        .map(|p| json!({"from": p.from, "to": p.to, "impairment": impairment(&p.impairment)}))
        .collect();
    let mut value = json!({
        "lab": plan.lab,
        "subnet": plan.subnet.to_string(),
        "switch": {"netns": plan.switch_netns},
        "nodes": nodes,
        "pair_overrides": overrides,
    });
    if let Some(report) = measured {
        let pairs: Vec<_> = report
            .pairs
            .iter()
            .map(|p| {
                json!({
                    "from": p.from,
                    "to": p.to,
                    "expected_ms": p.expected_ms,
                    "measured_ms": p.measured_ms,
                    "error_ms": p.error_ms,
                    "verdict": p.verdict,
                })
            })
            .collect();
        value["measured"] = json!(pairs);
    }
    value
}

/// Mean error (measured - expected, ms) of the measured pairs `node` is in.
fn mean_error(node: &NodePlan, report: &Report) -> Option<f64> {
    let errors: Vec<f64> = report
        .pairs
        .iter()
        .filter(|p| p.from == node.name || p.to == node.name)
        .filter_map(|p| p.error_ms)
        .collect();
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

/// The star: the switch in the middle, the nodes on a circle around it, each
/// link labelled with its injected impairment (and, with `measured`, the mean
/// error of the pairs through it). Labels are left out past 40 nodes.
pub fn topology_svg(plan: &Plan, measured: Option<&Report>) -> Markup {
    let count = plan.nodes.len().max(1);
    let size = if count > 40 { 720.0 } else { 560.0 };
    let center = size / 2.0;
    let radius = size / 2.0 - 60.0;
    let labelled = count <= 40;
    let node_r = if labelled { 20.0 } else { 6.0 };
    let position = |i: usize| {
        let angle = 2.0 * PI * i as f64 / count as f64 - PI / 2.0;
        (center + radius * angle.cos(), center + radius * angle.sin())
    };
    let link_label = |node: &NodePlan| {
        let mut label = describe_link(&node.link);
        if let Some(error) = measured.and_then(|r| mean_error(node, r)) {
            let _ = write!(label, " (mean error {error:+.2}ms)");
        }
        label
    };
    let c = fixed(center, 1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="topology" width=(size) height=(size) viewBox={ "0 0 " (size) " " (size) } font-family="sans-serif" font-size="12" {
            title { "lab " (plan.lab) " topology" }
            @for (i, node) in plan.nodes.iter().enumerate() {
                @let (x, y) = position(i);
                @let label = link_label(node);
                line class="link" x1=(c) y1=(c) x2=(fixed(x, 1)) y2=(fixed(y, 1)) stroke="#888" stroke-width="1.5" {
                    title { (node.name) " link: " (label) }
                }
                @if labelled {
                    // Alternate distances from the switch, so neighbouring labels do not collide.
                    @let along = if i % 2 == 0 { 0.5 } else { 0.72 };
                    text class="link-label" x=(fixed(center + (x - center) * along, 1)) y=(fixed(center + (y - center) * along, 1)) text-anchor="middle" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke" { (label) }
                }
            }
            g class="switch" {
                rect x=(fixed(center - 45.0, 1)) y=(fixed(center - 18.0, 1)) width="90" height="36" rx="8" fill="#555" {}
                text x=(c) y=(fixed(center + 4.0, 1)) text-anchor="middle" fill="#fff" { "switch" }
                title { (plan.switch_netns) }
            }
            @for (i, node) in plan.nodes.iter().enumerate() {
                @let (x, y) = position(i);
                g class="node" {
                    circle cx=(fixed(x, 1)) cy=(fixed(y, 1)) r=(node_r) fill="#2b6cb0" {}
                    title { (node.name) " " (node.address) }
                    @if labelled {
                        text x=(fixed(center + (x - center) * 1.16, 1)) y=(fixed(center + (y - center) * 1.16 + 4.0, 1)) text-anchor="middle" font-weight="bold" { (node.name) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: &str = "name = \"five\"\nsubnet = \"198.18.5.0/24\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n[[node]]\nname = \"b\"\ndelay = \"5ms\"\njitter = \"1ms\"\n[[node]]\nname = \"c\"\ndelay = \"10ms\"\n[[node]]\nname = \"d\"\ndelay = \"20ms\"\n[[node]]\nname = \"e\"\ndelay = \"40ms\"\nloss = 0.02\n";

    fn five() -> Plan {
        Plan::from_text(FIVE)
    }

    #[test]
    fn dot_has_the_switch_every_node_and_every_link() {
        let text = render_graph(&five(), None, GraphFormat::Dot).unwrap();
        assert!(text.starts_with("digraph \"five\" {\n"), "{text}");
        assert!(text.trim_end().ends_with('}'), "{text}");
        assert!(text.contains("  switch [shape=ellipse"), "{text}");
        assert!(
            text.contains("\"a\" -> switch [dir=none, label=\"1ms\"];"),
            "{text}"
        );
        assert!(text.contains("label=\"5ms ±1ms\""), "{text}");
        assert!(text.contains("label=\"40ms 2% loss\""), "{text}");
        assert!(text.contains("\"e\" [label=\"e\\n198.18.5.5\"];"), "{text}");
        assert_eq!(text.matches(" -> switch ").count(), 5);
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn mermaid_is_a_flowchart_with_positional_ids() {
        let text = render_graph(&five(), None, GraphFormat::Mermaid).unwrap();
        assert!(text.starts_with("flowchart LR\n"), "{text}");
        assert!(text.contains("  n0[\"a<br/>198.18.5.1\"]"), "{text}");
        assert!(text.contains("  n4 ---|\"40ms 2% loss\"| switch"), "{text}");
        assert_eq!(text.matches("---|").count(), 5);
    }

    #[test]
    fn pair_overrides_and_measurements_are_directed_edges() {
        let plan = Plan::from_text(&format!(
            "{FIVE}[[pair]]\nfrom = \"a\"\nto = \"b\"\ndelay = \"7ms\"\n"
        ));
        let mut report = super::super::fixtures::report_for(&plan);
        report.pairs.truncate(1);
        let dot = render_graph(&plan, Some(&report), GraphFormat::Dot).unwrap();
        assert!(
            dot.contains("\"a\" -> \"b\" [style=dashed, constraint=false, label=\"pair 7ms\"];"),
            "{dot}"
        );
        assert!(dot.contains("style=dotted"), "{dot}");
        let mermaid = render_graph(&plan, Some(&report), GraphFormat::Mermaid).unwrap();
        assert!(mermaid.contains("n0 -.->|\"pair 7ms\"| n1"), "{mermaid}");
        let json: serde_json::Value =
            serde_json::from_str(&render_graph(&plan, Some(&report), GraphFormat::Json).unwrap())
                .unwrap();
        assert_eq!(json["pair_overrides"][0]["impairment"]["delay_ms"], 7.0);
        assert_eq!(json["nodes"][1]["link"]["jitter_ms"], 1.0);
        assert_eq!(json["measured"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn names_are_escaped_in_every_format() {
        assert_eq!(dot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(
            mermaid_text("<a \"b\"> #1"),
            "#lt;a #quot;b#quot;#gt; #35;1"
        );
        let mut plan = five();
        plan.lab = "<x&y>".to_owned();
        plan.nodes[0].name = "<script>".to_owned();
        let svg = render_graph(&plan, None, GraphFormat::Svg).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("lab &lt;x&amp;y&gt; topology"), "{svg}");
    }

    #[test]
    fn the_svg_star_has_the_switch_and_one_circle_and_link_per_node() {
        let svg = topology_svg(&five(), None).into_string();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("<line class=\"link\"").count(), 5);
        assert!(svg.contains(">switch</text>"));
        assert!(svg.contains(">40ms 2% loss</text>"), "{svg}");
    }
}
