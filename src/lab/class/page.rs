//! `--html FILE`: a class's grades as one self-contained page (inline CSS
//! and SVG, no script, nothing fetched), for a teacher to see at a glance
//! how scores spread, which checks the class struggles with, and why each
//! submission lost points. Pure: results in, text out; every value goes
//! through `maud`, which escapes it (submission names are students' folders).

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::score::SubmissionResult;
use crate::lab::judge::{Check, Verdict};
use crate::lab::report::html::STYLE;
use crate::lab::report::markup::fixed;

/// What the class page adds to the report's stylesheet.
const CLASS_STYLE: &str = "details{margin:6px 0;border:1px solid #eee;padding:4px 8px}\
summary{cursor:pointer}.bar{fill:#3182ce}.axis{stroke:#888}svg text{font-size:11px;fill:#333}";

/// Histogram bins: ten points each, 100% counted in the last.
pub const BINS: usize = 10;

/// How many submissions scored in each ten-point bin of percent.
pub fn bins(results: &[SubmissionResult]) -> [usize; BINS] {
    let mut counts = [0; BINS];
    for result in results {
        let percent = result.percent();
        // NaN and negatives land in the first bin rather than vanish.
        let bin = if percent.is_finite() && percent > 0.0 {
            ((percent / 10.0).floor() as usize).min(BINS - 1)
        } else {
            0
        };
        counts[bin] += 1;
    }
    counts
}

/// One check across the class: how many passed, warned and failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRate {
    /// The check's id.
    pub id: String,
    /// What it requires.
    pub title: String,
    /// Submissions that passed it.
    pub passed: usize,
    /// Submissions warned on it.
    pub warned: usize,
    /// Submissions that failed it.
    pub failed: usize,
}

impl CheckRate {
    /// Passed over graded, in percent (0 when nobody was graded on it).
    pub fn pass_rate(&self) -> f64 {
        let graded = self.passed + self.warned + self.failed;
        if graded == 0 {
            return 0.0;
        }
        self.passed as f64 * 100.0 / graded as f64
    }
}

/// Each check's counts: the requirements in order, then any id a result
/// has beyond them (a checklist from another grader version still shows).
pub fn rates(results: &[SubmissionResult], requirements: &[(String, String)]) -> Vec<CheckRate> {
    let mut rates: Vec<CheckRate> = requirements
        .iter()
        .map(|(id, title)| CheckRate {
            id: id.clone(),
            title: title.clone(),
            passed: 0,
            warned: 0,
            failed: 0,
        })
        .collect();
    for check in results.iter().flat_map(|r| &r.checks) {
        let index = match rates.iter().position(|r| r.id == check.id) {
            Some(index) => index,
            None => {
                rates.push(CheckRate {
                    id: check.id.clone(),
                    title: check.title.clone(),
                    passed: 0,
                    warned: 0,
                    failed: 0,
                });
                rates.len() - 1
            }
        };
        let rate = &mut rates[index];
        match check.verdict {
            Verdict::Pass => rate.passed += 1,
            Verdict::Warn => rate.warned += 1,
            Verdict::Fail => rate.failed += 1,
        }
    }
    rates
}

/// The page for a class's `results`; `requirements` are every check, (id,
/// title), in the checklist's order; `seed` the scenario's, on record.
pub fn page(results: &[SubmissionResult], requirements: &[(String, String)], seed: u32) -> String {
    let mean = if results.is_empty() {
        0.0
    } else {
        results.iter().map(SubmissionResult::percent).sum::<f64>() / results.len() as f64
    };
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "sdss class grades" }
                style { (PreEscaped(STYLE)) (PreEscaped(CLASS_STYLE)) }
            }
            body {
                "\n"
                h1 id="title" { "Class grades" }
                p id="summary" {
                    (results.len()) " submission(s), mean " (fixed(mean, 1)) "%, seed " (seed)
                    " (the fake peers' IDs and the port range come from it)."
                }
                "\n"
                h2 { "Score distribution" }
                p class="note" { "Submissions per ten points of percent; 100% counts in the last bin." }
                section id="distribution" { (histogram(&bins(results))) }
                "\n"
                h2 { "Pass rate per check" }
                (rates_table(&rates(results, requirements)))
                h2 { "Submissions" }
                p class="note" { "A warning is worth half a check's points." }
                section id="submissions" {
                    @for result in results {
                        (submission(result))
                    }
                }
            }
        }
        "\n"
    };
    page.into_string()
}

