//! What a class run writes for people and for other tools: the table at
//! the end, a CSV gradebook, Gradescope's `results.json` per submission and
//! a feedback file per submission. Pure: results in, text out.

use std::fmt::Write;

use serde::Serialize;

use super::score::SubmissionResult;
use crate::lab::judge::Verdict;

/// The table printed at the end: submission, score, and the checks it failed.
pub fn table(results: &[SubmissionResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.submission.chars().count())
        .max()
        .unwrap_or(0)
        .max("submission".len());
    let mut out = format!("{:width$}  {:>13}  failed\n", "submission", "score");
    for result in results {
        let failed: Vec<&str> = result.failed().map(|c| c.id.as_str()).collect();
        // An ungraded submission fails everything: its finding says why.
        let failed = match result.findings.first() {
            Some(finding) => format!("every check: {}", finding.detail),
            None if failed.is_empty() => "-".to_owned(),
            None => failed.join(" "),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>5.1}% {:>6}  {failed}",
            result.submission,
            result.percent(),
            format!("{}/{}", trim(result.points), trim(result.max_points)),
        );
    }
    out
}

fn trim(points: f64) -> String {
    let text = format!("{points:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

/// The CSV gradebook: one row per submission, one column per check (its
/// verdict), then points, the maximum and the percent.
pub fn csv(results: &[SubmissionResult], requirements: &[(String, String)]) -> String {
    let mut out = String::from("submission");
    for (id, _) in requirements {
        let _ = write!(out, ",{}", field(id));
    }
    out.push_str(",points,max_points,percent,findings\n");
    for result in results {
        out.push_str(&field(&result.submission));
        for (id, _) in requirements {
            let verdict = result.check(id).map_or("", |c| verdict_word(c.verdict));
            let _ = write!(out, ",{verdict}");
        }
        let findings: Vec<&str> = result.findings.iter().map(|f| f.detail.as_str()).collect();
        let _ = writeln!(
            out,
            ",{},{},{},{}",
            trim(result.points),
            trim(result.max_points),
            result.percent(),
            field(&findings.join("; "))
        );
    }
    out
}

/// A CSV field, quoted when it must be (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Warn => "warn",
        Verdict::Fail => "fail",
    }
}

/// Gradescope's autograder results: a score, its maximum, one test per check.
#[derive(Debug, Serialize)]
pub struct Gradescope {
    score: f64,
    max_score: f64,
    output: String,
    visibility: &'static str,
    tests: Vec<GradescopeTest>,
}

#[derive(Debug, Serialize)]
struct GradescopeTest {
    name: String,
    score: f64,
    max_score: f64,
    status: &'static str,
    output: String,
    visibility: &'static str,
}

/// A submission's `results.json` for Gradescope, each check a test whose
/// output is its evidence.
pub fn gradescope(result: &SubmissionResult, weights: &super::score::Weights) -> Gradescope {
    let tests = result
        .checks
        .iter()
        .map(|check| {
            let max_score = weights.of(&check.id);
            GradescopeTest {
                name: format!("{}: {}", check.id, check.title),
                score: max_score * check.verdict.points(),
                max_score,
                status: if check.verdict == Verdict::Fail {
                    "failed"
                } else {
                    "passed"
                },
                output: check.evidence.clone(),
                visibility: "visible",
            }
        })
        .collect();
    let output = result
        .findings
        .iter()
        .map(|f| f.detail.clone())
        .collect::<Vec<_>>()
        .join("\n");
    Gradescope {
        score: result.points,
        max_score: result.max_points,
        output,
        visibility: "visible",
        tests,
    }
}

