//! What the topology pictures share (the SVG star, the DOT graph, the
//! dry-run's lines): a link in words, and how a node's pairs went.

use std::fmt::Write;

use crate::lab::judge::delays::PairVerdict;
use crate::lab::plan::impairment::{describe_shape, Impairment};
use crate::lab::plan::shape::Loss;
use crate::lab::plan::NodePlan;
use crate::units::format_duration;

use super::Report;

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

pub(super) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

pub(super) fn ms(duration: std::time::Duration) -> f64 {
    round3(duration.as_secs_f64() * 1000.0)
}

/// Mean error (measured - expected, ms) of the measured pairs `node` is in.
pub(super) fn mean_error(node: &NodePlan, report: &Report) -> Option<f64> {
    let errors: Vec<f64> = report
        .pairs
        .iter()
        .filter(|p| p.from == node.name || p.to == node.name)
        .filter_map(|p| p.error_ms)
        .collect();
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

/// How a node's pairs went, for its colour in the star.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeVerdict {
    /// Every pair it is in passed.
    Pass,
    /// Some pair it is in failed.
    Fail,
    /// It is in no measured pair (a grader, or nothing was measured).
    Unmeasured,
}

impl NodeVerdict {
    pub(super) fn of(node: &str, report: &Report) -> NodeVerdict {
        let mut pairs = report
            .pairs
            .iter()
            .filter(|p| p.from == node || p.to == node)
            .filter(|p| p.verdict != PairVerdict::Skipped)
            .peekable();
        if pairs.peek().is_none() {
            return NodeVerdict::Unmeasured;
        }
        if pairs.any(|p| p.verdict == PairVerdict::Fail) {
            NodeVerdict::Fail
        } else {
            NodeVerdict::Pass
        }
    }

    pub(super) fn colour(self) -> &'static str {
        match self {
            NodeVerdict::Pass => "#2f855a",
            NodeVerdict::Fail => "#c53030",
            NodeVerdict::Unmeasured => "#a0aec0",
        }
    }

    /// Every verdict, in the legends' order.
    pub(super) const ALL: [NodeVerdict; 3] = [
        NodeVerdict::Pass,
        NodeVerdict::Fail,
        NodeVerdict::Unmeasured,
    ];

    /// The light fill of a text graph's node box (DOT, Mermaid).
    pub(super) fn fill(self) -> &'static str {
        match self {
            NodeVerdict::Pass => "#c6f6d5",
            NodeVerdict::Fail => "#fed7d7",
            NodeVerdict::Unmeasured => "#edf2f7",
        }
    }

    /// Its name as a class (Mermaid's `classDef`).
    pub(super) fn class(self) -> &'static str {
        match self {
            NodeVerdict::Pass => "pass",
            NodeVerdict::Fail => "fail",
            NodeVerdict::Unmeasured => "unmeasured",
        }
    }

    pub(super) fn word(self) -> &'static str {
        match self {
            NodeVerdict::Pass => "every pair passes",
            NodeVerdict::Fail => "some pair fails",
            NodeVerdict::Unmeasured => "not measured",
        }
    }
}
