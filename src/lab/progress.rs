//! Where the stages tell how far a long operation is. The caller passes a
//! sink in (a terminal bar or log lines: `report::progress::Console`; nothing,
//! in tests), so no stage depends on how progress is shown.

/// Receives the steps of `up`, `down` and a run.
pub trait Progress: Send + Sync {
    /// A new step of `total` units.
    fn step(&self, message: &str, total: u64);
    /// One unit of the current step done.
    fn inc(&self);
    /// Sets how far the current step is.
    fn set(&self, position: u64);
    /// A line that stays.
    fn line(&self, message: &str);
    /// A line the report printed after repeats (the delay backend): where
    /// both go to one terminal, the sink may leave it out.
    fn note(&self, message: &str) {
        self.line(message);
    }
    /// Where a long wait is now (the phase of a timeline, its next event),
    /// replacing the current step's count; shown only where it can be
    /// overwritten (a terminal), since it changes every second.
    fn status(&self, _message: &str) {}
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _message: &str, _total: u64) {}
    fn inc(&self) {}
    fn set(&self, _position: u64) {}
    fn line(&self, _message: &str) {}
}
