//! A submission's result and its score: the checklist its lab gave it,
//! weighed by the class's `[grade.weights]`. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lab::judge::{Check, Verdict};

/// Points per check: a check's own id (`server.encoding`) wins over its
/// area (`server`), which wins over the default of one point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Weights(pub BTreeMap<String, f64>);

impl Weights {
    /// The points check `id` is worth.
    pub fn of(&self, id: &str) -> f64 {
        let area = id.split('.').next().unwrap_or(id);
        self.0
            .get(id)
            .or_else(|| self.0.get(area))
            .copied()
            .unwrap_or(1.0)
    }

    /// Names in the table that are neither a check nor an area of one:
    /// likely a typo, which would silently weigh nothing.
    pub fn unknown<'a>(&'a self, ids: &'a [String]) -> Vec<&'a str> {
        self.0
            .keys()
            .filter(|key| {
                !ids.iter()
                    .any(|id| id == *key || id.split('.').next() == Some(key.as_str()))
            })
            .map(String::as_str)
            .collect()
    }
}

/// Why a submission has no checklist of its own, or what happened around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Nothing in its folder could be started.
    NothingToStart,
    /// Its grading ran past its time bound and was stopped.
    TimedOut,
    /// The grader itself failed on it (the lab could not be built, ...).
    GraderFailed,
}

/// One thing the class run found about a submission beyond its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// For a human: what was seen, and what was expected.
    pub detail: String,
}

/// One submission, graded: written as soon as it is known, read back by a
/// class run that continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionResult {
    /// The submission's folder name.
    pub submission: String,
    /// What was started (empty when nothing could be).
    pub command: Vec<String>,
    /// The seed its scenario was played with.
    pub seed: u32,
    /// What the class run found beyond the checks.
    pub findings: Vec<Finding>,
    /// Every check, in the checklist's order (failed, with the finding as
    /// evidence, when the lab could not grade it).
    pub checks: Vec<Check>,
    /// Points earned.
    pub points: f64,
    /// Points possible.
    pub max_points: f64,
    /// Seconds its grading took.
    pub elapsed_s: f64,
}

impl SubmissionResult {
    /// A graded submission, scored with `weights`.
    pub fn new(
        submission: String,
        command: Vec<String>,
        seed: u32,
        findings: Vec<Finding>,
        checks: Vec<Check>,
        weights: &Weights,
    ) -> SubmissionResult {
        // An empty sum of floats is -0: plus 0, it prints as 0.
        let max_points = checks.iter().map(|c| weights.of(&c.id)).sum::<f64>() + 0.0;
        let points = checks
            .iter()
            .map(|c| weights.of(&c.id) * c.verdict.points())
            .sum::<f64>()
            + 0.0;
        SubmissionResult {
            submission,
            command,
            seed,
            findings,
            checks,
            points,
            max_points,
            elapsed_s: 0.0,
        }
    }

    /// A submission the lab could not grade: every requirement (id, title)
    /// fails with the finding as its evidence, so it still gets a row, a
    /// score and feedback.
    pub fn ungraded(
        submission: String,
        command: Vec<String>,
        seed: u32,
        finding: Finding,
        requirements: &[(String, String)],
        weights: &Weights,
    ) -> SubmissionResult {
        let checks = requirements
            .iter()
            .map(|(id, title)| Check {
                id: id.clone(),
                title: title.clone(),
                verdict: Verdict::Fail,
                evidence: format!("not graded: {}", finding.detail),
            })
            .collect();
        SubmissionResult::new(submission, command, seed, vec![finding], checks, weights)
    }

    /// The score in percent (0 when nothing is worth points).
    pub fn percent(&self) -> f64 {
        if self.max_points <= 0.0 {
            return 0.0;
        }
        (self.points / self.max_points * 1000.0).round() / 10.0
    }

    /// The checks it failed (warnings aside).
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }

    /// The check `id`.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, verdict: Verdict) -> Check {
        Check {
            id: id.to_owned(),
            title: format!("{id} holds"),
            verdict,
            evidence: String::new(),
        }
    }

    #[test]
    fn a_check_weighs_its_own_points_then_its_areas_then_one() {
        let weights = Weights(
            [("server".to_owned(), 2.0), ("server.utc".to_owned(), 5.0)]
                .into_iter()
                .collect(),
        );
        assert_eq!(weights.of("server.utc"), 5.0);
        assert_eq!(weights.of("server.encoding"), 2.0);
        assert_eq!(weights.of("client.prompt"), 1.0);
    }

    #[test]
    fn points_and_percent_follow_the_weights_a_warning_worth_half() {
        let weights = Weights([("server".to_owned(), 3.0)].into_iter().collect());
        let checks = vec![
            check("server.utc", Verdict::Pass),
            check("server.encoding", Verdict::Warn),
            check("client.prompt", Verdict::Fail),
        ];
        let result = SubmissionResult::new("s".into(), vec![], 1, vec![], checks, &weights);
        assert_eq!(result.max_points, 7.0);
        assert_eq!(result.points, 4.5);
        assert_eq!(result.percent(), 64.3);
        assert_eq!(result.failed().count(), 1);
    }

    #[test]
    fn an_ungraded_submission_fails_every_requirement_with_its_finding() {
        let requirements = vec![("server.utc".to_owned(), "UTC".to_owned())];
        let finding = Finding {
            kind: FindingKind::NothingToStart,
            detail: "no solution.py".to_owned(),
        };
        let result = SubmissionResult::ungraded(
            "empty".into(),
            vec![],
            1,
            finding,
            &requirements,
            &Weights::default(),
        );
        assert_eq!(result.percent(), 0.0);
        assert_eq!(result.checks[0].evidence, "not graded: no solution.py");
        assert_eq!(result.findings[0].kind, FindingKind::NothingToStart);
    }

    #[test]
    fn a_weight_naming_no_check_or_area_is_reported() {
        let weights = Weights(
            [("servr".to_owned(), 2.0), ("client".to_owned(), 1.0)]
                .into_iter()
                .collect(),
        );
        let ids = vec!["client.prompt".to_owned()];
        assert_eq!(weights.unknown(&ids), ["servr"]);
    }
}
