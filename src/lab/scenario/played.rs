//! The timeline's events as the scenario played them, for the judge and the report.

use serde::{Deserialize, Serialize};

/// One event as the scenario played it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Played {
    /// Index into the plan's timeline events.
    pub event: usize,
    /// The event, in words.
    pub what: String,
    /// When it was played, seconds after the nodes started.
    pub at_s: f64,
    /// How long the backend took to confirm a link change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<f64>,
    /// Why it could not be played.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
