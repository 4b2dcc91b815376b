//! The HTML report's part on the link probe: each pair's figures beside what
//! was asked, and each pair's one-way delay distribution (a CDF) with the
//! distribution its shape gives drawn over it. Bounded whatever the lab's
//! size: failing pairs first, at most [`PLOTTED`] curves and [`LISTED`] rows.

use maud::{html, Markup};

use crate::lab::judge::links::{FigureVerdict, LinkVerdicts, PairLinks, CONFIDENCE};

use super::markup::fixed;

/// Pairs whose delay curve is drawn, at most.
pub const PLOTTED: usize = 12;

/// Pairs whose figures are listed, at most (the JSON report has them all).
pub const LISTED: usize = 60;

/// The pairs in the order the page shows them: failing first, then as probed.
fn ranked(links: &LinkVerdicts) -> Vec<&PairLinks> {
    let mut pairs: Vec<&PairLinks> = links.pairs.iter().collect();
    pairs.sort_by_key(|p| p.ok());
    pairs
}

/// The section: a summary, the figures table and the curves.
pub fn links_section(links: &LinkVerdicts) -> Markup {
    let pairs = ranked(links);
    let p = &links.probing;
    html! {
        h2 id="links" { "Links, probed" }
        p class="note" {
            "Each ordered pair got " (p.rate) " UDP packets/s of " (p.size) " bytes for "
            (fixed(p.duration.as_secs_f64(), 1)) " s, sent and received inside the nodes' namespaces. "
            "Delay quantiles pass within the lab's tolerance; shares (loss, duplicates, reorders) when the asked probability lies in their Wilson interval at "
            (fixed(links.figure_confidence * 100.0, 2)) "% each (" (fixed(CONFIDENCE * 100.0, 0)) "% over the lab)."
        }
        p {
            (links.pairs.len()) " pairs: "
            span class="pass" { (links.pairs.len() - links.failed()) " pass" } ", "
            span class=(if links.failed() > 0 { "fail" } else { "note" }) { (links.failed()) " fail" }
        }
        "\n"
        (figures_table(&pairs))
        (curves(&pairs))
    }
}

fn figures_table(pairs: &[&PairLinks]) -> Markup {
    html! {
        table id="link-figures" {
            tr { th { "from" } th { "to" } th { "received" } th { "figure" } th { "measured" } th { "asked" } th { "allowed" } th { "verdict" } }
            "\n"
            @for pair in pairs.iter().take(LISTED) {
                @for (i, f) in pair.figures.iter().enumerate() {
                    tr {
                        @if i == 0 {
                            td rowspan=(pair.figures.len()) { (pair.from) }
                            td rowspan=(pair.figures.len()) { (pair.to) }
                            td rowspan=(pair.figures.len()) { (pair.received) "/" (pair.sent) }
                        }
                        td { (f.name) }
                        td { (f.measured.map_or("-".to_owned(), |v| fixed(v, 4))) " " (f.unit) }
                        td { (f.expected.map_or("-".to_owned(), |v| fixed(v, 4))) }
                        td { (f.interval.map_or(String::new(), |(l, h)| format!("[{l:.4}, {h:.4}]"))) }
                        td {
                            @match f.verdict {
                                FigureVerdict::Pass => { span class="pass" { "pass" } }
                                FigureVerdict::Fail => { span class="fail" { "FAIL" } }
                                FigureVerdict::NotJudged => { span class="note" { "not judged" } }
                            }
                            @if let Some(note) = &f.note { " " span class="evidence" { (note) } }
                        }
                    }
                    "\n"
                }
            }
        }
        @if pairs.len() > LISTED {
            p class="note" { "and " (pairs.len() - LISTED) " more pairs (the JSON report lists them all)" }
        }
        "\n"
    }
}

fn curves(pairs: &[&PairLinks]) -> Markup {
    let drawn: Vec<&&PairLinks> = pairs
        .iter()
        .filter(|p| p.curve.iter().any(|c| c.measured_ms.is_some()))
        .take(PLOTTED)
        .collect();
    if drawn.is_empty() {
        return html! {};
    }
    html! {
        h3 { "One-way delay distributions" }
        p class="note" {
            "Each pair's measured one-way delay as a cumulative distribution (blue), and the one its shape gives (green, dashed, where it is modelled); failing pairs first, "
            (drawn.len()) " of " (pairs.len()) "."
        }
        "\n"
        div class="multiples" id="link-curves" {
            @for pair in drawn {
                figure {
                    figcaption {
                        (pair.from) " -> " (pair.to) " "
                        @if pair.ok() { span class="pass" { "pass" } } @else { span class="fail" { "FAIL" } }
                    }
                    (cdf_plot(pair))
                }
            }
        }
        "\n"
    }
}