/// Histogram geometry: plot size and margins, in pixels.
const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 16.0;

fn histogram(counts: &[usize; BINS]) -> Markup {
    let most = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - LEFT - 16.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let bin_w = plot_w / BINS as f64;
    let base = HEIGHT - BOTTOM;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="histogram" width=(WIDTH) height=(HEIGHT)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
            title { "score distribution" }
            line class="axis" x1=(LEFT) y1=(base) x2=(fixed(LEFT + plot_w, 1)) y2=(base) {}
            @for (i, count) in counts.iter().enumerate() {
                @let h = *count as f64 / most * plot_h;
                @let x = LEFT + i as f64 * bin_w;
                @let upper = if i == BINS - 1 { "100".to_owned() } else { format!("<{}", (i + 1) * 10) };
                rect class="bar" data-bin=(i * 10) data-count=(count)
                    x=(fixed(x + 1.0, 1)) y=(fixed(base - h, 1))
                    width=(fixed(bin_w - 2.0, 1)) height=(fixed(h, 1)) {
                    title { (i * 10) "-" (upper) "%: " (count) " submission(s)" }
                }
                @if *count > 0 {
                    text x=(fixed(x + bin_w / 2.0, 1)) y=(fixed(base - h - 3.0, 1)) text-anchor="middle" { (count) }
                }
                text x=(fixed(x, 1)) y=(fixed(base + 14.0, 1)) text-anchor="middle" { (i * 10) }
            }
            text x=(fixed(LEFT + plot_w, 1)) y=(fixed(base + 14.0, 1)) text-anchor="middle" { "100" }
        }
    }
}

