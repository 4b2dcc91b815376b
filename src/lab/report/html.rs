//! `--html FILE`: the report as one self-contained page (inline CSS and SVG,
//! no script, nothing fetched): the topology, heat maps of the pairs, each
//! pair's samples over time, the failures, the timeline and the checklists.

use std::fmt::Write;

use crate::lab::judge::delays::PairVerdict;
use crate::lab::judge::timeline::TimelineVerdicts;
use crate::lab::judge::{self, Checklist};
use crate::lab::plan::Plan;

use super::graph::topology_svg;
use super::markup::escape;
use super::plots::{heat_map, plotted, samples_plot, Quantity};
use super::{emulator_lines, Report};

/// Failed pairs listed with their reasons, at most (the heat maps show all).
const LISTED_FAILURES: usize = 100;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}\
h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}\
.pass{color:#276749;font-weight:bold}.fail{color:#c53030;font-weight:bold}.warn{color:#b7791f;font-weight:bold}\
.maps{display:flex;flex-wrap:wrap;gap:24px}.maps figure{margin:0}figcaption{font-weight:bold;margin-bottom:4px}\
.multiples{display:flex;flex-wrap:wrap;gap:12px}.multiples figure{margin:0;border:1px solid #eee;padding:4px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.evidence{color:#555;font-size:90%}.note{color:#555}code{background:#f4f4f4;padding:0 3px}";

/// The page for `report`; `plan` is the lab as it was injected (its links).
pub fn render_html(report: &Report, plan: &Plan) -> String {
    let mut out = String::new();
    let ok = report.ok();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sdss lab {} report</title><style>{STYLE}</style></head><body>\n",
        escape(&report.lab)
    );
    let _ = writeln!(
        out,
        "<h1 id=\"title\">lab {} <span class=\"{}\" id=\"verdict\">{}</span></h1>",
        escape(&report.lab),
        if ok { "pass" } else { "fail" },
        if ok { "PASS" } else { "FAIL" }
    );
    summary(&mut out, report);
    let _ = writeln!(
        out,
        "<h2>Topology</h2><p class=\"note\">{} nodes on {}, each behind its own link to the switch; a frame from B to A crosses B's link then A's. Beside each link's delay, the mean error of the measured pairs through it.</p>\n<section id=\"topology\">{}</section>",
        plan.nodes.len(),
        plan.subnet,
        topology_svg(plan, Some(report))
    );
    heat_maps(&mut out, report, plan);
    samples(&mut out, report);
    failures(&mut out, report);
    if let Some(timeline) = &report.timeline {
        render_timeline(&mut out, timeline);
    }
    if !report.grading.is_empty() {
        out.push_str("<h2>Grading</h2>\n");
        for checklist in &report.grading {
            render_checklist(&mut out, checklist);
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, report: &Report) {
    let netem = report
        .netem
        .as_ref()
        .map_or("not probed".to_owned(), ToString::to_string);
    let s = &report.summary;
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} pairs: <span class=\"pass\">{} pass</span>, <span class=\"{}\">{} fail</span>, {} skipped. \
         Delay backend <b>{}</b>; netem {}. Graded on the median of the last {} samples after {} warm-up, \
         tolerance max({} ms, {}%), {:.1} s after the nodes started{}.</p>",
        s.pairs,
        s.passed,
        if s.failed > 0 { "fail" } else { "note" },
        s.failed,
        s.skipped,
        escape(&report.backend.to_string()),
        escape(&netem),
        report.samples,
        report.warmup,
        report.tolerance_ms,
        report.tolerance_percent,
        report.elapsed_s,
        if report.converged {
            ""
        } else {
            " (time limit reached)"
        }
    );
    if let Some(note) = &report.backend_note {
        let _ = writeln!(out, "<p class=\"note\">note: {}</p>", escape(note));
    }
    for line in report
        .emulator
        .iter()
        .flat_map(|c| emulator_lines(c, s.failed > 0))
    {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&line));
    }
    if let Some(aside) = &report.set_aside {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&aside.line()));
    }
}

