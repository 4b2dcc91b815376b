//! The wall clock as the protocol reads it: UTC seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// UTC seconds since the epoch, as Python's `time.time()` returns them.
pub fn wall_now() -> f64 {
    wall_seconds(SystemTime::now())
}

/// `at` in UTC seconds since the epoch.
pub fn wall_seconds(at: SystemTime) -> f64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}
