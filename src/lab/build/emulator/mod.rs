//! The userspace link emulator: the lab's delay backend for kernels without netem.
//!
//! One TAP device per node namespace (the node's `eth0`), joined by a learning
//! switch that holds every frame for the delay of its ordered pair. Precision is
//! the point, so frames are timed by a dedicated OS thread instead of an async
//! timer (1 ms granularity): it sleeps with 1 ns timer slack until a
//! [`spin::SpinWindow`] before the earliest due time, then spins.
//!
//! Threads: a reader stamps each frame as it leaves a TAP, decides its copies'
//! fate ([`link::Forwarder`]) and queues them ([`queue::TimedQueue`], bounded per
//! link); the scheduler writes each copy to its destination TAP when due.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod link;
pub mod queue;
pub mod spec;
pub mod spin;
pub mod stamp;
pub mod switch;
pub mod tap;

pub use spec::{EmulatorSpec, LinkSpec, PortSpec, SpecError};
pub use switch::Mac;
pub use tap::TapError;

use crate::lab::plan::impairment::Impairment;
use link::{Forwarder, Verdict};
use queue::TimedQueue;
use spin::SpinWindow;
use stamp::ArrivalStamps;

/// Frames the reader takes from one TAP before looking at the others, so one
/// flooding port cannot starve the rest.
const READ_BATCH: usize = 64;

/// Largest frame a TAP hands over (its MTU could be raised up to 64 KiB).
const FRAME_BUFFER: usize = 65_536;

/// SCHED_FIFO priority of the scheduler: the lowest, enough to run before every
/// normal thread; its spinning is bounded by [`spin::SpinWindow::CEILING`] per frame.
const REALTIME_PRIORITY: libc::c_int = 1;

/// Lateness beyond which a written frame counts as late.
pub const LATE: Duration = Duration::from_micros(50);

/// A kernel stamp older than this is not believed (the wall clock jumped).
const MAX_STAMP_AGE: Duration = Duration::from_secs(1);

/// Why the emulator did not start. Nothing it created survives the error.
#[derive(Debug, Error)]
pub enum EmulatorError {
    /// The spec file could not be read.
    #[error("cannot read emulator spec {}", path.display())]
    ReadSpec {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The spec is not usable.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// One port's TAP could not be made.
    #[error("port {index} ({ifname} in {netns})")]
    Tap {
        /// Port index.
        index: usize,
        /// The namespace, as the spec names it.
        netns: String,
        /// The interface name.
        ifname: String,
        /// The cause.
        source: TapError,
    },
    /// A thread or an event fd could not be created.
    #[error("cannot start the emulator's {what}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A live link change was not taken in time (the reader is stuck).
    #[error("the link change was not taken within {0:?}")]
    ChangeTimedOut(Duration),
    /// A live link change's matrix does not fit the ports.
    #[error("a link change needs a {ports}x{ports} matrix")]
    ChangeShape {
        /// The emulator's ports.
        ports: usize,
    },
}

/// Reads and validates a spec file.
pub fn load_spec(path: &Path) -> Result<EmulatorSpec, EmulatorError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadSpec {
        path: path.to_owned(),
        source,
    })?;
    Ok(EmulatorSpec::from_json(&text)?)
}

/// What happened to the frames of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    /// Frames read from this port's TAP.
    pub received: u64,
    /// Frames written to this port's TAP.
    pub forwarded: u64,
    /// Copies destined to this port dropped by the link's loss.
    pub lost: u64,
    /// Copies destined to this port dropped because their link's queue was full.
    pub overflowed: u64,
    /// Frames from this port not forwarded: runts, or destined to their own port.
    pub rejected: u64,
    /// Failed reads from or writes to this port's TAP.
    pub errors: u64,
    /// Frames from this port timed from when they were read, for want of a kernel
    /// stamp: a precision diagnostic, normally zero.
    pub unstamped: u64,
    /// Frames written to this port more than [`LATE`] after their due time: the
    /// machine was too busy to keep time. A precision diagnostic, normally zero.
    pub late: u64,
}

/// Counters of every port, in port order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// One entry per port of the spec.
    pub ports: Vec<PortCounters>,
}