/// A submission's feedback: its checklist, and for each check it did not
/// pass what the assignment asks and what the lab saw.
pub fn feedback(result: &SubmissionResult) -> String {
    let mut out = format!(
        "{}: {:.1}% ({} of {} points), scenario seed {}\n",
        result.submission,
        result.percent(),
        trim(result.points),
        trim(result.max_points),
        result.seed
    );
    if !result.command.is_empty() {
        let _ = writeln!(out, "started as: {}", result.command.join(" "));
    }
    for finding in &result.findings {
        let _ = writeln!(out, "note: {}", finding.detail);
    }
    out.push_str("\nchecklist:\n");
    for check in &result.checks {
        let _ = writeln!(out, "  {:4}  {}", verdict_word(check.verdict), check.id);
    }
    let missed: Vec<_> = result
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    if !missed.is_empty() {
        out.push_str("\nwhat to fix:\n");
    }
    for check in missed {
        let _ = writeln!(
            out,
            "\n{} ({})\n  the assignment asks: {}\n  the lab saw: {}",
            check.id,
            verdict_word(check.verdict),
            check.title,
            check.evidence
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::score::{Finding, FindingKind, Weights};
    use super::*;
    use crate::lab::judge::Check;

    fn result(name: &str, verdicts: &[(&str, Verdict)]) -> SubmissionResult {
        let checks = verdicts
            .iter()
            .map(|(id, verdict)| Check {
                id: (*id).to_owned(),
                title: format!("{id} is met"),
                verdict: *verdict,
                evidence: format!("seen for {id}, with a \"quote\""),
            })
            .collect();
        SubmissionResult::new(
            name.to_owned(),
            vec!["python3".into(), "s.py".into()],
            7,
            Vec::new(),
            checks,
            &Weights::default(),
        )
    }

    fn requirements() -> Vec<(String, String)> {
        ["a.x", "b.y"]
            .iter()
            .map(|id| ((*id).to_owned(), String::new()))
            .collect()
    }

    #[test]
    fn the_table_names_each_submissions_score_and_failed_checks() {
        let results = [
            result("alice", &[("a.x", Verdict::Pass), ("b.y", Verdict::Fail)]),
            result("bob", &[("a.x", Verdict::Pass), ("b.y", Verdict::Warn)]),
        ];
        let table = table(&results);
        assert!(table.contains("alice        50.0%    1/2  b.y"), "{table}");
        assert!(table.contains("bob          75.0%  1.5/2  -"), "{table}");
    }

    #[test]
    fn the_csv_has_a_column_per_check_and_quotes_what_it_must() {
        let mut ungraded = result("c,d", &[]);
        ungraded.findings.push(Finding {
            kind: FindingKind::NothingToStart,
            detail: "no \"run\"".to_owned(),
        });
        let results = [
            result("alice", &[("a.x", Verdict::Pass), ("b.y", Verdict::Fail)]),
            ungraded,
        ];
        let csv = csv(&results, &requirements());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "submission,a.x,b.y,points,max_points,percent,findings"
        );
        assert_eq!(lines[1], "alice,pass,fail,1,2,50,");
        assert_eq!(lines[2], "\"c,d\",,,0,0,0,\"no \"\"run\"\"\"");
    }

    #[test]
    fn gradescope_gets_a_test_per_check_with_its_evidence_and_points() {
        let weights = Weights([("b".to_owned(), 3.0)].into_iter().collect());
        let mut graded = result("alice", &[("a.x", Verdict::Pass), ("b.y", Verdict::Warn)]);
        graded = SubmissionResult::new(
            graded.submission,
            graded.command,
            graded.seed,
            graded.findings,
            graded.checks,
            &weights,
        );
        let json = serde_json::to_value(gradescope(&graded, &weights)).unwrap();
        assert_eq!(json["score"], 2.5);
        assert_eq!(json["max_score"], 4.0);
        assert_eq!(json["tests"][1]["name"], "b.y: b.y is met");
        assert_eq!(json["tests"][1]["score"], 1.5);
        assert_eq!(json["tests"][1]["max_score"], 3.0);
        assert_eq!(json["tests"][1]["visibility"], "visible");
        assert!(json["tests"][1]["output"]
            .as_str()
            .unwrap()
            .contains("seen for b.y"));
    }

    #[test]
    fn feedback_says_what_is_asked_and_what_was_seen_for_each_check_missed() {
        let text = feedback(&result(
            "alice",
            &[("a.x", Verdict::Pass), ("b.y", Verdict::Fail)],
        ));
        assert!(
            text.starts_with("alice: 50.0% (1 of 2 points), scenario seed 7"),
            "{text}"
        );
        assert!(text.contains("  fail  b.y"), "{text}");
        assert!(
            text.contains(
                "b.y (fail)\n  the assignment asks: b.y is met\n  the lab saw: seen for b.y"
            ),
            "{text}"
        );
        assert!(!text.contains("a.x (pass)"), "{text}");
    }
}
