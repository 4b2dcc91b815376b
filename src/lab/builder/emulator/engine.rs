//! The emulator's one thread: waits on every TAP at once and on the next due
//! time, stamps each frame as it leaves its sender, decides its copies' fate,
//! and writes each copy to its destination when due; it also takes live link
//! changes between frames.
//!
//! One thread, so no frame waits for another thread to be woken or to get a
//! CPU (a reader at normal priority was starved by busy nodes), and nothing is
//! locked per frame. A frame is one scheduled [`Flight`] whatever its copies (a
//! broadcast's n-1 copies, a duplicate's two, are one entry, keyed by its next
//! due copy; a corrupted copy's bit is flipped in the shared buffer while it is
//! written), and flights and their buffers are recycled, so the steady state
//! allocates nothing.
//!
//! The uplink's socket is one more source beside the TAPs, read the same way;
//! its remotes are ports after the TAPs', written to by one datagram each.

use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use rustix::event::epoll::{self as rustix_epoll, Event, EventData, EventFlags};
use rustix::event::Timespec;

use super::forward::Forwarder;
use super::late::{carried_time, tcp_payload, LateDelivery, HELD};
use super::link::Fate;
use super::queue::{Pending, TimedQueue};
use super::shape::Flip;
use super::spin::{SpinBudget, SpinWindow};
use super::stamp::{self, ArrivalStamps};
use super::uplink::{Datagram, Uplink};
use super::{bump, tap, Shared, FRAME_BUFFER, LATE, MAX_STAMP_AGE, READ_BATCH};

/// Spare flights kept for reuse; beyond it, finished ones are freed.
const SPARE_FLIGHTS: usize = 4096;

/// Largest frame buffer a spare flight keeps (an Ethernet frame of MTU 1500
/// and some): a rare jumbo frame's buffer is freed rather than kept.
const SPARE_FRAME: usize = 2048;

/// Events taken from the kernel per wait.
const EVENTS: usize = 64;

/// The epoll token of the wake-up event fd (TAPs use their port's index).
const WAKE: u64 = u64::MAX;

/// The epoll token of the uplink's socket.
const UPLINK: u64 = u64::MAX - 1;

/// One frame in flight and its copies still to write, by due time.
#[derive(Debug, Default)]
struct Flight {
    from: usize,
    frame: Vec<u8>,
    /// (due, destination port, bit to flip in that copy), sorted.
    copies: Vec<(Instant, usize, Option<Flip>)>,
    next: usize,
    /// How long after the time it carries it arrived, µs (0: no time).
    held_us: u32,
    /// When the emulator read it: no copy can leave before (None only in a
    /// spare flight).
    read_at: Option<Instant>,
}

/// Everything the thread owns.
struct Engine<'a> {
    shared: &'a Shared,
    forwarder: Forwarder,
    queue: TimedQueue<Flight>,
    spare: Vec<Flight>,
    fates: Vec<Fate>,
    stamps: Vec<ArrivalStamps>,
    buffer: Vec<u8>,
    captured: Vec<u8>,
    /// Control messages of a capture's or the uplink's receipts.
    control: Vec<u8>,
    epoll: Epoll,
}

/// Runs the emulator until `shared.stop`; `queue_limit` bounds each link.
pub(super) fn run(shared: &Shared, forwarder: Forwarder, queue_limit: usize) -> io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let readable = |token| EpollEvent::new(EpollFlags::EPOLLIN, token);
    epoll.add(&shared.wake, readable(WAKE))?;
    for (port, tap) in shared.taps.iter().enumerate() {
        epoll.add(tap, readable(port as u64))?;
    }
    if let Some(uplink) = &shared.uplink {
        epoll.add(uplink.socket(), readable(UPLINK))?;
    }
    let mut engine = Engine {
        shared,
        forwarder,
        queue: TimedQueue::new(shared.counters.len(), queue_limit),
        spare: Vec::new(),
        fates: Vec::new(),
        stamps: (0..shared.taps.len())
            .map(|_| ArrivalStamps::default())
            .collect(),
        buffer: vec![0; FRAME_BUFFER],
        captured: vec![0; FRAME_BUFFER],
        control: stamp::control_buffer(),
        epoll,
    };
    engine.serve()
}