impl Counters {
    /// Replaces the counters file at `path` in one step (a reader never sees half
    /// of it): the running emulator keeps it current so that the lab's report can
    /// say whether the machine kept up.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let partial = path.with_extension("partial");
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }

    /// The counters a running emulator last wrote, if any.
    pub fn read_from(path: &Path) -> Option<Counters> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Sum over all ports.
    pub fn total(&self) -> PortCounters {
        self.ports
            .iter()
            .fold(PortCounters::default(), |sum, port| PortCounters {
                received: sum.received + port.received,
                forwarded: sum.forwarded + port.forwarded,
                lost: sum.lost + port.lost,
                overflowed: sum.overflowed + port.overflowed,
                rejected: sum.rejected + port.rejected,
                errors: sum.errors + port.errors,
                unstamped: sum.unstamped + port.unstamped,
                late: sum.late + port.late,
            })
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, name: &str, c: &PortCounters| {
            writeln!(
                f,
                "{name}: received {}, forwarded {}, dropped by loss {}, dropped by full queue {}, rejected {}, errors {}, unstamped {}, late {}",
                c.received, c.forwarded, c.lost, c.overflowed, c.rejected, c.errors, c.unstamped, c.late
            )
        };
        for (index, port) in self.ports.iter().enumerate() {
            line(f, &format!("port {index}"), port)?;
        }
        line(f, "total", &self.total())
    }
}

#[derive(Debug, Default)]
struct PortCells {
    received: AtomicU64,
    forwarded: AtomicU64,
    lost: AtomicU64,
    overflowed: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    unstamped: AtomicU64,
    late: AtomicU64,
}

fn bump(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

/// What the reader and the scheduler share.
struct Shared {
    taps: Vec<OwnedFd>,
    captures: Vec<OwnedFd>,
    queue: Mutex<TimedQueue<Arc<[u8]>>>,
    earlier_due: Condvar,
    stop: AtomicBool,
    /// An eventfd that wakes the reader out of `poll` to see `stop` or `change`.
    wake: OwnedFd,
    counters: Vec<PortCells>,
    /// A new matrix for the reader, and how many it has applied so far.
    change: Mutex<Change>,
    /// Signalled whenever the reader applied a change.
    changed: Condvar,
}

/// A pending matrix and the count of those applied.
type Change = (Option<Vec<Vec<Impairment>>>, u64);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, TimedQueue<Arc<[u8]>>> {
        // A panicked thread leaves a queue that is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn change_lock(&self) -> MutexGuard<'_, Change> {
        self.change.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running emulator. Dropping it stops the threads and deletes the TAPs.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    priority: Priority,
}

/// How the scheduler thread is scheduled by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Priority {
    /// SCHED_FIFO: busy neighbours cannot delay a due frame.
    Realtime,
    /// The default policy; with the reason real time was refused, if it was asked for.
    Normal(Option<String>),
}

impl fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("ports", &self.shared.taps.len())
            .finish_non_exhaustive()
    }
}

/// Creates every TAP (each up in its namespace) and starts forwarding. On error,
/// whatever was created is gone again.
pub fn spawn(spec: &EmulatorSpec) -> Result<EmulatorHandle, EmulatorError> {
    spec.validate()?;
    let mut taps = Vec::with_capacity(spec.ports.len());
    let mut captures = Vec::with_capacity(spec.ports.len());
    for (index, port) in spec.ports.iter().enumerate() {
        let tap = tap::create(port).map_err(|source| EmulatorError::Tap {
            index,
            netns: port.netns.clone(),
            ifname: port.ifname.clone(),
            source,
        })?;
        taps.push(tap.fd);
        captures.push(tap.capture);
    }
    // SAFETY: plain eventfd(2); the result is checked before it is owned.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(EmulatorError::Start {
            what: "event fd",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let wake = unsafe { OwnedFd::from_raw_fd(raw) };
    let ports = taps.len();
    let shared = Arc::new(Shared {
        taps,
        captures,
        queue: Mutex::new(TimedQueue::new(ports, spec.queue_limit)),
        earlier_due: Condvar::new(),
        stop: AtomicBool::new(false),
        wake,
        counters: (0..ports).map(|_| PortCells::default()).collect(),
        change: Mutex::new((None, 0)),
        changed: Condvar::new(),
    });
    let forwarder = Forwarder::new(
        &spec.matrix(),
        spec.reorder,
        spec.seed.unwrap_or_else(random_seed),
    );
    let mut handle = EmulatorHandle {
        shared,
        threads: Vec::new(),
        priority: Priority::Normal(None),
    };
    let shared = Arc::clone(&handle.shared);
    let (started, priority) = mpsc::sync_channel(1);
    let realtime = spec.realtime;
    let scheduler = std::thread::Builder::new()
        .name("sdss-emu-sched".to_owned())
        .spawn(move || schedule(&shared, realtime, started))
        .map_err(|source| EmulatorError::Start {
            what: "scheduler thread",
            source,
        })?;
    handle.threads.push(scheduler);
    handle.priority = priority.recv().map_err(|_| EmulatorError::Start {
        what: "scheduler thread",
        source: io::Error::other("it died while starting"),
    })?;
    let shared = Arc::clone(&handle.shared);
    let reader = std::thread::Builder::new()
        .name("sdss-emu-read".to_owned())
        .spawn(move || read_frames(&shared, forwarder))
        .map_err(|source| EmulatorError::Start {
            what: "reader thread",
            source,
        })?;
    handle.threads.push(reader);
    Ok(handle)
}

