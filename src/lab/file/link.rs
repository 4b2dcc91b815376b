//! A link's shape as the lab file writes it: one view of the `delay`,
//! `jitter` and `loss` that `[defaults]`, `[[node]]`, `[[pair]]` and
//! `[[event]]` give, and the one place they are checked.

use std::time::Duration;

use toml::Spanned;

use super::{DurationValue, Locator, TopologyError};

/// Longest delay or jitter a link may be given: far beyond any exchange
/// timeout, well within what netem and the emulator schedule.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// A link's shape as a section writes it (`delay`, `jitter`, `loss`), each
/// value where it stands in the file: what the `[defaults]`, `[[node]]`,
/// `[[pair]]` and `[[event]]` sections give, checked here in one place and
/// read by the plan in one place (`plan::impairment`). A view, not a field
/// the sections flatten in: serde's `flatten` buffers the values and loses
/// the positions the errors name.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkShape<'a> {
    /// One-way delay.
    pub delay: Option<DurationValue>,
    /// Jitter (`delay ± jitter`).
    pub jitter: Option<DurationValue>,
    /// Loss probability.
    pub loss: Option<&'a Spanned<f64>>,
}

impl LinkShape<'_> {
    /// Whether it gives nothing.
    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.jitter.is_none() && self.loss.is_none()
    }

    /// Checks what it gives: a delay and a jitter both backends schedule, a
    /// loss that is a probability.
    pub(super) fn check(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        for DurationValue(duration, start) in [self.delay, self.jitter].into_iter().flatten() {
            if duration > MAX_DELAY {
                return Err(at.error(
                    Some(start..start),
                    format!(
                        "{duration:?} is too long for a link: expected at most {} s",
                        MAX_DELAY.as_secs()
                    ),
                ));
            }
        }
        check_loss(at, self.loss)
    }
}

/// A section that shapes a link: `shape()` from its `delay`, `jitter`, `loss`.
macro_rules! shaped {
    ($($section:ty),*) => {$(
        impl $section {
            /// The link's shape it gives.
            pub fn shape(&self) -> $crate::lab::file::LinkShape<'_> {
                $crate::lab::file::LinkShape {
                    delay: self.delay,
                    jitter: self.jitter,
                    loss: self.loss.as_ref(),
                }
            }
        }
    )*};
}
pub(crate) use shaped;

fn check_loss(at: &Locator<'_>, loss: Option<&Spanned<f64>>) -> Result<(), TopologyError> {
    if let Some(loss) = loss {
        let value = *loss.get_ref();
        if !(0.0..1.0).contains(&value) {
            return Err(at.error(
                Some(loss.span()),
                format!("loss {value} is out of range: expected a probability from 0 up to (not including) 1, e.g. 0.01 for 1%"),
            ));
        }
    }
    Ok(())
}
