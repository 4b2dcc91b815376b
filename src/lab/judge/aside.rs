//! Samples the machine spoiled: a node's delay sample of a peer is set aside
//! when the emulator delivered the peer's answer late, because then it measures
//! the machine, not the link.
//!
//! A sample of B by A is A's `neighbor` event: its `delay_ms` ends at A's
//! receive stamp of B's answer, sent from B's timestamp server port (the
//! event's `port`). The emulator logs each frame with a TCP payload it wrote
//! late (`build::emulator::late`); a sample is set aside when such a frame
//! from B's port to A was written within [`window`] before the event's `ts`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::build::emulator::LateDelivery;
use crate::lab::plan::Plan;

/// Late answers kept per ordered pair, newest: a pair gets one answer per
/// `refresh_every × interval`, so this is hours of them even if all were late.
const KEPT: usize = 1024;

/// How far after the event's `ts` a late delivery still counts: the event is
/// printed after the answer arrived, so only clock reading order (both read
/// CLOCK_REALTIME on this machine; `ts` has microseconds) is allowed for.
const AFTER: Duration = Duration::from_millis(5);

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

/// One late answer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Late {
    /// When it was written, Unix seconds.
    at: f64,
    /// The TCP port it came from.
    source_port: u16,
    /// How late, microseconds.
    late_us: u32,
}

/// The emulator's late deliveries of frames with a TCP payload, by ordered pair
/// of the plan's nodes (emulator ports are the plan's nodes, in order).
#[derive(Debug, Clone, Default)]
pub struct LateAnswers {
    pairs: HashMap<(usize, usize), VecDeque<Late>>,
    /// Entries the emulator could not log (its ring overflowed): samples that
    /// may have been late but are graded.
    pub missed: u64,
}

impl LateAnswers {
    /// Adds one logged delivery.
    pub fn add(&mut self, late: &LateDelivery) {
        let kept = self
            .pairs
            .entry((usize::from(late.from), usize::from(late.to)))
            .or_default();
        if kept.len() == KEPT {
            kept.pop_front();
        }
        let late = Late {
            at: late.at_us as f64 / 1e6,
            source_port: late.source_port,
            late_us: late.late_us,
        };
        // In time order, which the emulator's log nearly always is already.
        let at = kept.partition_point(|k| k.at <= late.at);
        kept.insert(at, late);
    }

    /// How late (µs; the most, if several) the emulator delivered a frame from
    /// port `source_port` of node `from` to node `to` (plan indices) within
    /// `window` before `ts` (Unix seconds); none if it delivered none late.
    pub fn spoiled(
        &self,
        from: usize,
        to: usize,
        source_port: u16,
        ts: f64,
        window: Duration,
    ) -> Option<u32> {
        let (earliest, latest) = (ts - window.as_secs_f64(), ts + AFTER.as_secs_f64());
        self.pairs
            .get(&(from, to))?
            .iter()
            .rev()
            .skip_while(|l| l.at > latest)
            .take_while(|l| l.at >= earliest)
            .filter(|l| l.source_port == source_port)
            .map(|l| l.late_us)
            .max()
    }
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
            "set aside: {} of {} samples after warm-up ({:.1}%), whose answer the emulator \
             delivered late (by more than {} us, within {:.0} ms before the sample): they \
             measure the machine; pairs are graded on the rest{missed}",
            self.samples,
            self.of,
            self.percent(),
            crate::lab::build::emulator::LATE.as_micros(),
            self.window_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn late(at_ms: u64, from: u16, to: u16, port: u16, late_us: u32) -> LateDelivery {
        LateDelivery {
            at_us: 1_000_000_000_000 + at_ms * 1000,
            from,
            to,
            source_port: port,
            late_us,
        }
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
            Some(1_300)
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_105.0), window),
            Some(1_300)
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_111.0), window),
            None,
            "after the window"
        );
        assert_eq!(
            answers.spoiled(1, 0, 7000, at(1_003.0), window),
            Some(300),
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
    fn each_pair_keeps_a_bounded_log() {
        let mut answers = LateAnswers::default();
        for n in 0..KEPT as u64 + 10 {
            answers.add(&late(n, 0, 1, 7000, 100));
        }
        assert_eq!(answers.pairs[&(0, 1)].len(), KEPT);
        let window = Duration::from_millis(1);
        assert_eq!(
            answers.spoiled(0, 1, 7000, T0 + 0.003, window),
            None,
            "dropped"
        );
        assert_eq!(answers.spoiled(0, 1, 7000, T0 + 0.5, window), Some(100));
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
