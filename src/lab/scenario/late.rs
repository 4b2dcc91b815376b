//! The emulator's late deliveries as the lab reads them: its log followed as it
//! grows, like the counters beside it ([`crate::lab::builder::emulator_totals`]).

use std::path::PathBuf;

use crate::lab::builder::emulator::LateDelivery;
use crate::lab::builder::state::LabDir;
use crate::lab::builder::LATE_LOG;
use crate::lab::judge::aside::LateAnswers;
use crate::lab::plan::backend::BackendKind;

use super::tail::Lines;

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
}
