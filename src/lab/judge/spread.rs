//! A pair's spread: how far its samples stray from the median that is
//! graded, and when that is far enough for the report to warn.

/// How many tolerances a passing pair's p95 may be away from its expected
/// delay before the report flags its spread.
pub const SPREAD_TOLERANCES: f64 = 3.0;

/// The least distance, ms, that flags a spread: a loaded 2-core machine
/// delays single samples by a scheduler tick (4 ms at 250 Hz) when a node
/// or the emulator waits for a core, which says nothing of the link.
pub const SPREAD_FLOOR_MS: f64 = 4.0;

/// Whether a p95 `error` (ms, from the expected delay) is far beyond `tolerance`:
/// more than [`SPREAD_TOLERANCES`] of it and more than [`SPREAD_FLOOR_MS`],
/// beyond what the injected `jitter` (ms) spreads by itself (twice it: a
/// normal draw's p95 is 1.64 of its deviation). A partition lab whose 6 ms
/// pair measured single samples of 23.8 ms (0.5 ms tolerance) is flagged; a
/// tick's hiccup, or a jittered link's own spread, is not.
pub fn spread_beyond(error: f64, tolerance: f64, jitter: f64) -> bool {
    error.abs() > (SPREAD_TOLERANCES * tolerance).max(SPREAD_FLOOR_MS) + 2.0 * jitter
}

/// The `share` (0..=1) percentile of non-empty `values`, by nearest rank.
pub fn percentile(values: &[f64], share: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