impl Engine<'_> {
    fn serve(&mut self) -> io::Result<()> {
        let mut window = SpinWindow::new();
        let mut budget = SpinBudget::new(Instant::now());
        let mut events = [Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        }; EVENTS];
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            self.deliver_due();
            let now = Instant::now();
            let timeout = match self.queue.next_due() {
                None => None,
                Some(due) => {
                    let wait = due.saturating_duration_since(now);
                    let spin = window.get();
                    let spinning = budget.allows(now, spin);
                    if wait <= spin && spinning {
                        while Instant::now() < due {
                            std::hint::spin_loop();
                        }
                        budget.spent(Instant::now().saturating_duration_since(now));
                        continue;
                    }
                    Some(if spinning { wait - spin } else { wait })
                }
            };
            let ready = match epoll_wait(&self.epoll, &mut events, timeout) {
                Ok(ready) => ready,
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            };
            if ready == 0 {
                if let Some(timeout) = timeout {
                    window.woke_late_by(Instant::now().saturating_duration_since(now + timeout));
                }
            }
            for &event in &events[..ready] {
                // Copied out: the kernel's layout is packed, so no references.
                let (data, flags) = (event.data, event.flags);
                let (token, flags) = (data.u64(), flags.bits());
                if token == WAKE {
                    self.take_change();
                } else if token == UPLINK {
                    if let Some(uplink) = &self.shared.uplink {
                        self.read_uplink(uplink);
                    }
                } else if let Ok(port) = usize::try_from(token) {
                    self.read_port(port, flags);
                }
            }
        }
    }

    /// Writes every copy that is due, earliest first.
    fn deliver_due(&mut self) {
        while let Some(due) = self.queue.next_due() {
            if due > Instant::now() {
                return;
            }
            let Some(mut pending) = self.queue.pop() else {
                return;
            };
            let flight = &mut pending.item;
            while let Some(&(due, to, flip)) = flight.copies.get(flight.next) {
                if due > Instant::now() {
                    break;
                }
                // A corrupted copy is flipped in place and back: the other
                // copies share the buffer.
                if let Some(flip) = flip {
                    flip.apply(&mut flight.frame);
                }
                // Lateness is what the emulator added: a copy due before its
                // frame was read (a link shorter than the read path, such
                // as no delay at all) is timed from the read.
                write_frame(
                    self.shared,
                    flight.from,
                    to,
                    flight.read_at.map_or(due, |read| due.max(read)),
                    flight.held_us,
                    &flight.frame,
                );
                if let Some(flip) = flip {
                    flip.apply(&mut flight.frame);
                }
                self.queue.done(flight.from, to);
                flight.next += 1;
            }
            match flight.copies.get(flight.next) {
                Some(&(due, _, _)) => self.queue.push_again(pending, due),
                None => self.recycle(pending),
            }
        }
    }

    fn recycle(&mut self, pending: Pending<Flight>) {
        if self.spare.len() < SPARE_FLIGHTS {
            let mut flight = pending.item;
            if flight.frame.capacity() > SPARE_FRAME {
                flight.frame = Vec::new();
            }
            self.spare.push(flight);
        }
    }

    fn take_change(&mut self) {
        let mut count = [0u8; 8];
        let _ = nix::unistd::read(&self.shared.wake, &mut count);
        let mut change = self.shared.change_lock();
        if let Some(matrix) = change.0.take() {
            self.forwarder.set_matrix(&matrix);
            change.1 += 1;
            self.shared.changed.notify_all();
        }
    }

    /// Reads up to [`READ_BATCH`] frames of `port`, writing due copies between them.
    fn read_port(&mut self, port: usize, flags: u32) {
        let shared = self.shared;
        if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
            && flags & libc::EPOLLIN as u32 == 0
        {
            self.abandon(port, &format!("poll events {flags:#x}"));
            return;
        }
        for _ in 0..READ_BATCH {
            match nix::unistd::read(&shared.taps[port], &mut self.buffer) {
                Ok(len) => {
                    let read_at = Instant::now();
                    let frame = &self.buffer[..len];
                    let stamps = &mut self.stamps[port];
                    // The capture saw the frame before the TAP queued it, so
                    // one drain finds its stamp if the previous did not.
                    let arrival = stamps.take(frame).or_else(|| {
                        let capture = &shared.captures[port];
                        drain_capture(capture, &mut self.captured, &mut self.control, stamps);
                        stamps.take(frame)
                    });
                    let arrival = arrival.unwrap_or_else(|| {
                        bump(&shared.counters[port].unstamped);
                        read_at
                    });
                    self.forward(port, 0..len, arrival);
                    self.deliver_due();
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    self.abandon(port, &format!("reading failed: {errno}"));
                    return;
                }
            }
        }
    }

    /// Reads up to [`READ_BATCH`] datagrams of the uplink, writing due copies
    /// between them. A failed read is counted, not fatal: the next datagram may
    /// be fine.
    fn read_uplink(&mut self, uplink: &Uplink) {
        for _ in 0..READ_BATCH {
            match uplink.receive(&mut self.buffer, &mut self.control) {
                Ok(Datagram::Frame { port, frame, stamp }) => {
                    let now = Instant::now();
                    let arrival = kernel_instant(stamp, now, wall_clock()).unwrap_or_else(|| {
                        bump(&self.shared.counters[port].unstamped);
                        now
                    });
                    self.forward(port, frame, arrival);
                    self.deliver_due();
                }
                Ok(Datagram::Dropped) | Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    bump(&uplink.counters.errors);
                    return;
                }
            }
        }
    }

    fn abandon(&mut self, port: usize, why: &str) {
        eprintln!("sdss lab-emulator: port {port} failed ({why}); it is no longer read");
        bump(&self.shared.counters[port].errors);
        let _ = self.epoll.delete(&self.shared.taps[port]);
    }

    /// Routes the frame at `frame` in the buffer and schedules its copies.
    fn forward(&mut self, from: usize, frame: Range<usize>, arrival: Instant) {
        let read_at = Instant::now();
        let counters = &self.shared.counters;
        bump(&counters[from].received);
        self.fates.clear();
        let frame = &self.buffer[frame];
        if self
            .forwarder
            .route(from, frame, arrival, &mut self.fates)
            .is_err()
        {
            bump(&counters[from].rejected);
            return;
        }
        let mut flight = self.spare.pop().unwrap_or_default();
        flight.from = from;
        flight.next = 0;
        flight.copies.clear();
        for fate in &self.fates {
            match *fate {
                Fate::Lost { to } => bump(&counters[to].lost),
                Fate::Cut { to } => bump(&counters[to].cut),
                Fate::Overflowed { to } => bump(&counters[to].overflowed),
                Fate::Deliver { to, due, flip } if self.queue.admit(from, to) => {
                    flight.copies.push((due, to, flip));
                }
                Fate::Deliver { to, .. } => bump(&counters[to].overflowed),
            }
        }
        flight.copies.sort_unstable();
        let Some(&(first, _, _)) = flight.copies.first() else {
            self.spare.push(flight);
            return;
        };
        flight.held_us = held_us(frame, arrival);
        flight.read_at = Some(read_at);
        flight.frame.clear();
        flight.frame.extend_from_slice(frame);
        self.queue.push(first, flight);
    }
}

