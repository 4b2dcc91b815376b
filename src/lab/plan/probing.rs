//! The link probe as a lab asks for it (`[verify] link`): how fast and how
//! long each ordered pair's stream runs, and whether the lab can be probed
//! at all. Settled here, before anything is built, so a lab that cannot be
//! probed is refused before its namespaces exist.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::lab::file::probing::{MAX_DURATION, MAX_RATE, MAX_SIZE, MIN_SIZE};

use super::shape::SlotSpacing;
use super::Plan;

/// Packets per second of each pair when the file does not say.
pub const RATE: u32 = 100;
/// How long each pair sends when the file does not say.
pub const DURATION: Duration = Duration::from_secs(10);
/// UDP payload bytes of each packet when the file does not say.
pub const SIZE: u16 = 64;
/// Most packets per second over every pair at once: beyond it the probe's
/// own threads, not the links, would decide what is measured on two cores.
pub const MAX_TOTAL_RATE: u64 = 20_000;

/// How the link probe sends, per ordered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkProbing {
    /// Packets per second.
    pub rate: u32,
    /// How long each pair sends.
    #[serde(with = "crate::units::serde_duration")]
    pub duration: Duration,
    /// UDP payload bytes of each packet.
    pub size: u16,
}

impl Default for LinkProbing {
    fn default() -> Self {
        LinkProbing {
            rate: RATE,
            duration: DURATION,
            size: SIZE,
        }
    }
}

impl LinkProbing {
    /// Packets each pair sends.
    pub fn packets(&self) -> u64 {
        (f64::from(self.rate) * self.duration.as_secs_f64()).round() as u64
    }
}

/// Why a lab's links cannot be probed as asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProbingRefusal {
    /// The probe compares two ends' clocks: one machine's.
    #[error(
        "link probe: the lab spans several hosts ([[host]]), whose clocks the probe cannot share; probe a lab on one machine"
    )]
    Hosts,
    /// The links change on the timeline, and the probe judges them as the
    /// file sets them.
    #[error(
        "link probe: the lab's timeline changes its links, and the probe judges each link as the file sets it; probe a lab without link events"
    )]
    Timeline,
    /// Too many packets per second over all pairs.
    #[error(
        "link probe: {pairs} pairs at {rate} packets/s is {total} packets/s, more than {MAX_TOTAL_RATE}: set [verify] link_rate to {fits} or less"
    )]
    TooMuch {
        /// Ordered pairs probed.
        pairs: usize,
        /// Packets per second of each.
        rate: u32,
        /// Their product.
        total: u64,
        /// The highest rate that fits.
        fits: u64,
    },
    /// A setting out of its range.
    #[error("link probe: {0}")]
    Setting(String),
}

/// Whether `pairs` of `plan`'s ordered pairs can be probed as it asks
/// (`Ok` when not asked).
pub fn check(plan: &Plan, pairs: usize) -> Result<(), ProbingRefusal> {
    let Some(probing) = plan.verify.link else {
        return Ok(());
    };
    if !plan.hosts.is_empty() {
        return Err(ProbingRefusal::Hosts);
    }
    if plan.timeline.changes_links() {
        return Err(ProbingRefusal::Timeline);
    }
    check_settings(&probing)?;
    let total = u64::from(probing.rate) * pairs as u64;
    if total > MAX_TOTAL_RATE {
        return Err(ProbingRefusal::TooMuch {
            pairs,
            rate: probing.rate,
            total,
            fits: MAX_TOTAL_RATE / pairs.max(1) as u64,
        });
    }
    Ok(())
}

/// Whether each setting is in its range and sends at least one packet.
pub fn check_settings(probing: &LinkProbing) -> Result<(), ProbingRefusal> {
    let refuse = |why: String| Err(ProbingRefusal::Setting(why));
    if !(1..=MAX_RATE).contains(&probing.rate) {
        return refuse(format!(
            "link_rate {} packets/s: expected 1 to {MAX_RATE}",
            probing.rate
        ));
    }
    if probing.duration > MAX_DURATION || probing.packets() == 0 {
        return refuse(format!(
            "link_duration {:?} at {} packets/s: expected at least one packet and at most {:?}",
            probing.duration, probing.rate, MAX_DURATION
        ));
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&probing.size) {
        return refuse(format!(
            "link_size {} bytes: expected {MIN_SIZE} to {MAX_SIZE}",
            probing.size
        ));
    }
    Ok(())
}

