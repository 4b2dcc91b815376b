//! When did a frame really leave its node? Reading a TAP stamps a frame only when
//! the emulator's thread wakes up, tens to hundreds of microseconds late on a VM. The
//! kernel stamps the same frame as it enters the TAP, on a packet socket beside it;
//! this matches the two streams, both FIFO, so each frame read from the TAP gets
//! its kernel time. A frame without a match keeps its read time: timing degrades,
//! forwarding never does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, RecvMsg};
use nix::sys::time::TimeSpec;

/// Bytes of a frame's head compared when matching (the capture keeps this many).
pub const HEAD_LEN: usize = 96;

/// Kernel stamps waiting for their frame, held at most this many (a port whose
/// TAP queue overflowed leaves stamps nobody will claim).
const CAPACITY: usize = 2048;

/// Room for the control messages of one receipt: its stamp (`SO_TIMESTAMPNS`,
/// set on the TAPs' captures and the uplink).
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// The kernel's CLOCK_REALTIME stamp of a received frame or datagram, if any.
pub fn kernel_stamp<S>(message: &RecvMsg<'_, '_, S>) -> Option<Duration> {
    message.cmsgs().ok()?.find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmTimestampns(time) => Some(Duration::new(
            u64::try_from(time.tv_sec()).ok()?,
            u32::try_from(time.tv_nsec()).ok()?,
        )),
        _ => None,
    })
}

/// Kept inline, so that a stamp costs no allocation.
#[derive(Debug)]
struct Stamp {
    len: usize,
    head: [u8; HEAD_LEN],
    head_len: usize,
    at: Instant,
}

/// The kernel stamps of one port, oldest first.
#[derive(Debug, Default)]
pub struct ArrivalStamps {
    pending: VecDeque<Stamp>,
}

impl ArrivalStamps {
    /// Records that a frame of `len` bytes starting with `head` entered the TAP at `at`.
    pub fn push(&mut self, len: usize, head: &[u8], at: Instant) {
        if self.pending.len() == CAPACITY {
            self.pending.pop_front();
        }
        let head = &head[..head.len().min(HEAD_LEN).min(len)];
        let mut stamp = Stamp {
            len,
            head: [0; HEAD_LEN],
            head_len: head.len(),
            at,
        };
        stamp.head[..head.len()].copy_from_slice(head);
        self.pending.push_back(stamp);
    }

    /// The kernel time of `frame`, just read from the TAP. Stamps older than the
    /// match belong to frames the TAP dropped and are discarded.
    pub fn take(&mut self, frame: &[u8]) -> Option<Instant> {
        let head = &frame[..frame.len().min(HEAD_LEN)];
        let index = self
            .pending
            .iter()
            .position(|stamp| stamp.len == frame.len() && stamp.head[..stamp.head_len] == *head)?;
        self.pending.drain(..index);
        self.pending.pop_front().map(|stamp| stamp.at)
    }

    /// Stamps waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no stamp is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn matches_in_order_and_skips_frames_the_tap_dropped() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let mut stamps = ArrivalStamps::default();
        stamps.push(3, b"aaa", at(1));
        stamps.push(3, b"bbb", at(2));
        stamps.push(3, b"aaa", at(3));
        stamps.push(4, b"cccc", at(4));
        assert_eq!(stamps.take(b"aaa"), Some(at(1)));
        // "bbb" was dropped by the TAP: its stamp goes when a later frame matches.
        assert_eq!(stamps.take(b"aaa"), Some(at(3)));
        assert_eq!(stamps.len(), 1);
        assert_eq!(stamps.take(b"cccc"), Some(at(4)));
        assert!(stamps.is_empty());
    }

    #[test]
    fn an_unmatched_frame_leaves_the_stamps_alone() {
        let t0 = Instant::now();
        let mut stamps = ArrivalStamps::default();
        stamps.push(3, b"aaa", t0);
        assert_eq!(stamps.take(b"zzz"), None);
        assert_eq!(stamps.take(b"aa"), None);
        assert_eq!(stamps.take(b"aaa"), Some(t0));
    }

    #[test]
    fn compares_only_the_head_of_long_frames_and_stays_bounded() {
        let t0 = Instant::now();
        let mut stamps = ArrivalStamps::default();
        let mut frame = vec![7u8; 1500];
        stamps.push(frame.len(), &frame[..HEAD_LEN], t0);
        frame[1000] = 8;
        assert_eq!(stamps.take(&frame), Some(t0));
        for _ in 0..CAPACITY + 10 {
            stamps.push(1, b"x", t0);
        }
        assert_eq!(stamps.len(), CAPACITY);
    }
}
