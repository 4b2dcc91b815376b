//! `T_B` as the time our answer leaves our stack, not the time we read the
//! clock: like a PTP one-step clock that stamps at egress, but forecast, since
//! the time must be in the bytes before they go. Between the clock read and the
//! segment reaching the device layer (send, TCP, IP) pass microseconds that
//! every client would otherwise count as network delay.
//!
//! The kernel tells how long that took: with scheduler TX stamps
//! (`SO_TIMESTAMPING`, `SOF_TIMESTAMPING_TX_SCHED`) it stamps the answer's
//! segment as it enters the device layer, before any queueing discipline, and
//! queues the stamp on the socket's error queue. The stamp must come before the
//! qdisc: a shaping qdisc (netem) holds the segment for the link's delay, and a
//! stamp taken after it (the device's, `TX_SOFTWARE`) is either missing when we
//! look or counts the shaping as our own send path, so the forecast would differ
//! between a shaped and an unshaped path and hide part of the shaping. The TCP
//! stack hands the segment down inside our `shutdown` call, so the stamp is
//! there when it returns; it is read without waiting, and a stamp not there
//! yet is skipped. The last answers' latencies, one history for the whole node
//! (no key a client could choose), give the forecast: a low quantile of them,
//! so the written time is seldom later than the answer really left (a client
//! would measure a negative delay), and a slow send now and then (a preempted
//! task) moves nothing.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, TimestampingFlag,
};
use nix::sys::time::TimeSpec;

/// Latencies kept: enough for a steady low quantile, few enough to follow a
/// machine whose load changes within seconds.
pub const HISTORY: usize = 32;

/// Latencies needed before forecasting: two, so that a node's first answer,
/// through a cold path, never sets the forecast alone (the low quantile of two
/// is the smaller). Few, because what a node measures before its forecast
/// starts is judged beside what it measures after: a lab calibrates its
/// floors in its first seconds, and a forecast that started only after them
/// (eight answers took two seconds in a five-node lab) came out of every
/// later sample as error (in an emulated VM, where sends are slow, 0.2 ms).
pub const MIN_SAMPLES: usize = 2;

/// The quantile of the history forecast: a low one (see the module's doc).
const QUANTILE: f64 = 0.25;

/// The largest forecast: a send path slower than this is a loaded machine, not
/// a path worth forecasting, and a bounded forecast bounds what a broken stamp
/// can do to every client's measurement.
pub const MAX_FORECAST: Duration = Duration::from_millis(1);

/// A latency beyond this is a stepped clock, not a send: not recorded.
const MAX_LATENCY: Duration = Duration::from_secs(1);

/// The node's recent send latencies and their forecast.
#[derive(Debug)]
pub struct SendLatency {
    history: Mutex<VecDeque<Duration>>,
    /// The forecast in nanoseconds, kept ready so the time-critical path
    /// between the clock read and the send takes one load.
    forecast_ns: AtomicU64,
}

impl SendLatency {
    /// No history: the forecast is zero.
    pub const fn new() -> Self {
        SendLatency {
            history: Mutex::new(VecDeque::new()),
            forecast_ns: AtomicU64::new(0),
        }
    }

    /// How long after the clock read the next answer will likely leave: a low
    /// quantile of the history, at most [`MAX_FORECAST`], zero until
    /// [`MIN_SAMPLES`] were recorded.
    pub fn forecast(&self) -> Duration {
        Duration::from_nanos(self.forecast_ns.load(Ordering::Relaxed))
    }

    /// Records one answer's latency from the clock read to the kernel's stamp;
    /// one beyond [`MAX_LATENCY`] is dropped.
    pub fn record(&self, latency: Duration) {
        if latency > MAX_LATENCY {
            return;
        }
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(latency);
        let forecast = if history.len() < MIN_SAMPLES {
            Duration::ZERO
        } else {
            let mut sorted: Vec<Duration> = history.iter().copied().collect();
            sorted.sort_unstable();
            let at = ((sorted.len() - 1) as f64 * QUANTILE).round() as usize;
            sorted[at].min(MAX_FORECAST)
        };
        let nanos = u64::try_from(forecast.as_nanos()).unwrap_or(u64::MAX);
        self.forecast_ns.store(nanos, Ordering::Relaxed);
    }
}