/// How long receivers keep listening after the last packet left: the
/// longest a pair's packet can take (its delay, four jitters, a slot's
/// longest wait, a full rate queue), and a second's margin.
pub fn drain(plan: &Plan) -> Duration {
    let probing = plan.verify.link.unwrap_or_default();
    let wire = usize::from(probing.size) + 14 + 20 + 8;
    plan.expected
        .iter()
        .map(|pair| {
            let link = &pair.impairment;
            let queue = link.rate.map_or(Duration::ZERO, |rate| {
                rate.transmit_time(wire)
                    .saturating_mul(link.limit.unwrap_or(1000))
            });
            let slot = link.slot.map_or(Duration::ZERO, |s| match s.spacing {
                SlotSpacing::Range { max, .. } => max,
                SlotSpacing::Distribution { delay, jitter, .. } => delay + jitter.saturating_mul(4),
            });
            link.delay + link.jitter.saturating_mul(4) + queue + slot
        })
        .max()
        .unwrap_or_default()
        .min(Duration::from_secs(30))
        + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"20ms\"\njitter = \"5ms\"\n[[node]]\nname = \"b\"\n";

    #[test]
    fn a_lab_that_asks_nothing_is_not_probed_and_one_that_asks_gets_the_defaults() {
        let plan = Plan::from_text(TWO);
        assert_eq!(plan.verify.link, None);
        assert_eq!(check(&plan, plan.expected.len()), Ok(()));
        let plan = Plan::from_text(&format!("{TWO}[verify]\nlink = true\n"));
        assert_eq!(plan.verify.link, Some(LinkProbing::default()));
        assert_eq!(plan.verify.link.unwrap().packets(), 1000);
        assert_eq!(check(&plan, plan.expected.len()), Ok(()));
    }

    #[test]
    fn the_file_sets_rate_duration_and_size() {
        let plan = Plan::from_text(&format!(
            "{TWO}[verify]\nlink = true\nlink_rate = 50\nlink_duration = \"4s\"\nlink_size = 200\n"
        ));
        assert_eq!(
            plan.verify.link,
            Some(LinkProbing {
                rate: 50,
                duration: Duration::from_secs(4),
                size: 200
            })
        );
    }

    #[test]
    fn too_many_packets_over_all_pairs_is_refused_with_the_rate_that_fits() {
        let nodes: String = (0..20)
            .map(|i| format!("[[node]]\nname = \"n{i}\"\n"))
            .collect();
        let plan = Plan::from_text(&format!("name = \"t\"\n{nodes}[verify]\nlink = true\n"));
        let refusal = check(&plan, plan.expected.len()).unwrap_err();
        assert_eq!(
            refusal,
            ProbingRefusal::TooMuch {
                pairs: 380,
                rate: 100,
                total: 38_000,
                fits: 52
            }
        );
        assert!(refusal.to_string().contains("link_rate to 52"), "{refusal}");
    }

    #[test]
    fn a_lab_whose_timeline_changes_links_is_refused() {
        let plan = Plan::from_text(&format!(
            "{TWO}[verify]\nlink = true\n[[event]]\nat = \"2s\"\naction = \"cut\"\nnode = \"a\"\n"
        ));
        assert_eq!(
            check(&plan, plan.expected.len()),
            Err(ProbingRefusal::Timeline)
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let bad = |rate, secs, size| {
            check_settings(&LinkProbing {
                rate,
                duration: Duration::from_secs_f64(secs),
                size,
            })
        };
        assert!(bad(100, 10.0, 64).is_ok());
        assert!(bad(0, 10.0, 64).is_err());
        assert!(bad(MAX_RATE + 1, 10.0, 64).is_err());
        assert!(bad(1, 0.1, 64).is_err(), "no packet at all");
        assert!(bad(100, 601.0, 64).is_err());
        assert!(bad(100, 10.0, MIN_SIZE - 1).is_err());
        assert!(bad(100, 10.0, MAX_SIZE + 1).is_err());
    }

    #[test]
    fn receivers_wait_out_the_longest_path_and_a_margin() {
        let plan = Plan::from_text(&format!("{TWO}[verify]\nlink = true\n"));
        // a's link: 20 ms and four 5 ms jitters, once (b adds nothing).
        assert_eq!(drain(&plan), Duration::from_millis(1040));
    }
}
