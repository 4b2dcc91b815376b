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
use crate::lab::plan::{NodePlan, Plan};

use super::markup::fixed;
pub use super::star::describe_link;
use super::star::{mean_error, ms, round3, NodeVerdict};
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
        GraphFormat::Dot => super::dot::dot(plan, measured),
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
        let class = measured
            .map(|r| format!(":::{}", NodeVerdict::of(&node.name, r).class()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  n{i}[\"{}<br/>{}\"]{class}",
            mermaid_text(&node.name),
            node.address
        );
        let mut label = mermaid_text(&describe_link(&node.link));
        if let Some(error) = measured.and_then(|r| mean_error(node, r)) {
            let _ = write!(label, "<br/>mean error {error:+.2}ms");
        }
        let _ = writeln!(out, "  n{i} ---|\"{label}\"| switch");
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
    // What was measured: a node's colour and its link's mean error, and an
    // edge only for a pair that failed (an edge per ordered pair is 20
    // overlapping labels for five nodes).
    if let Some(report) = measured {
        for pair in report
            .pairs
            .iter()
            .filter(|p| p.verdict == PairVerdict::Fail)
        {
            let _ = writeln!(
                out,
                "  {} -.->|\"{}\"| {}",
                id(&pair.from),
                mermaid_text(&measured_label(pair)),
                id(&pair.to)
            );
        }
        for verdict in NodeVerdict::ALL {
            let _ = writeln!(
                out,
                "  classDef {} fill:{}",
                verdict.class(),
                verdict.fill()
            );
        }
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

/// Width of `text` in pixels at `size`, as a sans-serif font sets it at
/// most (a wide estimate, so that nothing is cut).
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// The box `[x0, y0, x1, y1]` grown to hold `other`.
fn grow(extent: &mut [f64; 4], other: [f64; 4]) {
    extent[0] = extent[0].min(other[0]);
    extent[1] = extent[1].min(other[1]);
    extent[2] = extent[2].max(other[2]);
    extent[3] = extent[3].max(other[3]);
}

/// The star: the switch in the middle, the nodes on a circle around it, each
/// link labelled along it with its injected impairment (and, with
/// `measured`, the mean error of the pairs through it), each node coloured by
/// its pairs' verdicts. The picture's box is computed from its labels, so
/// none is cut at an edge. Labels are left out past 40 nodes.
pub fn topology_svg(plan: &Plan, measured: Option<&Report>) -> Markup {
    let count = plan.nodes.len().max(1);
    let size = if count > 40 { 720.0 } else { 560.0 };
    let center = size / 2.0;
    let radius = size / 2.0 - 60.0;
    let labelled = count <= 40;
    let node_r = if labelled { 20.0 } else { 6.0 };
    let (font, small) = (12.0, 10.0);
    let position = |i: usize| {
        let angle = 2.0 * PI * i as f64 / count as f64 - PI / 2.0;
        (center + radius * angle.cos(), center + radius * angle.sin())
    };
    let error = |node: &NodePlan| measured.and_then(|r| mean_error(node, r));
    // Link labels run along their link, upright, centred between the
    // switch's box and the node's circle.
    let along = |i: usize| {
        let angle = 2.0 * PI * i as f64 / count as f64 - PI / 2.0;
        let mut degrees = angle.to_degrees().rem_euclid(360.0);
        if (90.0..270.0).contains(&degrees) {
            degrees -= 180.0;
        }
        let middle = (50.0 + radius - node_r) / 2.0;
        (
            center + middle * angle.cos(),
            center + middle * angle.sin(),
            degrees,
        )
    };
    let name_at = |i: usize| {
        let (x, y) = position(i);
        let out = (node_r + 8.0) / radius;
        let (dx, dy) = ((x - center) * out, (y - center) * out);
        // Left of the star, a name ends at its node; right, it starts there.
        let anchor = if dx < -1.0 {
            "end"
        } else if dx > 1.0 {
            "start"
        } else {
            "middle"
        };
        (x + dx, y + dy + 4.0, anchor)
    };
    let mut extent = [center - 50.0, center - 20.0, center + 50.0, center + 20.0];
    for (i, node) in plan.nodes.iter().enumerate() {
        let (x, y) = position(i);
        grow(
            &mut extent,
            [x - node_r, y - node_r, x + node_r, y + node_r],
        );
        if labelled {
            let (nx, ny, anchor) = name_at(i);
            let w = text_width(&node.name, font);
            let x0 = match anchor {
                "end" => nx - w,
                "start" => nx,
                _ => nx - w / 2.0,
            };
            grow(&mut extent, [x0, ny - font, x0 + w, ny + 4.0]);
            // A rotated label stays within its half length of its middle.
            let (lx, ly, _) = along(i);
            let half = text_width(&describe_link(&node.link), font) / 2.0 + small;
            grow(&mut extent, [lx - half, ly - half, lx + half, ly + half]);
        }
    }
    let legend_y = extent[3] + 18.0;
    if measured.is_some() {
        let legend = [extent[0], extent[1], extent[0] + 420.0, legend_y + 6.0];
        grow(&mut extent, legend);
    }
    let pad = 8.0;
    let (x0, y0) = (extent[0] - pad, extent[1] - pad);
    let (width, height) = (
        extent[2] - extent[0] + 2.0 * pad,
        extent[3] - extent[1] + 2.0 * pad,
    );
    let c = fixed(center, 1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="topology" width=(fixed(width, 0)) height=(fixed(height, 0)) viewBox={ (fixed(x0, 1)) " " (fixed(y0, 1)) " " (fixed(width, 1)) " " (fixed(height, 1)) } font-family="sans-serif" font-size=(font) {
            title { "lab " (plan.lab) " topology" }
            @for (i, node) in plan.nodes.iter().enumerate() {
                @let (x, y) = position(i);
                @let label = describe_link(&node.link);
                line class="link" x1=(c) y1=(c) x2=(fixed(x, 1)) y2=(fixed(y, 1)) stroke="#888" stroke-width="1.5" {
                    title { (node.name) " link: " (label) }
                }
                @if labelled {
                    @let (lx, ly, degrees) = along(i);
                    g transform={ "translate(" (fixed(lx, 1)) "," (fixed(ly, 1)) ") rotate(" (fixed(degrees, 1)) ")" } {
                        text class="link-label" y="-4" text-anchor="middle" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke" { (label) }
                        @if let Some(error) = error(node) {
                            text class="link-error" y=(fixed(small + 2.0, 1)) font-size=(small) text-anchor="middle" fill="#555" stroke="#fff" stroke-width="3" paint-order="stroke" { "mean error " (format!("{error:+.2}")) " ms" }
                        }
                    }
                }
            }
            g class="switch" {
                rect x=(fixed(center - 45.0, 1)) y=(fixed(center - 18.0, 1)) width="90" height="36" rx="8" fill="#555" {}
                text x=(c) y=(fixed(center + 4.0, 1)) text-anchor="middle" fill="#fff" { "switch" }
                title { (plan.switch_netns) }
            }
            @for (i, node) in plan.nodes.iter().enumerate() {
                @let (x, y) = position(i);
                @let verdict = measured.map(|r| NodeVerdict::of(&node.name, r));
                g class="node" {
                    circle cx=(fixed(x, 1)) cy=(fixed(y, 1)) r=(node_r) fill=(verdict.map_or("#2b6cb0", NodeVerdict::colour)) {}
                    title {
                        (node.name) " " (node.address)
                        @if let Some(verdict) = verdict { ": " (verdict.word()) }
                    }
                    @if labelled {
                        @let (nx, ny, anchor) = name_at(i);
                        text x=(fixed(nx, 1)) y=(fixed(ny, 1)) text-anchor=(anchor) font-weight="bold" { (node.name) }
                    }
                }
            }
            @if measured.is_some() {
                g class="legend" font-size=(small) {
                    @for (k, verdict) in NodeVerdict::ALL.into_iter().enumerate() {
                        @let lx = extent[0] + k as f64 * 130.0;
                        circle cx=(fixed(lx + 6.0, 1)) cy=(fixed(legend_y - 3.0, 1)) r="5" fill=(verdict.colour()) {}
                        text x=(fixed(lx + 15.0, 1)) y=(fixed(legend_y, 1)) { "node: " (verdict.word()) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dot::{dot_html, dot_quote};
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
        assert!(
            !dot.contains("style=dotted"),
            "no label per ordered pair: {dot}"
        );
        assert!(
            dot.contains("  measured [shape=plaintext, label=<<table"),
            "{dot}"
        );
        assert!(dot.contains("19 of 20 pass"), "the summary's count: {dot}");
        assert!(dot.contains("mean error +0.10ms"), "{dot}");
        assert!(dot.contains("fillcolor=\"#c6f6d5\""), "{dot}");
        let mermaid = render_graph(&plan, Some(&report), GraphFormat::Mermaid).unwrap();
        assert!(mermaid.contains("n0 -.->|\"pair 7ms\"| n1"), "{mermaid}");
        assert!(mermaid.contains(":::pass"), "{mermaid}");
        assert!(mermaid.contains("<br/>mean error +0.10ms"), "{mermaid}");
        assert_eq!(
            mermaid.matches("-.->").count(),
            1,
            "the pair override alone: no edge per passing pair: {mermaid}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_graph(&plan, Some(&report), GraphFormat::Json).unwrap())
                .unwrap();
        assert_eq!(json["pair_overrides"][0]["impairment"]["delay_ms"], 7.0);
        assert_eq!(json["nodes"][1]["link"]["jitter_ms"], 1.0);
        assert_eq!(json["measured"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn no_name_is_cut_at_the_edge_and_nodes_take_their_verdicts_colour() {
        // Four nodes: the last sits left of the switch, with a long name.
        let long = "grader_with_a_long_name";
        let plan = Plan::from_text(&format!(
            "name = \"g\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n[[node]]\nname = \"{long}\"\n"
        ));
        let mut report = super::super::fixtures::report_for(&plan);
        report.pairs.retain(|p| p.from != long && p.to != long);
        report.pairs.last_mut().unwrap().verdict = PairVerdict::Fail;
        let svg = topology_svg(&plan, Some(&report)).into_string();
        let view: Vec<f64> = svg
            .split("viewBox=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        // The name ends 28 px left of its node at x = 60.
        assert!(view[0] <= 32.0 - text_width(long, 12.0), "{view:?}");
        assert!(svg.contains(&format!(
            "text-anchor=\"end\" font-weight=\"bold\">{long}</text>"
        )));
        let fills = |colour: &str| svg.matches(&format!("r=\"20\" fill=\"{colour}\"")).count();
        assert_eq!(fills(NodeVerdict::Unmeasured.colour()), 1, "{svg}");
        assert_eq!(fills(NodeVerdict::Fail.colour()), 2, "{svg}");
        assert_eq!(fills(NodeVerdict::Pass.colour()), 1, "{svg}");
        let dot = render_graph(&plan, Some(&report), GraphFormat::Dot).unwrap();
        assert_eq!(dot.matches("<td bgcolor=\"#fed7d7\">").count(), 1, "{dot}");
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
        assert_eq!(dot_html("<b>&\""), "&lt;b&gt;&amp;&quot;");
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
