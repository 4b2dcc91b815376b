//! Grading a third-party SDSS implementation against the assignment.
//!
//! A lab node marked `grade = true` is watched while the lab plays a short
//! scenario around it (a node joins, one is killed, a peer that never answers
//! appears, a burst of malformed datagrams). What the lab saw is collected as
//! `scenario::observe::Observed` (sockets, `/proc`, the sdss nodes' JSON
//! streams); [`checks::grade`] turns it into a [`Checklist`] without any
//! I/O, so every verdict is unit-tested with synthetic observations.

pub mod aside;
pub mod checks;
pub mod delays;
pub mod links;
pub mod shaped;
pub mod spread;
pub mod timeline;

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// The verdict on one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Meets the assignment.
    Pass,
    /// Works with sdss and most peers, but departs from the assignment.
    Warn,
    /// Breaks the assignment (or could not be observed because of a failure).
    Fail,
}

impl Verdict {
    /// Points toward the score: a warning is worth half.
    pub fn points(self) -> f64 {
        match self {
            Verdict::Pass => 1.0,
            Verdict::Warn => 0.5,
            Verdict::Fail => 0.0,
        }
    }
}

/// One requirement, its verdict and what decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, e.g. `server.encoding`.
    pub id: String,
    /// What is required, for a human.
    pub title: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The observations that decided it.
    pub evidence: String,
}

/// Every check of one graded node, and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checklist {
    /// The graded node's name in the lab.
    pub node: String,
    /// What it ran.
    pub command: Vec<String>,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
    /// Points (pass 1, warn 0.5) over the number of checks, in percent.
    pub score: f64,
    /// Counts.
    pub passed: usize,
    /// Counts.
    pub warned: usize,
    /// Counts.
    pub failed: usize,
}

impl Checklist {
    /// Scores a list of checks.
    pub fn new(node: String, command: Vec<String>, checks: Vec<Check>) -> Checklist {
        let count = |v| checks.iter().filter(|c| c.verdict == v).count();
        let points: f64 = checks.iter().map(|c| c.verdict.points()).sum();
        let score = if checks.is_empty() {
            0.0
        } else {
            (points / checks.len() as f64 * 1000.0).round() / 10.0
        };
        Checklist {
            node,
            command,
            passed: count(Verdict::Pass),
            warned: count(Verdict::Warn),
            failed: count(Verdict::Fail),
            score,
            checks,
        }
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// The checklist as text: one line per check, its evidence indented below.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "graded node {} ({}):",
            self.node,
            self.command.join(" ")
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for check in &self.checks {
            let verdict = match check.verdict {
                Verdict::Pass => "pass",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(out, "  {verdict}  {:<width$}  {}", check.id, check.title);
            let _ = writeln!(out, "        {:<width$}  {}", "", check.evidence);
        }
        let _ = writeln!(
            out,
            "score {}: {:.1}% ({} pass, {} warn, {} fail of {} checks)",
            self.node,
            self.score,
            self.passed,
            self.warned,
            self.failed,
            self.checks.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, verdict: Verdict) -> Check {
        Check {
            id: id.into(),
            title: "t".into(),
            verdict,
            evidence: "e".into(),
        }
    }

    #[test]
    fn the_score_counts_a_warning_as_half() {
        let list = Checklist::new(
            "s".into(),
            vec!["x".into()],
            vec![
                check("a", Verdict::Pass),
                check("b", Verdict::Warn),
                check("c", Verdict::Fail),
                check("d", Verdict::Pass),
            ],
        );
        assert_eq!(list.score, 62.5);
        assert_eq!((list.passed, list.warned, list.failed), (2, 1, 1));
        assert!(!list.ok());
        let text = list.render();
        assert!(text.contains("FAIL  c"), "{text}");
        assert!(text.contains("62.5%"), "{text}");
    }
}