impl EmulatorHandle {
    /// How the scheduler runs: real time unless the spec opted out or it was refused.
    pub fn priority(&self) -> &Priority {
        &self.priority
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        Counters {
            ports: self
                .shared
                .counters
                .iter()
                .map(|c| PortCounters {
                    received: load(&c.received),
                    forwarded: load(&c.forwarded),
                    lost: load(&c.lost),
                    overflowed: load(&c.overflowed),
                    rejected: load(&c.rejected),
                    errors: load(&c.errors),
                    unstamped: load(&c.unstamped),
                    late: load(&c.late),
                })
                .collect(),
        }
    }

    /// Replaces every link's impairment (row `from`, column `to`) while frames
    /// flow; returns once the reader forwards by it, or after `limit`.
    pub fn set_matrix(
        &self,
        matrix: Vec<Vec<Impairment>>,
        limit: Duration,
    ) -> Result<(), EmulatorError> {
        let ports = self.shared.taps.len();
        if matrix.len() != ports || matrix.iter().any(|row| row.len() != ports) {
            return Err(EmulatorError::ChangeShape { ports });
        }
        let target = {
            let mut change = self.shared.change_lock();
            change.0 = Some(matrix);
            change.1 + 1
        };
        let _ = nix::unistd::write(&self.shared.wake, &1u64.to_ne_bytes());
        let change = self.shared.change_lock();
        let (change, timeout) = self
            .shared
            .changed
            .wait_timeout_while(change, limit, |(_, applied)| *applied < target)
            .unwrap_or_else(PoisonError::into_inner);
        if timeout.timed_out() && change.1 < target {
            return Err(EmulatorError::ChangeTimedOut(limit));
        }
        Ok(())
    }

