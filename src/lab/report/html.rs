//! `--html FILE`: the report as one self-contained page (inline CSS and SVG,
//! no script, nothing fetched): the topology, heat maps of the pairs, each
//! pair's samples over time, the pairs' table, the probed links with their delay
//! distributions, the timeline and the checklists.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::lab::judge::delays::{PairVerdict, SPREAD_FLOOR_MS, SPREAD_TOLERANCES};
use crate::lab::judge::timeline::TimelineVerdicts;
use crate::lab::judge::{self, Checklist};
use crate::lab::plan::Plan;
use crate::units::format_ms;

use super::graph::topology_svg;
use super::links::links_section;
use super::plots::{heat_map, phase_map, plotted, Quantity};
use super::time_plot::{hatch_defs, samples_plot, Timing};
use super::{emulator_lines, Report};

/// Pairs listed in the table, at most (the heat maps show all).
const LISTED_PAIRS: usize = 100;

/// The page's stylesheet, shared with the class page: a constant, so the one
/// text put in a page unescaped (CSS is no HTML text).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}\
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}\
.pass{color:#276749;font-weight:bold}.fail{color:#c53030;font-weight:bold}.warn{color:#b7791f;font-weight:bold}\
.maps{display:flex;flex-wrap:wrap;gap:24px}.maps figure{margin:0}figcaption{font-weight:bold;margin-bottom:4px}\
.multiples{display:flex;flex-wrap:wrap;gap:12px}.multiples figure{margin:0;border:1px solid #eee;padding:4px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.evidence{color:#555;font-size:90%}.note{color:#555}code{background:#f4f4f4;padding:0 3px}";

/// The page for `report`; `plan` is the lab as it was injected (its links).
/// Every value goes through `maud`, which escapes it.
pub fn render_html(report: &Report, plan: &Plan) -> String {
    let ok = report.ok();
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "sdss lab " (report.lab) " report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (hatch_defs())
                "\n"
                h1 id="title" {
                    "lab " (report.lab) " "
                    span class=(if ok { "pass" } else { "fail" }) id="verdict" { (if ok { "PASS" } else { "FAIL" }) }
                }
                "\n"
                (summary(report))
                h2 { "Topology" }
                p class="note" {
                    (plan.nodes.len()) " nodes on " (plan.subnet) ", each behind its own link to the switch; a frame from B to A crosses B's link then A's. Beside each link's delay, the mean error of the measured pairs through it."
                }
                "\n"
                section id="topology" { (topology_svg(plan, Some(report))) }
                "\n"
                (heat_maps(report, plan))
                (samples(report, plan))
                (pairs_table(report))
                @if let Some(links) = &report.links {
                    (links_section(links))
                }
                @if let Some(timeline) = &report.timeline {
                    (render_timeline(timeline))
                    (phase_maps(timeline, &measured_nodes(report, plan)))
                }
                @if !report.grading.is_empty() {
                    h2 { "Grading" }
                    "\n"
                    @for checklist in &report.grading {
                        (render_checklist(checklist))
                    }
                }
            }
        }
        "\n"
    };
    page.into_string()
}

fn summary(report: &Report) -> Markup {
    let netem = report
        .netem
        .as_ref()
        .map_or("not probed".to_owned(), ToString::to_string);
    let s = &report.summary;
    let emulator = report
        .emulator
        .iter()
        .flat_map(|c| emulator_lines(c, s.failed > 0));
    html! {
        p id="summary" {
            (s.pairs) " pairs: "
            span class="pass" { (s.passed) " pass" } ", "
            span class=(if s.failed > 0 { "fail" } else { "note" }) { (s.failed) " fail" }
            ", " (s.skipped) " skipped. Delay backend "
            b { (report.backend) }
            "; netem " (netem) ". Graded on the median of the last " (report.samples)
            " samples after " (report.warmup) " warm-up, tolerance max(" (format_ms(report.tolerance_ms))
            " ms, " (format_ms(report.tolerance_percent)) "%), " (format!("{:.1}", report.elapsed_s))
            " s after the nodes started"
            @if !report.converged { " (time limit reached)" }
            "."
        }
        "\n"
        p class="note" id="made" {
            "Made by sdss " (report.version) " at " (report.created) "."
        }
        "\n"
        @if let Some(note) = &report.backend_note {
            p class="note" { "note: " (note) }
            "\n"
        }
        @for line in emulator {
            p class="note" { (line) }
            "\n"
        }
        @if let Some(aside) = &report.set_aside {
            p class="note" { (aside.line()) }
            "\n"
        }
    }
}