fn heat_maps(out: &mut String, report: &Report, plan: &Plan) {
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    out.push_str(
        "<h2>Delays per ordered pair</h2><p class=\"note\">Row: sender B; column: receiver A, \
         who measures B -&gt; A. One-way delays in ms.</p>\n<div class=\"maps\">",
    );
    for (quantity, caption) in [
        (Quantity::Expected, "expected (injected)"),
        (Quantity::Measured, "measured (median)"),
        (Quantity::Error, "error (measured - expected)"),
    ] {
        let _ = write!(
            out,
            "<figure><figcaption>{caption}</figcaption>{}</figure>",
            heat_map(quantity, &names, &report.pairs)
        );
    }
    out.push_str("</div>\n");
}

fn samples(out: &mut String, report: &Report) {
    let shown = plotted(&report.pairs);
    if shown.is_empty() {
        return;
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
    let _ = writeln!(
        out,
        "<h2>Samples over time</h2><p class=\"note\">{which}: each sample in ms in arrival order (hollow: warm-up), \
         the expected delay dashed, the tolerance shaded.</p>"
    );
    out.push_str("<div class=\"multiples\" id=\"samples\">");
    for pair in shown {
        let class = if pair.verdict == PairVerdict::Fail {
            "fail"
        } else {
            "pass"
        };
        let _ = write!(
            out,
            "<figure><figcaption>{} -&gt; {} <span class=\"{class}\">{}</span></figcaption>{}</figure>",
            escape(&pair.from),
            escape(&pair.to),
            match pair.verdict {
                PairVerdict::Pass => "pass",
                PairVerdict::Fail => "FAIL",
                PairVerdict::Skipped => "skipped",
            },
            samples_plot(pair, report.warmup as usize)
        );
    }
    out.push_str("</div>\n");
}

fn failures(out: &mut String, report: &Report) {
    let failed: Vec<_> = report
        .pairs
        .iter()
        .filter(|p| p.verdict != PairVerdict::Pass)
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Pairs that did not pass</h2><table id=\"failures\"><tr><th>from</th><th>to</th><th>expected</th><th>measured</th><th>verdict</th><th>why</th></tr>"
    );
    for pair in failed.iter().take(LISTED_FAILURES) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&pair.from),
            escape(&pair.to),
            pair.expected_ms,
            pair.measured_ms.map_or("-".to_owned(), |m| format!("{m:.3}")),
            if pair.verdict == PairVerdict::Fail { "fail" } else { "note" },
            if pair.verdict == PairVerdict::Fail { "FAIL" } else { "skipped" },
            escape(pair.reason.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
    if failed.len() > LISTED_FAILURES {
        let _ = writeln!(
            out,
            "<p class=\"note\">and {} more (the JSON report lists them all)</p>",
            failed.len() - LISTED_FAILURES
        );
    }
}

fn pass_fail(ok: bool) -> &'static str {
    if ok {
        "<span class=\"pass\">pass</span>"
    } else {
        "<span class=\"fail\">FAIL</span>"
    }
}

