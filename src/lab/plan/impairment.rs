//! What a link does to the frames that cross it. Shared by the lab plan and both
//! delay backends, so netem and the userspace emulator are told the same thing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Delay, jitter and loss of one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Impairment {
    /// Fixed one-way delay.
    #[serde(with = "crate::units::serde_duration")]
    pub delay: Duration,
    /// Uniform spread around `delay` (`delay ± jitter`).
    #[serde(with = "crate::units::serde_duration")]
    pub jitter: Duration,
    /// Probability in `0.0..=1.0` that a frame is dropped.
    pub loss: f64,
}

impl Impairment {
    /// Whether the link is a plain wire.
    pub fn is_none(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss == 0.0
    }
}
