//! How each program nobody here wrote ran: confined or not, as whom, within
//! which limits, and the limits it hit.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::lab::build::sandbox::spec::{BoxSpec, LimitHit};
use crate::lab::build::state::LabDir;
use crate::lab::plan::sandbox::Limits;
use crate::lab::plan::{Plan, Program};

/// One program's box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxReport {
    /// The node.
    pub node: String,
    /// Whether it ran confined.
    pub confined: bool,
    /// Its uid, confined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Its limits, confined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The limits it hit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits_hit: Vec<LimitHit>,
}

/// Every program node of `plan` (a command, or graded), from the specs and
/// the hits its boxes left in `dir`.
pub fn boxes(dir: &LabDir, plan: &Plan) -> Vec<BoxReport> {
    plan.nodes
        .iter()
        .filter(|n| n.grade || matches!(n.program, Program::Command { .. }))
        .map(|n| {
            let spec: Option<BoxSpec> = std::fs::read(dir.box_file(&n.name, "json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let hits = std::fs::read_to_string(dir.box_file(&n.name, "hits")).unwrap_or_default();
            BoxReport {
                node: n.name.clone(),
                confined: spec.is_some(),
                uid: spec.as_ref().map(|s| s.user.uid),
                limits: spec.as_ref().map(|s| s.limits),
                limits_hit: LimitHit::parse_all(&hits),
            }
        })
        .collect()
}

/// Lines for the text report.
pub fn render(boxes: &[BoxReport]) -> String {
    let mut out = String::new();
    for b in boxes {
        match (&b.limits, b.uid) {
            (Some(limits), Some(uid)) => {
                let _ = writeln!(
                    out,
                    "  program {}: confined as uid {uid}, own mount and PID namespaces, {}",
                    b.node,
                    limits.describe()
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  program {}: not confined (runs as root, as sdss does: [sandbox] enabled = false or --no-sandbox)",
                    b.node
                );
            }
        }
        for hit in &b.limits_hit {
            let _ = writeln!(out, "    limit hit: {} at t={:.1}s", hit.text, hit.at);
        }
    }
    out
}
