//! What a link does to the frames that cross it. Shared by the lab plan and both
//! delay backends, so netem and the userspace emulator are told the same thing;
//! and the values a lab file's section gives it ([`LinkValues`], read from a
//! [`LinkShape`] here alone).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::file::LinkShape;

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

/// A link that passes nothing.
pub const CUT: Impairment = Impairment {
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
    loss: 1.0,
};

/// Combines two impairments crossed one after the other.
pub fn in_series(first: &Impairment, second: &Impairment) -> Impairment {
    Impairment {
        delay: first.delay + second.delay,
        jitter: first.jitter + second.jitter,
        loss: 1.0 - (1.0 - first.loss) * (1.0 - second.loss),
    }
}

impl Impairment {
    /// Whether the link is a plain wire.
    pub fn is_none(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss == 0.0
    }
}

/// New values for a link or a pair; absent ones keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkValues {
    /// Delay.
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub delay: Option<Duration>,
    /// Jitter.
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub jitter: Option<Duration>,
    /// Loss.
    pub loss: Option<f64>,
}

impl LinkValues {
    /// `to` with these values in place of its own.
    pub fn apply(&self, to: Impairment) -> Impairment {
        Impairment {
            delay: self.delay.unwrap_or(to.delay),
            jitter: self.jitter.unwrap_or(to.jitter),
            loss: self.loss.unwrap_or(to.loss),
        }
    }
}

impl From<LinkShape<'_>> for LinkValues {
    fn from(shape: LinkShape<'_>) -> LinkValues {
        LinkValues {
            delay: shape.delay.map(|d| d.0),
            jitter: shape.jitter.map(|d| d.0),
            loss: shape.loss.map(|l| *l.get_ref()),
        }
    }
}

impl std::fmt::Display for LinkValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(d) = self.delay {
            parts.push(format!("delay {}", crate::units::format_duration(d)));
        }
        if let Some(j) = self.jitter {
            parts.push(format!("jitter {}", crate::units::format_duration(j)));
        }
        if let Some(l) = self.loss {
            parts.push(format!("loss {}%", l * 100.0));
        }
        f.write_str(&parts.join(", "))
    }
}
