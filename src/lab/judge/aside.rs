//! Samples the machine spoiled: a node's delay sample of a peer is set aside
//! when the emulator delivered the peer's answer late, because then it measures
//! the machine, not the link.
//!
//! A sample of B by A is A's `neighbor` event: its `delay_ms` runs from the
//! time B stamped in its answer to A's receive stamp of it, and the answer
//! comes from B's timestamp server port (the event's `port`). The emulator logs
//! each frame with a TCP payload it wrote late, or that reached it well after
//! the time it carries (B's process or kernel held it: `builder::emulator::late`);
//! a sample is set aside when such a frame from B's port to A was written
//! within [`window`] before the event's `ts`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::builder::emulator::late::HELD;
use crate::lab::plan::Plan;
use crate::lab::scenario::late::Spoil;

/// The narrowest and widest window before the event's `ts`.
const WINDOW_MIN: Duration = Duration::from_millis(50);
const WINDOW_MAX: Duration = Duration::from_secs(1);

/// How long before a `neighbor` event's `ts` a late answer spoils it: a quarter
/// of the time between two exchanges of one pair (`refresh_every × interval`),
/// so it never reaches the previous exchange's answer, within 50 ms to 1 s. The
/// event follows the answer by the rest of the exchange and the node's printing,
/// microseconds to milliseconds, or hundreds of ms on a machine so loaded that
/// its frames are late; at 1 s and every 4 broadcasts the window is 1 s of 4.
pub fn window(plan: &Plan) -> Duration {
    let settings = &plan.node_settings;
    (settings.interval * settings.refresh_every / 4).clamp(WINDOW_MIN, WINDOW_MAX)
}

/// Why samples were set aside, for a reason: the worst of each cause.
pub fn describe(spoils: &[Spoil]) -> String {
    let worst = spoils.iter().fold(Spoil::default(), |a, b| a.max(*b));
    let mut causes = Vec::new();
    if worst.late_us > 0 {
        causes.push(format!(
            "the emulator delivered it up to {:.3} ms late",
            f64::from(worst.late_us) / 1e3
        ));
    }
    if u128::from(worst.held_us) > HELD.as_micros() {
        causes.push(format!(
            "its sender sent it up to {:.3} ms after the time in it",
            f64::from(worst.held_us) / 1e3
        ));
    }
    format!("their answer was late ({})", causes.join("; "))
}

/// Samples set aside over the whole lab.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SetAside {
    /// Samples after warm-up set aside.
    pub samples: usize,
    /// Samples after warm-up, set aside or not.
    pub of: usize,
    /// How long before a sample a late answer spoils it, ms.
    pub window_ms: f64,
    /// Late deliveries the emulator could not log.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl SetAside {
    /// Share of the samples set aside, percent.
    pub fn percent(&self) -> f64 {
        if self.of == 0 {
            0.0
        } else {
            100.0 * self.samples as f64 / self.of as f64
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let missed = if self.missed > 0 {
            format!(
                "; {} late deliveries went unlogged (graded as on time)",
                self.missed
            )
        } else {
            String::new()
        };
        format!(
            "set aside: {} of {} samples after warm-up ({:.1}%), whose answer was late \
             (the emulator delivered it more than {} us late, or its sender sent it more \
             than {} us after the time in it; within {:.0} ms before the sample): they \
             measure the machine; pairs are graded on the rest{missed}",
            self.samples,
            self.of,
            self.percent(),
            crate::lab::builder::emulator::LATE.as_micros(),
            HELD.as_micros(),
            self.window_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::builder::emulator::LateDelivery;
    use crate::lab::scenario::late::LateAnswers;

    fn late(at_ms: u64, from: u16, to: u16, port: u16, late_us: u32) -> LateDelivery {
        LateDelivery {
            at_us: 1_000_000_000_000 + at_ms * 1000,
            from,
            to,
            source_port: port,
            late_us,
            held_us: 20,
        }
    }

    fn spoil(late_us: u32, held_us: u32) -> Option<Spoil> {
        Some(Spoil { late_us, held_us })
    }

    const T0: f64 = 1_000_000.0;

    #[test]
    fn a_sample_is_spoiled_only_by_its_own_late_answer_inside_the_window() {
        let mut answers = LateAnswers::default();
        answers.add(&late(1_000, 1, 0, 7000, 300));
        answers.add(&late(1_010, 1, 0, 7000, 1_300));
        answers.add(&late(1_020, 1, 0, 45_000, 9_000)); // 1's client writing to 0's server
        answers.add(&late(1_020, 2, 0, 7000, 9_000)); // another peer
        let window = Duration::from_millis(100);
        let at = |ms: f64| T0 + ms / 1e3;
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_050.0), window),
            spoil(1_300, 20)
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_105.0), window),
            spoil(1_300, 20)
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_111.0), window),
            None,
            "after the window"
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_003.0), window),
            spoil(300, 20),
            "the first only"
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(990.0), window),
            None,
            "before both"
        );
        assert_eq!(
            answers.spoiled(0, 1, 7000, at(1_050.0), window),
            None,
            "the other way"
        );
        assert_eq!(answers.spoiled(1, 2, 7000, at(1_050.0), window), None);
    }

    #[test]
    fn an_answer_its_sender_held_spoils_like_a_late_one_and_reasons_name_both() {
        let mut answers = LateAnswers::default();
        let mut held = late(1_000, 1, 0, 7000, 0);
        held.held_us = 12_000;
        answers.add(&held);
        answers.add(&late(1_001, 1, 0, 7000, 400));
        let window = Duration::from_millis(100);
        let worst = answers.spoiled(1, 0, 7000, T0 + 1.050, window);
        assert_eq!(worst, spoil(400, 12_000), "the worst of each");
        assert_eq!(
            describe(&[Spoil {
                late_us: 1_300,
                held_us: 20
            }]),
            "their answer was late (the emulator delivered it up to 1.300 ms late)"
        );
        assert_eq!(
            describe(&[spoil(0, 12_000).unwrap(), spoil(400, 30).unwrap()]),
            "their answer was late (the emulator delivered it up to 0.400 ms late; \
             its sender sent it up to 12.000 ms after the time in it)"
        );
    }

    #[test]
    fn the_window_is_a_quarter_of_a_pairs_exchange_period_within_bounds() {
        let plan_with = |defaults: &str| {
            Plan::from_text(&format!(
                "name = \"t\"\n[defaults]\n{defaults}\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n"
            ))
        };
        let ms = Duration::from_millis;
        assert_eq!(
            window(&plan_with("interval = \"1s\"\nrefresh_every = 4")),
            ms(1000)
        );
        assert_eq!(
            window(&plan_with("interval = \"200ms\"\nrefresh_every = 3")),
            ms(150)
        );
        assert_eq!(
            window(&plan_with("interval = \"20ms\"\nrefresh_every = 2")),
            ms(50)
        );
        assert_eq!(
            window(&plan_with("interval = \"5s\"\nrefresh_every = 10")),
            ms(1000)
        );
    }
}
