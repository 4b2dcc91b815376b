//! How long before a frame's due time the scheduler stops sleeping and spins.
//!
//! A timed sleep wakes late by the timer's and the scheduler's latency; spinning
//! through that latency keeps frames on time, and every microsecond spun more
//! is a microsecond of CPU taken from the lab's nodes (the scheduler runs
//! SCHED_FIFO, before all of them). So the window follows the wake-ups actually
//! seen: their usual lateness plus [`SpinWindow::SPREAD`] times its usual spread,
//! between [`SpinWindow::FLOOR`] and [`SpinWindow::CEILING`]. A rare later
//! wake-up costs that one frame the difference, which is what a fixed ceiling
//! would have spent on every frame.

use std::time::{Duration, Instant};

/// The spin window, learnt from how late timed sleeps wake.
#[derive(Debug, Clone, PartialEq)]
pub struct SpinWindow {
    /// Moving mean of the lateness, ns.
    mean_ns: f64,
    /// Moving mean absolute deviation of the lateness, ns.
    deviation_ns: f64,
}

impl SpinWindow {
    /// The shortest window.
    pub const FLOOR: Duration = Duration::from_micros(10);
    /// The longest window: more than a timer wake-up takes on a busy VM.
    pub const CEILING: Duration = Duration::from_micros(200);
    /// Weight of each new wake-up in the moving means (about the last 64 count).
    const WEIGHT: f64 = 1.0 / 64.0;
    /// Deviations of lateness the window covers beyond the mean.
    const SPREAD: f64 = 4.0;

    /// Starts at the ceiling, until wake-ups have been seen.
    pub fn new() -> SpinWindow {
        SpinWindow {
            mean_ns: Self::CEILING.as_nanos() as f64,
            deviation_ns: 0.0,
        }
    }

    /// The current window.
    pub fn get(&self) -> Duration {
        let window = self.mean_ns + Self::SPREAD * self.deviation_ns;
        Duration::from_nanos(window as u64).clamp(Self::FLOOR, Self::CEILING)
    }

    /// Learns from one timed sleep that woke `lateness` after it was due.
    pub fn woke_late_by(&mut self, lateness: Duration) {
        let lateness = lateness.as_nanos() as f64;
        let error = lateness - self.mean_ns;
        self.mean_ns += Self::WEIGHT * error;
        self.deviation_ns += Self::WEIGHT * (error.abs() - self.deviation_ns);
    }
}

/// A bound on the CPU spinning takes from the nodes: a token bucket filled at
/// [`SpinBudget::SHARE`] of one core, up to [`SpinBudget::BURST`]. A light lab
/// spins before every frame; under a dense stream of due times (a hundred
/// nodes measuring each other) spinning before each would take a core from
/// the nodes the lab measures, so frames beyond the budget are released by
/// the timed sleep alone, a wake-up's latency late.
#[derive(Debug, Clone, PartialEq)]
pub struct SpinBudget {
    tokens: Duration,
    last: Instant,
}

impl SpinBudget {
    /// Share of one core spinning may take, over time.
    pub const SHARE: f64 = 0.2;
    /// Spinning saved up while idle.
    pub const BURST: Duration = Duration::from_millis(20);

    /// A full bucket.
    pub fn new(now: Instant) -> SpinBudget {
        SpinBudget {
            tokens: Self::BURST,
            last: now,
        }
    }

    /// Whether spinning `window` fits in the budget at `now`.
    pub fn allows(&mut self, now: Instant, window: Duration) -> bool {
        let earned = now
            .saturating_duration_since(self.last)
            .mul_f64(Self::SHARE);
        self.tokens = (self.tokens + earned).min(Self::BURST);
        self.last = now;
        self.tokens >= window
    }

    /// Takes what a spin cost.
    pub fn spent(&mut self, spun: Duration) {
        self.tokens = self.tokens.saturating_sub(spun);
    }
}

impl Default for SpinWindow {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(wake_ups: impl IntoIterator<Item = u64>) -> Duration {
        let mut window = SpinWindow::new();
        for micros in wake_ups {
            window.woke_late_by(Duration::from_micros(micros));
        }
        window.get()
    }

    #[test]
    fn the_budget_allows_a_fifth_of_a_core_of_spinning_over_time() {
        let start = Instant::now();
        let mut budget = SpinBudget::new(start);
        let window = Duration::from_micros(100);
        // A frame every 100 us, each asking to spin its whole gap: over one
        // second about a fifth of them (plus the burst) may.
        let mut spun = 0;
        for i in 1..=10_000u32 {
            if budget.allows(start + window * i, window) {
                budget.spent(window);
                spun += 1;
            }
        }
        let allowed = (SpinBudget::SHARE * 10_000.0) as i32 + 200;
        assert!(
            (allowed - 20..=allowed + 1).contains(&spun),
            "{spun} of {allowed}"
        );
        // Idle, it fills again, up to the burst.
        assert!(budget.allows(start + Duration::from_secs(5), SpinBudget::BURST));
        assert!(!budget.allows(start + Duration::from_secs(5), SpinBudget::BURST + window));
    }

    #[test]
    fn starts_at_the_ceiling() {
        assert_eq!(SpinWindow::new().get(), SpinWindow::CEILING);
    }

    #[test]
    fn prompt_wake_ups_shrink_it_to_the_floor() {
        assert_eq!(after(std::iter::repeat_n(3, 2_000)), SpinWindow::FLOOR);
    }

    #[test]
    fn steady_wake_ups_set_it_to_their_lateness() {
        let window = after(std::iter::repeat_n(30, 2_000));
        assert!(
            window.abs_diff(Duration::from_micros(30)) < Duration::from_micros(1),
            "{window:?}"
        );
    }

    #[test]
    fn it_covers_the_usual_spread_of_wake_ups() {
        // Wake-ups 20 or 40 us late: mean 30, deviation 10, window about 70.
        let window = after((0..2_000).map(|i| if i % 2 == 0 { 20 } else { 40 }));
        assert!(window > Duration::from_micros(60), "{window:?}");
        assert!(window < Duration::from_micros(80), "{window:?}");
    }

    #[test]
    fn a_run_of_late_wake_ups_widens_it_and_is_forgotten() {
        let steady = std::iter::repeat_n(20, 2_000);
        let busy = std::iter::repeat_n(150, 50);
        let widened = after(steady.clone().chain(busy.clone()));
        assert!(widened > Duration::from_micros(150), "{widened:?}");
        let calm_again = after(steady.clone().chain(busy).chain(steady));
        assert!(calm_again < Duration::from_micros(25), "{calm_again:?}");
    }

    #[test]
    fn never_beyond_the_ceiling() {
        assert_eq!(after(std::iter::repeat_n(5_000, 100)), SpinWindow::CEILING);
    }
}