fn rates_table(rates: &[CheckRate]) -> Markup {
    html! {
        table id="rates" {
            tr { th { "check" } th { "requirement" } th { "passed" } th { "warned" } th { "failed" } th { "pass rate" } }
            "\n"
            @for rate in rates {
                @let percent = rate.pass_rate();
                tr data-check=(rate.id) {
                    td { code { (rate.id) } }
                    td { (rate.title) }
                    td class="passed" { (rate.passed) }
                    td class="warned" { (rate.warned) }
                    td class="failed" { (rate.failed) }
                    td class="rate" {
                        svg xmlns="http://www.w3.org/2000/svg" width="100" height="10" {
                            rect fill="#eee" width="100" height="10" {}
                            rect class="bar" width=(fixed(percent, 1)) height="10" {}
                        }
                        " " (fixed(percent, 0)) "%"
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn verdict(verdict: Verdict) -> Markup {
    html! {
        @match verdict {
            Verdict::Pass => { span class="pass" { "pass" } }
            Verdict::Warn => { span class="warn" { "WARN" } }
            Verdict::Fail => { span class="fail" { "FAIL" } }
        }
    }
}

fn submission(result: &SubmissionResult) -> Markup {
    let count = |v: Verdict| result.checks.iter().filter(|c| c.verdict == v).count();
    html! {
        details class="submission" data-submission=(result.submission) {
            summary {
                b { (result.submission) } ": " (fixed(result.percent(), 1)) "% ("
                (result.points) "/" (result.max_points) " points), "
                (count(Verdict::Pass)) " pass, " (count(Verdict::Warn)) " warn, "
                (count(Verdict::Fail)) " fail"
            }
            @if !result.command.is_empty() {
                p { "ran " code { (result.command.join(" ")) } }
            }
            @if !result.findings.is_empty() {
                ul class="findings" {
                    @for finding in &result.findings {
                        li class="fail" { (format!("{:?}", finding.kind)) ": " (finding.detail) }
                    }
                }
            }
            table class="checklist" {
                tr { th { "verdict" } th { "check" } th { "requirement" } th { "evidence" } }
                @for check in &result.checks {
                    (check_row(check))
                }
            }
        }
        "\n"
    }
}

fn check_row(check: &Check) -> Markup {
    html! {
        tr {
            td { (verdict(check.verdict)) }
            td { code { (check.id) } }
            td { (check.title) }
            td class="evidence" { (check.evidence) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::score::{Finding, FindingKind, Weights};
    use super::*;

    fn check(id: &str, verdict: Verdict, evidence: &str) -> Check {
        Check {
            id: id.to_owned(),
            title: format!("{id} holds"),
            verdict,
            evidence: evidence.to_owned(),
        }
    }

    fn result(name: &str, verdicts: &[Verdict]) -> SubmissionResult {
        let checks = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| check(&format!("c.{i}"), *v, "seen"))
            .collect();
        SubmissionResult::new(name.into(), vec![], 7, vec![], checks, &Weights::default())
    }

    fn requirements(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("c.{i}"), format!("c.{i} holds")))
            .collect()
    }

    use Verdict::{Fail, Pass, Warn};

    #[test]
    fn percents_fall_in_ten_point_bins_a_full_score_in_the_last() {
        let results = [
            result("zero", &[Fail, Fail]),
            result("half", &[Pass, Fail]),
            result("quarter", &[Warn, Fail]),
            result("full", &[Pass, Pass]),
            result("three", &[Pass, Pass, Pass, Warn]),
            result("also full", &[Pass]),
        ];
        let bins = bins(&results);
        assert_eq!(bins, [1, 0, 1, 0, 0, 1, 0, 0, 1, 2]);
        let page = page(&results, &requirements(4), 7);
        assert!(page.contains("data-bin=\"90\" data-count=\"2\""), "{page}");
        assert!(page.contains("data-bin=\"10\" data-count=\"0\""));
        assert_eq!(page.matches("class=\"bar\" data-bin=").count(), BINS);
    }

    #[test]
    fn each_check_counts_its_passes_warnings_and_failures() {
        let results = [
            result("a", &[Pass, Warn]),
            result("b", &[Pass, Fail]),
            result("c", &[Fail, Fail]),
        ];
        let rates = rates(&results, &requirements(3));
        assert_eq!(
            (rates[0].passed, rates[0].warned, rates[0].failed),
            (2, 0, 1)
        );
        assert_eq!(
            (rates[1].passed, rates[1].warned, rates[1].failed),
            (0, 1, 2)
        );
        assert_eq!(fixed(rates[0].pass_rate(), 1), "66.7");
        // A requirement no result has is listed, graded by nobody.
        assert_eq!(
            (rates[2].passed + rates[2].failed, rates[2].pass_rate()),
            (0, 0.0)
        );
        let page = page(&results, &requirements(3), 7);
        assert!(page.contains(
            "<td class=\"passed\">2</td><td class=\"warned\">0</td><td class=\"failed\">1</td>"
        ));
    }

    #[test]
    fn a_check_beyond_the_requirements_still_shows() {
        let results = [result("a", &[Pass, Pass])];
        let rates = rates(&results, &requirements(1));
        assert_eq!(rates.len(), 2);
        assert_eq!(rates[1].id, "c.1");
    }

    #[test]
    fn a_hostile_submission_is_text_everywhere_on_the_page() {
        let hostile = "<script>alert(1)</script>";
        let mut graded = result(hostile, &[Fail]);
        graded.checks[0].evidence = "sent \"<img src=x onerror=alert(2)>\" & closed".to_owned();
        graded.command = vec!["python3".to_owned(), "<b>.py".to_owned()];
        graded.findings = vec![Finding {
            kind: FindingKind::GraderFailed,
            detail: "</details><script>".to_owned(),
        }];
        let page = page(&[graded], &requirements(1), 7);
        assert!(!page.contains("<script"), "a script element");
        assert!(!page.contains("<img"), "an image element");
        assert!(!page.contains("<b>.py"));
        assert!(page.contains("<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"));
        assert!(page.contains("data-submission=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
        assert!(page.contains("sent &quot;&lt;img src=x onerror=alert(2)&gt;&quot; &amp; closed"));
        assert!(page.contains("GraderFailed: &lt;/details&gt;&lt;script&gt;"));
    }

    #[test]
    fn an_empty_class_still_makes_a_page() {
        let page = page(&[], &requirements(2), 1);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("0 submission(s), mean 0.0%"));
        assert_eq!(page.matches("<tr data-check=").count(), 2);
    }
}