/// How long after the time it carries a frame arrived (µs), if it is a TCP
/// payload that carries one (a node's answer); 0 otherwise.
fn held_us(frame: &[u8], arrival: Instant) -> u32 {
    let Some((_, payload)) = tcp_payload(frame) else {
        return 0;
    };
    let ago = Instant::now().saturating_duration_since(arrival);
    let arrived = wall_clock().saturating_sub(ago).as_secs_f64();
    carried_time(&frame[payload], arrived).map_or(0, |time| ((arrived - time) * 1e6) as u32)
}

/// Writes one copy from port `from` to port `to`, counting it late if it is, and
/// logging it if it carries a TCP payload (a node's answer, maybe) and was late
/// or `held_us` by its sender.
fn write_frame(shared: &Shared, from: usize, to: usize, due: Instant, held_us: u32, frame: &[u8]) {
    let counters = &shared.counters[to];
    // Measured before writing: the write itself runs the receiver's stack.
    let late = due.elapsed();
    let is_late = late > LATE;
    if is_late {
        bump(&counters.late);
    }
    if is_late || u128::from(held_us) > HELD.as_micros() {
        if let Some((source_port, _)) = tcp_payload(frame) {
            shared.late.record(&LateDelivery {
                at_us: u64::try_from(wall_clock().as_micros()).unwrap_or(u64::MAX),
                from: u16::try_from(from).unwrap_or(u16::MAX),
                to: u16::try_from(to).unwrap_or(u16::MAX),
                source_port,
                late_us: if is_late {
                    u32::try_from(late.as_micros()).unwrap_or(u32::MAX)
                } else {
                    0
                },
                held_us,
            });
        }
    }
    let written = match &shared.uplink {
        Some(uplink) if to >= shared.taps.len() => uplink.send(to, frame),
        _ => nix::unistd::write(&shared.taps[to], frame).map(drop),
    };
    match written {
        Ok(()) => bump(&counters.forwarded),
        Err(_) => bump(&counters.errors),
    }
}

/// The wall clock, as kernel stamps are given.
fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The instant of a kernel CLOCK_REALTIME `stamp`, given the clocks read at one
/// moment (`now`, `wall`); none if there is no stamp or it is not believable.
fn kernel_instant(stamp: Option<Duration>, now: Instant, wall: Duration) -> Option<Instant> {
    stamp
        .and_then(|stamp| wall.checked_sub(stamp))
        .filter(|age| *age <= MAX_STAMP_AGE)
        .and_then(|age| now.checked_sub(age))
}

/// Moves every waiting kernel stamp of one port into `stamps`.
fn drain_capture(
    capture: &OwnedFd,
    buffer: &mut [u8],
    control: &mut [u8],
    stamps: &mut ArrivalStamps,
) {
    let now = Instant::now();
    let wall = wall_clock();
    loop {
        match tap::receive_captured(capture, buffer, control) {
            Ok((len, stamp)) => {
                let at = kernel_instant(stamp, now, wall).unwrap_or(now);
                stamps.push(len, &buffer[..len.min(buffer.len())], at);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock, or a failed capture: frames then keep their read time.
            Err(_) => return,
        }
    }
}

/// Waits for events up to `timeout` (forever if none) at the timer's full
/// precision: rustix makes epoll_pwait2 (nanoseconds, where epoll_wait has
/// milliseconds) as its `linux_5_11` feature is on.
fn epoll_wait(
    epoll: &Epoll,
    events: &mut [Event],
    timeout: Option<Duration>,
) -> rustix::io::Result<usize> {
    let timeout = timeout.map(|t| {
        Timespec::try_from(t).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: t.subsec_nanos().into(),
        })
    });
    rustix_epoll::wait(&epoll.0, events, timeout.as_ref())
}