impl Default for SendLatency {
    fn default() -> Self {
        Self::new()
    }
}

/// The node's send latencies: one history for every connection it serves.
pub fn node_latency() -> &'static SendLatency {
    static LATENCY: SendLatency = SendLatency::new();
    &LATENCY
}

/// Asks the kernel to stamp what this socket sends as it enters the device
/// layer, before the qdisc, the stamp alone (no copy of the data) on the error
/// queue. Returns whether it will: a kernel or socket without scheduler TX
/// stamps forecasts nothing.
pub fn stamp_sends(socket: &impl AsFd) -> bool {
    // nix names no flag for TX_SCHED (Linux 4.0); the bit is the kernel's.
    let flags = TimestampingFlag::from_bits_retain(libc::SOF_TIMESTAMPING_TX_SCHED)
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_OPT_TSONLY;
    setsockopt(socket, sockopt::Timestamping, &flags).is_ok()
}

/// The kernel's stamp of our last stamped send (UTC, since the epoch), when it
/// is already on the socket's error queue: never waits.
pub fn sent_stamp(socket: &impl AsRawFd) -> Option<Duration> {
    let mut space = nix::cmsg_space!([TimeSpec; 3], libc::sock_extended_err, libc::sockaddr_in6);
    let mut data = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut data)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .ok()?;
    let stamp = message.cmsgs().ok()?.find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmTimestampsns(stamps) => Some(stamps.system),
        _ => None,
    })?;
    let seconds = u64::try_from(stamp.tv_sec()).ok()?;
    let nanos = u32::try_from(stamp.tv_nsec()).ok()?;
    Some(Duration::new(seconds, nanos))
}

/// The latency from `read` (our clock read) to `sent` (the kernel's stamp),
/// when the stamp is not before the read.
pub fn latency(read: SystemTime, sent: Duration) -> Option<Duration> {
    let read = read.duration_since(UNIX_EPOCH).ok()?;
    sent.checked_sub(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    #[test]
    fn without_history_the_forecast_is_zero() {
        let latency = SendLatency::new();
        assert_eq!(latency.forecast(), Duration::ZERO);
        for _ in 0..MIN_SAMPLES - 1 {
            latency.record(micros(20));
        }
        assert_eq!(latency.forecast(), Duration::ZERO, "too few samples");
        latency.record(micros(20));
        assert_eq!(latency.forecast(), micros(20));
    }

    #[test]
    fn the_forecast_is_a_low_quantile_that_outliers_do_not_move() {
        let latency = SendLatency::new();
        for i in 0..HISTORY as u64 {
            latency.record(micros(10 + i));
        }
        // 10..=41 us: the quarter quantile of 32 is the 9th lowest.
        assert_eq!(latency.forecast(), micros(18));
        // A few preempted sends (a quarter of the history) leave it near.
        for _ in 0..HISTORY / 4 {
            latency.record(Duration::from_millis(50));
        }
        assert!(latency.forecast() <= micros(30), "{:?}", latency.forecast());
    }

    #[test]
    fn the_forecast_is_bounded() {
        let latency = SendLatency::new();
        for _ in 0..HISTORY {
            latency.record(Duration::from_millis(500));
        }
        assert_eq!(latency.forecast(), MAX_FORECAST);
        // A stepped clock is no latency: not recorded, the forecast unchanged.
        latency.record(Duration::from_secs(30));
        assert_eq!(latency.forecast(), MAX_FORECAST);
    }

    #[test]
    fn the_history_forgets_beyond_its_length() {
        let latency = SendLatency::new();
        for _ in 0..HISTORY {
            latency.record(Duration::from_millis(5));
        }
        for _ in 0..HISTORY {
            latency.record(micros(7));
        }
        assert_eq!(latency.forecast(), micros(7));
    }

    #[test]
    fn a_stamp_before_the_clock_read_is_no_latency() {
        let read = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(latency(read, Duration::from_secs(99)), None);
        assert_eq!(
            latency(read, Duration::from_secs(100) + micros(25)),
            Some(micros(25))
        );
    }
}
