//! What an SDSS exchange measures across a shaped path, so that a pair fails
//! when its link does not do what was asked, not because a shape was asked.
//!
//! A node's delay sample is the one-way delay of the segment that carries the
//! peer's time (8 bytes of payload: a 74-byte frame with TCP's timestamps),
//! and a pair is graded on the median of its last `n` samples. A shape moves
//! that median, or spreads it:
//!
//! - **rate**: netem holds each frame for its time on the wire, so the
//!   frame's transmit time at the (slowest) rate is added to the expected
//!   delay, and once more to the tolerance for a second rated link in series;
//! - **slot**: a frame waits for the next slot, on average half a spacing for
//!   traffic as sparse as an exchange, at most a whole one: half the mean
//!   spacing is added to the expected delay and half the longest to the
//!   tolerance;
//! - **jitter**: the median of `n` draws lies within `z * SE` of the delay,
//!   `SE = 1 / (2 f(0) sqrt(n))` the median's standard error for a density `f`
//!   at the centre: `J / sqrt(n)` for a uniform `± J`, `1.2533 J / sqrt(n)`
//!   for a normal one of deviation `J` (used for the Pareto tables too, which
//!   netem scales to the same deviation); correlated draws count as fewer,
//!   `n (1 - rho) / (1 + rho)`; `z` = 3.29 (99.9%), so a lab of hundreds of
//!   pairs rarely fails one by chance;
//! - **loss, corruption, duplicates, reorders**: a lost or corrupted segment
//!   is sent again a retransmission timeout later, a reordered one skips the
//!   delay: each moves single samples, not the median, while fewer than half
//!   of a pair's samples are touched (any shape below 20% per frame).

use std::time::Duration;

use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::{Distribution, SlotSpacing};
use crate::lab::plan::VerifySettings;

/// Bytes of the frame that carries a peer's time: Ethernet 14, IPv4 20, TCP
/// 20 with 12 of timestamps, and the 8-byte double.
pub const TIMESTAMP_FRAME: usize = 74;

/// Two-sided 99.9% quantile of the normal distribution.
const Z: f64 = 3.29;

/// What a pair's median delay should be across `link`, and how much more than
/// the lab's tolerance it may be off by, over `samples` samples.
pub fn expected(link: &Impairment, samples: u32) -> (Duration, Duration) {
    let mut delay = link.delay;
    let mut spread = Duration::ZERO;
    if let Some(rate) = link.rate {
        let wire = rate.transmit_time(TIMESTAMP_FRAME);
        delay += wire;
        spread += wire;
    }
    if let Some(slot) = link.slot {
        let (mean, longest) = match slot.spacing {
            SlotSpacing::Range { min, max } => ((min + max) / 2, max),
            SlotSpacing::Distribution { delay, jitter, .. } => (delay, delay + jitter * 3),
        };
        delay += mean / 2;
        spread += longest / 2;
    }
    spread += jitter_spread(link, samples);
    (delay, spread)
}

/// The delay a pair's median should show across `link` over `samples`
/// samples, and the tolerance it is judged with: the lab's, plus the shape's
/// spread.
pub fn judged(verify: &VerifySettings, link: &Impairment, samples: u32) -> (Duration, Duration) {
    let (delay, spread) = expected(link, samples);
    (delay, verify.tolerance_for(delay) + spread)
}

/// `z` standard errors of the median of `samples` jittered draws.
fn jitter_spread(link: &Impairment, samples: u32) -> Duration {
    if link.jitter.is_zero() || samples == 0 {
        return Duration::ZERO;
    }
    let rho = link.delay_correlation.clamp(0.0, 0.99);
    let independent = (f64::from(samples) * (1.0 - rho) / (1.0 + rho)).max(1.0);
    let per_jitter = match link.distribution {
        Distribution::Uniform => 1.0,
        _ => (std::f64::consts::PI / 2.0).sqrt(),
    };
    link.jitter.mul_f64(Z * per_jitter / independent.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::shape::{Rate, Slot};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_plain_delay_is_expected_as_it_is_with_nothing_more_allowed() {
        let link = Impairment {
            delay: 10 * MS,
            ..Impairment::default()
        };
        assert_eq!(expected(&link, 9), (10 * MS, Duration::ZERO));
    }

    #[test]
    fn jitter_allows_its_medians_spread_and_less_with_more_samples() {
        let uniform = Impairment {
            delay: 10 * MS,
            jitter: 3 * MS,
            ..Impairment::default()
        };
        // 3.29 * 3 ms / sqrt(9) = 3.29 ms.
        let (delay, spread) = expected(&uniform, 9);
        assert_eq!(delay, 10 * MS);
        assert!(
            (spread.as_secs_f64() * 1e3 - 3.29).abs() < 1e-6,
            "{spread:?}"
        );
        assert!(expected(&uniform, 36).1 < spread);
        let normal = Impairment {
            distribution: Distribution::Normal,
            ..uniform
        };
        assert!(expected(&normal, 9).1 > spread);
        let correlated = Impairment {
            delay_correlation: 0.5,
            ..uniform
        };
        assert!(expected(&correlated, 9).1 > spread);
    }

    #[test]
    fn a_rate_adds_the_frames_time_on_the_wire_and_a_slot_half_a_spacing() {
        let slow = Impairment {
            delay: 10 * MS,
            rate: Some(Rate {
                bits_per_second: 64_000,
                packet_overhead: 0,
                cell_size: 0,
                cell_overhead: 0,
            }),
            ..Impairment::default()
        };
        // 74 bytes at 64 kbit/s: 9.25 ms.
        let (delay, spread) = expected(&slow, 9);
        assert_eq!(delay, 10 * MS + Duration::from_micros(9250));
        assert_eq!(spread, Duration::from_micros(9250));
        let slotted = Impairment {
            delay: 10 * MS,
            slot: Some(Slot {
                spacing: SlotSpacing::Range {
                    min: 2 * MS,
                    max: 4 * MS,
                },
                packets: None,
                bytes: None,
            }),
            ..Impairment::default()
        };
        assert_eq!(expected(&slotted, 9), (11500 * MS / 1000, 2 * MS));
    }
}
