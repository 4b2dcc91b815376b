//! This process's own readings for its `process_*` metrics, through the
//! `procfs` crate: the standard set every Prometheus client exports, so that
//! a dashboard made for any exporter shows a node's CPU, memory and files.

use procfs::process::{LimitValue, Process};

/// One reading of this process; a field that could not be read is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// User + system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` too when unlimited).
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the epoch.
    pub start_time_seconds: Option<f64>,
}

/// Reads this process now. Soft: what cannot be read is left out.
pub fn myself() -> Reading {
    let Ok(me) = Process::myself() else {
        return Reading::default();
    };
    let mut reading = Reading::default();
    let ticks = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        reading.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        reading.resident_bytes = Some(stat.rss.saturating_mul(procfs::page_size()));
        reading.virtual_bytes = Some(stat.vsize);
        reading.start_time_seconds = procfs::boot_time_secs()
            .ok()
            .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
    }
    reading.open_fds = me.fd_count().ok().map(|n| n as u64);
    reading.max_fds = me
        .limits()
        .ok()
        .and_then(|limits| match limits.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        });
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_running_with_memory_and_files() {
        let reading = myself();
        assert!(reading.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(reading.resident_bytes.is_some_and(|b| b > 0));
        assert!(reading.open_fds.is_some_and(|n| n >= 1));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = reading.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started}"
        );
    }
}