fn render_timeline(out: &mut String, timeline: &TimelineVerdicts) {
    let _ = writeln!(
        out,
        "<h2>Timeline {}</h2><p class=\"note\">The heat maps are the phase before the first event.</p><table id=\"timeline\"><tr><th>at</th><th>event</th><th>outcome</th></tr>",
        pass_fail(timeline.ok())
    );
    for played in &timeline.played {
        let outcome = match (&played.error, played.took_ms) {
            (Some(error), _) => format!("<span class=\"fail\">FAILED</span>: {}", escape(error)),
            (None, Some(ms)) => format!("links changed in {ms:.1} ms"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td>+{:.1} s</td><td>{}</td><td>{outcome}</td></tr>",
            played.at_s,
            escape(&played.what)
        );
    }
    out.push_str("</table>\n<table><tr><th>phase</th><th>after</th><th>pairs within tolerance</th><th>failures</th></tr>");
    for phase in &timeline.phases {
        let _ = writeln!(
            out,
            "<tr><td>{} {}</td><td>{}</td><td>{} of {}</td><td class=\"evidence\">{}</td></tr>",
            phase.phase,
            pass_fail(phase.failures.is_empty()),
            escape(&phase.began),
            phase.passed,
            phase.judged,
            phase
                .failures
                .iter()
                .map(|f| escape(f))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push_str("</table>\n<table><tr><th>expectation</th><th>verdict</th><th>evidence</th></tr>");
    for expect in &timeline.expects {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"evidence\">{}</td></tr>",
            escape(&expect.what),
            pass_fail(expect.held),
            expect
                .evidence
                .iter()
                .map(|e| escape(e))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push_str("</table>\n");
}

fn render_checklist(out: &mut String, checklist: &Checklist) {
    let _ = writeln!(
        out,
        "<h3>graded node {} (<code>{}</code>): {:.1}%, {} pass, {} warn, {} fail</h3><table class=\"checklist\"><tr><th>verdict</th><th>check</th><th>requirement</th><th>evidence</th></tr>",
        escape(&checklist.node),
        escape(&checklist.command.join(" ")),
        checklist.score,
        checklist.passed,
        checklist.warned,
        checklist.failed
    );
    for check in &checklist.checks {
        let verdict = match check.verdict {
            judge::Verdict::Pass => "<span class=\"pass\">pass</span>",
            judge::Verdict::Warn => "<span class=\"warn\">WARN</span>",
            judge::Verdict::Fail => "<span class=\"fail\">FAIL</span>",
        };
        let _ = writeln!(
            out,
            "<tr><td>{verdict}</td><td>{}</td><td>{}</td><td class=\"evidence\">{}</td></tr>",
            escape(&check.id),
            escape(&check.title),
            escape(&check.evidence)
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lab::judge::delays::{PairResult, Summary};
    use crate::lab::judge::{Check, Checklist};
    use crate::lab::plan::backend::BackendKind;

    /// A report of `plan` where every pair measured its delay plus 0.1 ms, but
    /// the last, which failed by 9 ms.
    pub(crate) fn report_for(plan: &Plan) -> Report {
        let count = plan.expected.len();
        let pairs: Vec<PairResult> = plan
            .expected
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let expected = p.impairment.delay.as_secs_f64() * 1000.0;
                let error = if i + 1 == count { 9.0 } else { 0.1 };
                PairResult {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    expected_ms: expected,
                    measured_ms: Some(expected + error),
                    error_ms: Some(error),
                    floor_ms: None,
                    tolerance_ms: 0.5,
                    samples: 5,
                    total_samples: 6,
                    set_aside: 0,
                    verdict: if i + 1 == count {
                        PairVerdict::Fail
                    } else {
                        PairVerdict::Pass
                    },
                    reason: (i + 1 == count).then(|| "off by <9 ms> & more".to_owned()),
                    series: vec![expected + 3.0, expected, expected + error, expected],
                }
            })
            .collect();
        Report {
            lab: plan.lab.clone(),
            backend: BackendKind::Emulator,
            backend_note: None,
            netem: None,
            tolerance_ms: 0.5,
            tolerance_percent: 5.0,
            samples: 5,
            warmup: 1,
            elapsed_s: 7.5,
            converged: true,
            summary: Summary {
                pairs: count,
                passed: count - 1,
                failed: 1,
                skipped: 0,
            },
            pairs,
            grading: Vec::new(),
            emulator: None,
            boxes: Vec::new(),
            set_aside: None,
            timeline: None,
            hosts: None,
        }
    }

    fn five() -> Plan {
        let mut text = "name = \"five\"\nsubnet = \"198.18.5.0/24\"\n".to_owned();
        for (name, delay) in [("a", 1), ("b", 5), ("c", 10), ("d", 20), ("e", 40)] {
            let _ = write!(text, "[[node]]\nname = \"{name}\"\ndelay = \"{delay}ms\"\n");
        }
        Plan::from_text(&text)
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain"), "plain");
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
        use crate::lab::judge::timeline::ExpectVerdict;
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
            phases: Vec::new(),
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
        assert!(page.contains("a removed c at 6.1 s"));
        assert!(page.contains("graded node s&lt;1&gt;"));
        assert!(page.contains("sent &quot;1.0&quot; &amp; closed"));
        assert!(page.contains("<span class=\"warn\">WARN</span>"));
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
}
