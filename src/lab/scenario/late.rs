//! The emulator's late deliveries as the lab reads them: its log followed as it
//! grows, like the counters beside it ([`crate::lab::builder::emulator_totals`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use crate::lab::builder::emulator::LateDelivery;
use crate::lab::builder::state::LabDir;
use crate::lab::builder::LATE_LOG;
use crate::lab::plan::backend::BackendKind;

use super::tail::Lines;

/// Late answers kept per ordered pair, newest: a pair gets one answer per
/// `refresh_every × interval`, so this is hours of them even if all were late.
const KEPT: usize = 1024;

/// How far after the event's `ts` a late delivery still counts: the event is
/// printed after the answer arrived, so only clock reading order (both read
/// CLOCK_REALTIME on this machine; `ts` has microseconds) is allowed for.
const AFTER: Duration = Duration::from_millis(5);

/// One late answer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Late {
    /// When it was written, Unix seconds.
    at: f64,
    /// The TCP port it came from.
    source_port: u16,
    /// How it was late.
    spoil: Spoil,
}

/// How a sample's answer was late (the most, if several frames were).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spoil {
    /// How late the emulator wrote it, µs (0: on time).
    pub late_us: u32,
    /// How long after the time it carries it reached the emulator, µs.
    pub held_us: u32,
}

impl Spoil {
    /// The worse of two, cause by cause.
    pub fn max(self, other: Spoil) -> Spoil {
        Spoil {
            late_us: self.late_us.max(other.late_us),
            held_us: self.held_us.max(other.held_us),
        }
    }
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
            spoil: Spoil {
                late_us: late.late_us,
                held_us: late.held_us,
            },
        };
        // In time order, which the emulator's log nearly always is already.
        let at = kept.partition_point(|k| k.at <= late.at);
        kept.insert(at, late);
    }

    /// How late a frame from port `source_port` of node `from` to node `to`
    /// (plan indices) was, written within `window` before `ts` (Unix seconds);
    /// none if no such frame was late.
    pub fn spoiled(
        &self,
        from: usize,
        to: usize,
        source_port: u16,
        ts: f64,
        window: Duration,
    ) -> Option<Spoil> {
        let (earliest, latest) = (ts - window.as_secs_f64(), ts + AFTER.as_secs_f64());
        self.pairs
            .get(&(from, to))?
            .iter()
            .rev()
            .skip_while(|l| l.at > latest)
            .take_while(|l| l.at >= earliest)
            .filter(|l| l.source_port == source_port)
            .map(|l| l.spoil)
            .reduce(Spoil::max)
    }
}

/// Follows the emulator's late log into [`LateAnswers`].
#[derive(Debug)]
pub struct LateFollower {
    /// The log, when the emulator carries the lab (netem and no delays have none).
    log: Option<Lines>,
    answers: LateAnswers,
}

impl LateFollower {
    /// Follows the late log of the lab in `dir` from its beginning, if its
    /// backend is the emulator.
    pub fn new(dir: &LabDir) -> LateFollower {
        let emulator = dir.state.backend == Some(BackendKind::Emulator);
        LateFollower::at(emulator.then(|| dir.emulator_file(LATE_LOG)))
    }

    fn at(path: Option<PathBuf>) -> LateFollower {
        LateFollower {
            log: path.map(Lines::new),
            answers: LateAnswers::default(),
        }
    }

    /// Reads what the emulator appended since the last poll; the late answers
    /// so far, or none when there is no late log to follow. An unreadable log
    /// reads as no more late answers: grading goes on, setting fewer aside.
    pub fn poll(&mut self) -> Option<&LateAnswers> {
        let log = self.log.as_mut()?;
        let complete = log.read().map(|read| read.complete).unwrap_or_default();
        for line in complete.lines() {
            if let Some(late) = LateDelivery::parse(line) {
                self.answers.add(&late);
            } else if let Some(missed) = line.strip_prefix("missed ") {
                self.answers.missed += missed.trim().parse::<u64>().unwrap_or(0);
            }
        }
        Some(&self.answers)
    }

    /// The late answers read so far (none without a late log), reading no more.
    pub fn into_answers(self) -> Option<LateAnswers> {
        self.log.map(|_| self.answers)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    #[test]
    fn follows_the_log_as_it_grows_and_counts_what_the_emulator_missed() {
        let dir = std::env::temp_dir().join(format!("sdss-late-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("late.log");
        let mut follower = LateFollower::at(Some(path.clone()));
        assert!(follower.poll().is_some(), "no log yet: nothing late so far");
        let mut file = File::create(&path).unwrap();
        let late = LateDelivery {
            at_us: 2_000_000,
            from: 1,
            to: 0,
            source_port: 7000,
            late_us: 900,
            held_us: 40,
        };
        let line = late.line();
        file.write_all(&line.as_bytes()[..5]).unwrap();
        let window = Duration::from_millis(10);
        let spoiled = |f: &mut LateFollower| f.poll().unwrap().spoiled(1, 0, 7000, 2.005, window);
        assert_eq!(spoiled(&mut follower), None, "half a line waits");
        file.write_all(&line.as_bytes()[5..]).unwrap();
        file.write_all(b"missed 3\n").unwrap();
        assert_eq!(spoiled(&mut follower).map(|s| s.late_us), Some(900));
        assert_eq!(follower.poll().unwrap().missed, 3);
        assert!(LateFollower::at(None).poll().is_none(), "netem: no log");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_pair_keeps_a_bounded_log() {
        let mut answers = LateAnswers::default();
        for n in 0..KEPT as u64 + 10 {
            answers.add(&LateDelivery {
                at_us: 1_000_000_000_000 + n * 1000,
                from: 0,
                to: 1,
                source_port: 7000,
                late_us: 100,
                held_us: 20,
            });
        }
        assert_eq!(answers.pairs[&(0, 1)].len(), KEPT);
        let window = Duration::from_millis(1);
        assert_eq!(
            answers.spoiled(0, 1, 7000, 1_000_000.0 + 0.003, window),
            None,
            "dropped"
        );
        assert_eq!(
            answers.spoiled(0, 1, 7000, 1_000_000.0 + 0.5, window),
            Some(Spoil {
                late_us: 100,
                held_us: 20
            })
        );
    }
}