fn heat_maps(report: &Report, plan: &Plan) -> Markup {
    let names = measured_nodes(report, plan);
    let maps = [
        (Quantity::Expected, "expected (injected)"),
        (Quantity::Measured, "measured (median)"),
        (Quantity::Error, "error (measured - expected)"),
    ];
    html! {
        h2 { "Delays per ordered pair" }
        p class="note" {
            "Row: sender B; column: receiver A, who measures B -> A. One-way delays in ms."
        }
        "\n"
        div class="maps" {
            @for (quantity, caption) in maps {
                figure {
                    figcaption { (caption) }
                    (heat_map(quantity, &names, &report.pairs))
                }
            }
        }
        "\n"
    }
}

/// The nodes in some measured pair, in the plan's order: a graded lab's
/// grader is no pair, and would be an empty row and column.
fn measured_nodes<'a>(report: &Report, plan: &'a Plan) -> Vec<&'a str> {
    plan.nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| report.pairs.iter().any(|p| p.from == *n || p.to == *n))
        .collect()
}

/// One small heat map per phase of the timeline.
fn phase_maps(timeline: &TimelineVerdicts, names: &[&str]) -> Markup {
    let phases: Vec<_> = timeline
        .phases
        .iter()
        .filter(|p| !p.cells.is_empty())
        .collect();
    if phases.is_empty() {
        return html! {};
    }
    html! {
        h3 { "Delays per phase" }
        p class="note" {
            "Each phase's median in ms, coloured by its error against the delay expected then (red above, blue below, outlined beyond the tolerance); hatched: cut, partitioned or stopped; grey: too few samples."
        }
        div class="maps" id="phases" {
            @for phase in phases {
                figure {
                    figcaption { "phase " (phase.phase) ": after " (phase.began) }
                    (phase_map(names, phase))
                }
            }
        }
        "\n"
    }
}

fn samples(report: &Report, plan: &Plan) -> Markup {
    let shown = plotted(&report.pairs);
    if shown.is_empty() {
        return html! {};
    }
    let with_samples = report.pairs.iter().filter(|p| !p.series.is_empty()).count();
    let which = if shown.len() == with_samples {
        "every measured pair".to_owned()
    } else {
        format!(
            "the {} worst of {with_samples} measured pairs (failed first, then by error over tolerance)",
            shown.len()
        )
    };
    let timing = Timing::new(report, plan);
    html! {
        h2 { "Samples over time" }
        p class="note" {
            (which) ": each sample in ms against seconds after the nodes started (hollow: warm-up; red: outside the tolerance), the expected delay dashed and its tolerance green, following the timeline; its events are vertical lines, its phases shaded in turn, and a pair cut or stopped hatched."
        }
        "\n"
        div class="multiples" id="samples" {
            @for pair in shown {
                figure {
                    figcaption {
                        (pair.from) " -> " (pair.to) " "
                        span class=(if pair.verdict == PairVerdict::Fail { "fail" } else { "pass" }) {
                            @match pair.verdict {
                                PairVerdict::Pass => { "pass" }
                                PairVerdict::Fail => { "FAIL" }
                                PairVerdict::Skipped => { "skipped" }
                            }
                        }
                    }
                    (samples_plot(pair, report.warmup as usize, &timing))
                }
            }
        }
        "\n"
    }
}