    /// Stops forwarding (frames in flight are dropped), deletes the TAPs and returns
    /// the final counters.
    pub fn stop(mut self) -> Counters {
        self.shutdown();
        self.counters()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            // Under the lock, so the scheduler cannot miss the notification
            // between checking `stop` and waiting.
            let _queue = self.shared.lock();
            self.shared.earlier_due.notify_all();
        }
        // Cannot fail short of a counter overflow; the reader also rechecks `stop`.
        let _ = nix::unistd::write(&self.shared.wake, &1u64.to_ne_bytes());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The reader: waits on every TAP at once, stamps frames as they are read.
fn read_frames(shared: &Shared, mut forwarder: Forwarder) {
    let mut buffer = vec![0u8; FRAME_BUFFER];
    let mut captured = vec![0u8; FRAME_BUFFER];
    let mut verdicts = Vec::new();
    let mut alive = vec![true; shared.taps.len()];
    let mut stamps: Vec<ArrivalStamps> = shared
        .taps
        .iter()
        .map(|_| ArrivalStamps::default())
        .collect();
    loop {
        let watched: Vec<usize> = (0..alive.len()).filter(|port| alive[*port]).collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(&shared.wake)
            .chain(watched.iter().map(|port| &shared.taps[*port]))
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd over open descriptors.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                eprintln!("sdss lab-emulator: poll failed, forwarding stops: {error}");
                return;
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if fds[0].revents != 0 {
            let mut count = [0u8; 8];
            let _ = nix::unistd::read(&shared.wake, &mut count);
            let mut change = shared.change_lock();
            if let Some(matrix) = change.0.take() {
                forwarder.set_matrix(&matrix);
                change.1 += 1;
                shared.changed.notify_all();
            }
        }
        let ready: Vec<(usize, libc::c_short)> = watched
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| fd.revents != 0)
            .map(|(port, fd)| (*port, fd.revents))
            .collect();
        for (port, revents) in ready {
            if revents & libc::POLLIN == 0 {
                eprintln!("sdss lab-emulator: port {port} failed (poll events {revents:#x}); it is no longer read");
                bump(&shared.counters[port].errors);
                alive[port] = false;
                continue;
            }
            for _ in 0..READ_BATCH {
                match nix::unistd::read(&shared.taps[port], &mut buffer) {
                    Ok(len) => {
                        let read_at = Instant::now();
                        let frame = &buffer[..len];
                        let stamps = &mut stamps[port];
                        // The capture saw the frame before the TAP queued it, so
                        // one drain finds its stamp if the previous did not.
                        let arrival = stamps.take(frame).or_else(|| {
                            drain_capture(&shared.captures[port], &mut captured, stamps);
                            stamps.take(frame)
                        });
                        let arrival = arrival.unwrap_or_else(|| {
                            bump(&shared.counters[port].unstamped);
                            read_at
                        });
                        forward(shared, &mut forwarder, &mut verdicts, port, frame, arrival);
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => {}
                    Err(errno) => {
                        eprintln!("sdss lab-emulator: reading port {port} failed, it is no longer read: {errno}");
                        bump(&shared.counters[port].errors);
                        alive[port] = false;
                        break;
                    }
                }
            }
        }
    }
}

/// Moves every waiting kernel stamp of one port into `stamps`.
fn drain_capture(capture: &OwnedFd, buffer: &mut [u8], stamps: &mut ArrivalStamps) {
    let now = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    loop {
        match tap::receive_captured(capture, buffer) {
            Ok((len, stamp)) => {
                let at = stamp
                    .and_then(|stamp| wall.checked_sub(stamp))
                    .filter(|age| *age <= MAX_STAMP_AGE)
                    .and_then(|age| now.checked_sub(age))
                    .unwrap_or(now);
                stamps.push(len, &buffer[..len.min(buffer.len())], at);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock, or a failed capture: frames then keep their read time.
            Err(_) => return,
        }
    }
}

fn forward(
    shared: &Shared,
    forwarder: &mut Forwarder,
    verdicts: &mut Vec<Verdict>,
    from: usize,
    frame: &[u8],
    arrival: Instant,
) {
    bump(&shared.counters[from].received);
    verdicts.clear();
    if forwarder.route(from, frame, arrival, verdicts).is_err() {
        bump(&shared.counters[from].rejected);
        return;
    }
    let frame: Arc<[u8]> = Arc::from(frame);
    let mut now_due = Vec::new();
    let mut queue = shared.lock();
    let earliest = queue.next_due();
    let now = Instant::now();
    for verdict in verdicts.iter() {
        match *verdict {
            Verdict::Lost { to } => bump(&shared.counters[to].lost),
            // Already due, and nothing ahead of it on its link: waking the
            // scheduler would only make it late.
            Verdict::Deliver { to, due } if due <= now && queue.link_len(from, to) == 0 => {
                now_due.push((to, due));
            }
            Verdict::Deliver { to, due } => {
                if queue.push(from, to, due, Arc::clone(&frame)).is_err() {
                    bump(&shared.counters[to].overflowed);
                }
            }
        }
    }
    let changed = queue.next_due() != earliest;
    drop(queue);
    if changed {
        shared.earlier_due.notify_one();
    }
    for (to, due) in now_due {
        write_frame(shared, to, due, &frame);
    }
}

fn write_frame(shared: &Shared, to: usize, due: Instant, frame: &[u8]) {
    let counters = &shared.counters[to];
    // Measured before writing: the write itself runs the receiver's stack.
    if due.elapsed() > LATE {
        bump(&counters.late);
    }
    match nix::unistd::write(&shared.taps[to], frame) {
        Ok(_) => bump(&counters.forwarded),
        Err(_) => bump(&counters.errors),
    }
}

/// The scheduler: writes each frame to its destination TAP at its due time.
fn schedule(shared: &Shared, realtime: bool, started: mpsc::SyncSender<Priority>) {
    // Timed sleeps otherwise overrun by the default 50 us slack. Best effort: without
    // it the spin window still absorbs most of the overrun.
    let _ = nix::sys::prctl::set_timerslack(1);
    let priority = if realtime {
        let param = libc::sched_param {
            sched_priority: REALTIME_PRIORITY,
        };
        // SAFETY: sched_setscheduler(2) on the calling thread with a valid param.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
            Priority::Realtime
        } else {
            Priority::Normal(Some(io::Error::last_os_error().to_string()))
        }
    } else {
        Priority::Normal(None)
    };
    // The receiver waits for this before `spawn` returns.
    let _ = started.send(priority);
    let mut window = SpinWindow::new();
    let mut queue = shared.lock();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(due) = queue.next_due() else {
            queue = shared
                .earlier_due
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        let sleep = due
            .saturating_duration_since(now)
            .saturating_sub(window.get());
        if !sleep.is_zero() {
            let (guard, wake) = shared
                .earlier_due
                .wait_timeout(queue, sleep)
                .unwrap_or_else(PoisonError::into_inner);
            queue = guard;
            if wake.timed_out() {
                window.woke_late_by(Instant::now().saturating_duration_since(now + sleep));
            }
            continue;
        }
        let Some(pending) = queue.pop() else {
            continue;
        };
        // Spin without the lock, so the reader keeps queueing meanwhile.
        drop(queue);
        while Instant::now() < pending.due {
            std::hint::spin_loop();
        }
        write_frame(shared, pending.to, pending.due, &pending.item);
        queue = shared.lock();
        queue.done(pending.from, pending.to);
    }
}
