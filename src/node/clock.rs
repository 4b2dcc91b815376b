//! The wall clock as the protocol reads it: UTC seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// UTC seconds since the epoch, as Python's `time.time()` returns them.
pub fn wall_now() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}
