//! How each program nobody here wrote ran: confined or not, as whom, within
//! which limits, and the limits it hit, read back from what its box left.

use serde::{Deserialize, Serialize};

use super::spec::{BoxSpec, LimitHit};
use crate::lab::builder::state::LabDir;
use crate::lab::plan::sandbox::Limits;
use crate::lab::plan::{Plan, Program};

/// One program's box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxOutcome {
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
pub fn outcomes(dir: &LabDir, plan: &Plan) -> Vec<BoxOutcome> {
    plan.nodes
        .iter()
        .filter(|n| n.grade || matches!(n.program, Program::Command { .. }))
        .map(|n| {
            let spec: Option<BoxSpec> = std::fs::read(dir.box_file(&n.name, "json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let hits = std::fs::read_to_string(dir.box_file(&n.name, "hits")).unwrap_or_default();
            BoxOutcome {
                node: n.name.clone(),
                confined: spec.is_some(),
                uid: spec.as_ref().map(|s| s.user.uid),
                limits: spec.as_ref().map(|s| s.limits),
                limits_hit: LimitHit::parse_all(&hits),
            }
        })
        .collect()
}