/// One pair's delay CDF: x the delay in ms, y the share of packets at or
/// below it; the measured curve and, where modelled, the expected one.
pub fn cdf_plot(pair: &PairLinks) -> Markup {
    let (width, height, pad) = (260.0, 140.0, 26.0);
    let values = pair
        .curve
        .iter()
        .flat_map(|c| [c.measured_ms, c.expected_ms])
        .flatten();
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (low, high) = if low.is_finite() {
        (low, high)
    } else {
        (0.0, 1.0)
    };
    let span = (high - low).max(0.05);
    let x = |v: f64| pad * 1.5 + (v - low) / span * (width - pad * 2.0);
    let y = |q: f64| pad / 2.0 + (1.0 - q) * (height - pad * 1.5);
    let line = |pick: fn(&crate::lab::judge::links::CurvePoint) -> Option<f64>| {
        pair.curve
            .iter()
            .filter_map(|c| pick(c).map(|v| format!("{:.1},{:.1}", x(v), y(c.q))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let measured = line(|c| c.measured_ms);
    let expected = line(|c| c.expected_ms);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="cdf" width=(width) height=(height) font-family="sans-serif" font-size="10" {
            title { (pair.from) " -> " (pair.to) ": one-way delay distribution, measured and asked" }
            line x1=(fixed(pad * 1.5, 1)) x2=(fixed(width - pad / 2.0, 1)) y1=(fixed(y(0.0), 1)) y2=(fixed(y(0.0), 1)) stroke="#999" {}
            line x1=(fixed(pad * 1.5, 1)) x2=(fixed(pad * 1.5, 1)) y1=(fixed(y(0.0), 1)) y2=(fixed(y(1.0), 1)) stroke="#999" {}
            @if !expected.is_empty() {
                polyline class="expected" points=(expected) fill="none" stroke="#2f855a" stroke-width="1.5" stroke-dasharray="4 3" {}
            }
            polyline class="measured" points=(measured) fill="none" stroke="#2b6cb0" stroke-width="1.5" {}
            text x="2" y=(fixed(y(1.0) + 4.0, 1)) { "1" }
            text x="2" y=(fixed(y(0.0), 1)) { "0" }
            text x=(fixed(pad * 1.5, 1)) y=(fixed(height - 3.0, 1)) { (fixed(low, 2)) }
            text x=(fixed(width - pad / 2.0, 1)) y=(fixed(height - 3.0, 1)) text-anchor="end" { (fixed(high, 2)) " ms" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::judge::links::{CurvePoint, Figure, CURVE};
    use crate::lab::plan::LinkProbing;

    fn pair(from: &str, ok: bool) -> PairLinks {
        PairLinks {
            from: from.to_owned(),
            to: "b".to_owned(),
            sent: 100,
            received: 90,
            figures: vec![Figure {
                name: "loss".to_owned(),
                unit: "share".to_owned(),
                expected: Some(0.1),
                measured: Some(if ok { 0.1 } else { 0.0 }),
                interval: Some((0.05, 0.2)),
                verdict: if ok {
                    FigureVerdict::Pass
                } else {
                    FigureVerdict::Fail
                },
                note: None,
            }],
            curve: CURVE
                .iter()
                .map(|&q| CurvePoint {
                    q,
                    measured_ms: Some(10.0 + q),
                    expected_ms: Some(10.0 + q / 2.0),
                })
                .collect(),
        }
    }

    fn verdicts(pairs: Vec<PairLinks>) -> LinkVerdicts {
        LinkVerdicts {
            probing: LinkProbing::default(),
            figure_confidence: 0.999,
            pairs,
        }
    }

    #[test]
    fn failing_pairs_come_first_with_both_curves_drawn() {
        let page =
            links_section(&verdicts(vec![pair("ok", true), pair("bad", false)])).into_string();
        let first_bad = page.find("bad").unwrap();
        let first_ok = page.find(">ok<").unwrap();
        assert!(first_bad < first_ok, "{page}");
        assert_eq!(page.matches("class=\"cdf\"").count(), 2);
        assert_eq!(page.matches("polyline class=\"expected\"").count(), 2);
        assert_eq!(page.matches("polyline class=\"measured\"").count(), 2);
        assert!(page.contains("2 pairs: "), "{page}");
    }

    #[test]
    fn a_large_lab_draws_and_lists_a_bounded_number() {
        let many = (0..200)
            .map(|i| pair(&format!("n{i}"), i % 7 != 0))
            .collect();
        let page = links_section(&verdicts(many)).into_string();
        assert_eq!(page.matches("class=\"cdf\"").count(), PLOTTED);
        assert!(page.contains("and 140 more pairs"), "bounded table");
        assert!(page.len() < 400_000, "{}", page.len());
    }

    #[test]
    fn a_hostile_name_is_text() {
        let page = links_section(&verdicts(vec![pair("<script>x</script>", false)])).into_string();
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