/// Every pair with its median, p95 and maximum, when there are at most
/// [`LISTED_PAIRS`]; else the pairs that did not pass or spread, as many.
fn pairs_table(report: &Report) -> Markup {
    let all = report.pairs.len() <= LISTED_PAIRS;
    let listed: Vec<_> = report
        .pairs
        .iter()
        .filter(|p| all || p.verdict != PairVerdict::Pass || p.spread)
        .collect();
    if listed.is_empty() {
        return html! {};
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    html! {
        h2 { @if all { "Pairs" } @else { "Pairs that did not pass or spread" } }
        p class="note" {
            "Delays in ms. SPREAD: the median passes, but the p95 is more than "
            (SPREAD_TOLERANCES) " tolerances and " (SPREAD_FLOOR_MS) " ms (plus twice the injected jitter) from the expected delay."
        }
        table id="pairs" {
            tr {
                th { "from" } th { "to" } th { "expected" } th { "median" } th { "p95" } th { "max" }
                th { "error" } th { "tolerance" } th { "verdict" } th { "why" }
            }
            "\n"
            @for pair in listed.iter().take(LISTED_PAIRS) {
                tr {
                    td { (pair.from) }
                    td { (pair.to) }
                    td { (format!("{:.3}", pair.expected_ms)) }
                    td { (ms(pair.measured_ms)) }
                    td { (ms(pair.p95_ms)) }
                    td { (ms(pair.max_ms)) }
                    td { (pair.error_ms.map_or("-".to_owned(), |e| format!("{e:+.3}"))) }
                    td { (format!("{:.3}", pair.tolerance_ms)) }
                    td {
                        @match pair.verdict {
                            PairVerdict::Pass => { span class="pass" { "pass" } }
                            PairVerdict::Fail => { span class="fail" { "FAIL" } }
                            PairVerdict::Skipped => { span class="note" { "skipped" } }
                        }
                        @if pair.spread { " " span class="warn spread" { "SPREAD" } }
                    }
                    td { (pair.reason.as_deref().unwrap_or("")) }
                }
                "\n"
            }
        }
        "\n"
        @if listed.len() > LISTED_PAIRS {
            p class="note" {
                "and " (listed.len() - LISTED_PAIRS) " more (the JSON report lists them all)"
            }
            "\n"
        }
    }
}

fn pass_fail(ok: bool) -> Markup {
    html! {
        @if ok {
            span class="pass" { "pass" }
        } @else {
            span class="fail" { "FAIL" }
        }
    }
}

/// Lines of text, one under the other.
fn lines(texts: &[String]) -> Markup {
    html! {
        @for (i, text) in texts.iter().enumerate() {
            @if i > 0 { br; }
            (text)
        }
    }
}

fn render_timeline(timeline: &TimelineVerdicts) -> Markup {
    html! {
        h2 { "Timeline " (pass_fail(timeline.ok())) }
        p class="note" { "The heat maps are the phase before the first event." }
        table id="timeline" {
            tr { th { "at" } th { "event" } th { "outcome" } }
            "\n"
            @for played in &timeline.played {
                tr {
                    td { "+" (format!("{:.1}", played.at_s)) " s" }
                    td { (played.what) }
                    td {
                        @match (&played.error, played.took_ms) {
                            (Some(error), _) => { span class="fail" { "FAILED" } ": " (error) }
                            (None, Some(ms)) => { "links changed in " (format!("{ms:.1}")) " ms" }
                            (None, None) => {}
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
        table {
            tr { th { "phase" } th { "after" } th { "pairs within tolerance" } th { "failures" } }
            @for phase in &timeline.phases {
                tr {
                    td { (phase.phase) " " (pass_fail(phase.failures.is_empty())) }
                    td { (phase.began) }
                    td {
                        @if phase.judged == 0 { "none to judge" } @else { (phase.passed) " of " (phase.judged) }
                    }
                    td class="evidence" { (lines(&phase.failures)) }
                }
                "\n"
            }
        }
        "\n"
        @if !timeline.expects.is_empty() {
        table {
            tr { th { "expectation" } th { "verdict" } th { "evidence" } }
            @for expect in &timeline.expects {
                tr {
                    td { (expect.what) }
                    td { (pass_fail(expect.held)) }
                    td class="evidence" { (lines(&expect.evidence)) }
                }
                "\n"
            }
        }
        "\n"
        }
    }
}

fn render_checklist(checklist: &Checklist) -> Markup {
    html! {
        h3 {
            "graded node " (checklist.node) " (" code { (checklist.command.join(" ")) } "): "
            (format!("{:.1}", checklist.score)) "%, " (checklist.passed) " pass, "
            (checklist.warned) " warn, " (checklist.failed) " fail"
        }
        table class="checklist" {
            tr { th { "verdict" } th { "check" } th { "requirement" } th { "evidence" } }
            "\n"
            @for check in &checklist.checks {
                tr {
                    td {
                        @match check.verdict {
                            judge::Verdict::Pass => { span class="pass" { "pass" } }
                            judge::Verdict::Warn => { span class="warn" { "WARN" } }
                            judge::Verdict::Fail => { span class="fail" { "FAIL" } }
                        }
                    }
                    td { (check.id) }
                    td { (check.title) }
                    td class="evidence" { (check.evidence) }
                }
                "\n"
            }
        }
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::super::fixtures::report_for;
    use super::*;
    use crate::lab::judge::{Check, Checklist};

    fn five() -> Plan {
        let mut text = "name = \"five\"\nsubnet = \"198.18.5.0/24\"\n".to_owned();
        for (name, delay) in [("a", 1), ("b", 5), ("c", 10), ("d", 20), ("e", 40)] {
            let _ = write!(text, "[[node]]\nname = \"{name}\"\ndelay = \"{delay}ms\"\n");
        }
        Plan::from_text(&text)
    }

    #[test]
    fn a_five_node_page_has_every_part() {
        let plan = five();
        let page = render_html(&report_for(&plan), &plan);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains(
            "<h1 id=\"title\">lab five <span class=\"fail\" id=\"verdict\">FAIL</span></h1>"
        ));
        assert!(page.contains("<section id=\"topology\"><svg"));
        assert_eq!(
            page.matches("<g class=\"node\"><circle").count(),
            5,
            "five nodes in the star"
        );
        for map in ["heatmap expected", "heatmap measured", "heatmap error"] {
            assert!(page.contains(map), "{map}");
        }
        assert_eq!(page.matches("<rect class=\"cell\"").count(), 3 * 20);
        assert_eq!(
            page.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"samples\"")
                .count(),
            20
        );
        assert!(
            page.contains("off by &lt;9 ms&gt; &amp; more"),
            "reasons are escaped"
        );
        assert!(!page.contains("<script"), "no script");
        assert!(
            !page.contains("http://")
                || page.matches("http://").count()
                    == page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
            "nothing fetched"
        );
        assert!(!page.contains("id=\"timeline\""));
    }

    #[test]
    fn timelines_and_checklists_are_rendered_escaped() {
        use crate::lab::judge::timeline::{ExpectVerdict, PhaseCell, PhaseDelays};
        use crate::lab::scenario::played::Played;
        let plan = five();
        let mut report = report_for(&plan);
        report.timeline = Some(TimelineVerdicts {
            played: vec![Played {
                event: 0,
                what: "kill <c>".to_owned(),
                at_s: 5.0,
                took_ms: None,
                error: None,
            }],
            expects: vec![ExpectVerdict {
                what: "a forgets c".to_owned(),
                held: true,
                evidence: vec!["a removed c at 6.1 s".to_owned()],
            }],
            phases: vec![PhaseDelays {
                phase: 1,
                began: "kill <c> at 5s".to_owned(),
                judged: 1,
                passed: 1,
                failures: Vec::new(),
                cells: vec![
                    PhaseCell {
                        from: "a".to_owned(),
                        to: "b".to_owned(),
                        expected_ms: Some(6.0),
                        measured_ms: Some(6.02),
                        tolerance_ms: Some(0.5),
                    },
                    PhaseCell {
                        from: "c".to_owned(),
                        to: "a".to_owned(),
                        expected_ms: None,
                        measured_ms: None,
                        tolerance_ms: None,
                    },
                ],
            }],
        });
        report.grading = vec![Checklist::new(
            "s<1>".to_owned(),
            vec!["python3".to_owned(), "x.py".to_owned()],
            vec![Check {
                id: "server.encoding".to_owned(),
                title: "answers in !d".to_owned(),
                verdict: judge::Verdict::Warn,
                evidence: "sent \"1.0\" & closed".to_owned(),
            }],
        )];
        let page = render_html(&report, &plan);
        assert!(page.contains("id=\"timeline\""));
        assert!(page.contains("kill &lt;c&gt;"));
        assert!(page.contains("phase 1: after kill &lt;c&gt; at 5s"));
        assert_eq!(page.matches("class=\"phasemap\"").count(), 1);
        assert!(page.contains(">6.0</text>"), "the phase's median");
        assert!(
            page.contains("fill=\"url(#cut-hatch) #fbe3e3\""),
            "a cut pair hatched"
        );
        assert_eq!(page.matches("<pattern id=\"cut-hatch\"").count(), 1);
        assert!(page.contains("a removed c at 6.1 s"));
        assert!(page.contains("graded node s&lt;1&gt;"));
        assert!(page.contains("sent &quot;1.0&quot; &amp; closed"));
        assert!(page.contains("<span class=\"warn\">WARN</span>"));
    }

    #[test]
    fn a_node_in_no_pair_has_no_row_and_a_spread_pair_is_flagged() {
        // A graded lab's grader measures no pair and is measured by none.
        let plan = five();
        let mut report = report_for(&plan);
        report.pairs.retain(|p| p.from != "e" && p.to != "e");
        report.pairs[0].spread = true;
        report.pairs[0].p95_ms = Some(23.8);
        report.timeline = Some(TimelineVerdicts::default());
        let page = render_html(&report, &plan);
        assert_eq!(page.matches("<rect class=\"cell\"").count(), 3 * 12);
        assert!(!page.contains("dominant-baseline=\"middle\">e</text>"));
        assert!(page.contains("<th>p95</th><th>max</th>"));
        assert!(page.contains("<td>23.800</td>"));
        assert_eq!(
            page.matches("class=\"warn spread\">SPREAD</span>").count(),
            1
        );
        assert!(page.contains("Made by sdss 0.1.0 at 2026-12-04T20:00:00Z."));
        assert!(!page.contains("expectation"), "no empty expectations table");
    }

    #[test]
    fn a_hundred_node_page_stays_bounded() {
        let mut text = "name = \"big\"\n".to_owned();
        for i in 0..100 {
            let _ = write!(text, "[[node]]\nname = \"n{i}\"\ndelay = \"{}ms\"\n", i % 7);
        }
        let plan = Plan::from_text(&text);
        let page = render_html(&report_for(&plan), &plan);
        assert_eq!(page.matches("class=\"samples\"").count(), 12);
        assert!(page.len() < 3_000_000, "{} bytes", page.len());
    }

    #[test]
    fn a_hostile_node_name_is_text_everywhere_on_the_page() {
        let hostile = "<script>alert(1)</script>";
        let mut plan = five();
        plan.lab = "\"><img src=x onerror=alert(2)>".to_owned();
        plan.nodes[0].name = hostile.to_owned();
        for pair in &mut plan.expected {
            for name in [&mut pair.from, &mut pair.to] {
                if name == "a" {
                    *name = hostile.to_owned();
                }
            }
        }
        let mut report = report_for(&plan);
        if let Some(last) = report.pairs.last_mut() {
            last.from = hostile.to_owned();
        }
        report.grading = vec![Checklist::new(hostile.to_owned(), Vec::new(), Vec::new())];
        let page = render_html(&report, &plan);
        assert!(!page.contains("<script"), "a script element");
        assert!(!page.contains("<img"), "an image element");
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
        for place in [
            format!("<title>{escaped} link: "),
            format!("text-anchor=\"end\" dominant-baseline=\"middle\">{escaped}</text>"),
            format!("<figcaption>{escaped} -&gt; "),
            format!("<tr><td>{escaped}</td>"),
            format!("graded node {escaped} ("),
        ] {
            assert!(page.contains(&place), "{place}");
        }
        assert!(page.contains(
            "<title>sdss lab &quot;&gt;&lt;img src=x onerror=alert(2)&gt; report</title>"
        ));
    }
}
