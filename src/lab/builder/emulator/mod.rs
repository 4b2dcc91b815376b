//! The userspace link emulator: the lab's delay backend for kernels without netem.
//!
//! One TAP device per node namespace (the node's `eth0`), joined by a learning
//! switch that holds every frame for the delay of its ordered pair. Precision is
//! the point, so frames are timed by a dedicated OS thread instead of an async
//! timer (1 ms granularity): it sleeps with 1 ns timer slack until a
//! [`spin::SpinWindow`] before the earliest due time, then spins.
//!
//! One thread ([`engine`]) stamps each frame as it leaves a TAP, decides its
//! copies' fate ([`forward::Forwarder`]), queues them ([`queue::TimedQueue`], bounded
//! per link) and writes each copy to its destination TAP when due.
//!
//! Each link shapes its frames as netem would ([`shape`], drawn from one seeded
//! RNG): jitter uniform or from netem's normal, Pareto and paretonormal
//! tables, with a delay correlation; random (correlated), Gilbert-Elliott and
//! 4-state loss; duplicate, corrupt and reorder with a gap; a rate (with its
//! overheads and cells) and a limit of frames held, beyond which a copy is
//! dropped and counted as overflowed (the spec's `queue_limit` still bounds
//! every pair of ports); slots, decided as a frame enters rather than as it
//! is dequeued ([`shape::SlotState`] says what that changes).
//!
//! A lab stretched over several hosts adds an [`uplink`]: each other host is a
//! port too, reached in VXLAN's wire format ([`vxlan`]).

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use thiserror::Error;

#[cfg(test)]
mod cost;
mod counters;
mod engine;
pub mod forward;
pub mod late;
pub mod link;
pub mod path;
pub mod queue;
pub mod shape;
pub mod spec;
pub mod spin;
pub mod stamp;
pub mod switch;
pub mod tap;
mod uplink;
pub mod vxlan;

use counters::{bump, PortCells};
pub use counters::{Counters, PortCounters, UplinkCounters};
pub use late::LateDelivery;
pub use path::Stages;
pub use spec::{EmulatorSpec, LinkSpec, PortSpec, SpecError, UplinkSpec};
pub use switch::Mac;
pub use tap::TapError;
use uplink::Uplink;
pub use uplink::UplinkError;

use forward::Forwarder;

/// Frames the thread takes from one TAP before looking at the others, so one
/// flooding port cannot starve the rest.
const READ_BATCH: usize = 64;

/// Largest frame a TAP hands over (its MTU could be raised up to 64 KiB).
const FRAME_BUFFER: usize = 65_536;

/// SCHED_FIFO priority of the emulator's thread: the lowest, enough to run before
/// every normal thread; its spinning is bounded by [`spin::SpinWindow::CEILING`] per
/// due time.
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
    /// The uplink's socket could not be opened.
    #[error(transparent)]
    Uplink(#[from] UplinkError),
    /// A thread or an event fd could not be created.
    #[error("cannot start the emulator's {what}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A live link change was not taken in time (the emulator's thread is stuck).
    #[error("the link change was not taken within {0:?}")]
    ChangeTimedOut(Duration),
    /// A live link change's matrix does not fit the ports.
    #[error("a link change needs a {ports}x{columns} matrix (a row per port; a column per port, then per remote node)")]
    ChangeShape {
        /// The emulator's ports.
        ports: usize,
        /// Its columns: the ports, then the uplink's remote nodes.
        columns: usize,
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

/// What the emulator's thread shares with its handle.
struct Shared {
    taps: Vec<OwnedFd>,
    captures: Vec<OwnedFd>,
    /// The other hosts, as the ports after the TAPs.
    uplink: Option<Uplink>,
    stop: AtomicBool,
    /// An eventfd that wakes the thread out of its wait to see `stop` or `change`.
    wake: OwnedFd,
    counters: Vec<PortCells>,
    /// Columns of the matrix: the ports, then the uplink's remote nodes.
    columns: usize,
    /// Frames with a TCP payload written late, for the lab's judge.
    late: late::LateRing,
    /// A new matrix for the thread, and how many it has applied so far.
    change: Mutex<Change>,
    /// Signalled whenever the thread applied a change.
    changed: Condvar,
}

/// A pending matrix and the count of those applied.
type Change = (Option<Vec<Vec<Stages>>>, u64);

impl Shared {
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

/// How the emulator's thread is scheduled by the kernel.
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
            .field("ports", &self.shared.counters.len())
            .finish_non_exhaustive()
    }
}

/// Creates every TAP (each up in its namespace) and starts forwarding. On error,
/// whatever was created is gone again.
pub fn spawn(spec: &EmulatorSpec) -> Result<EmulatorHandle, EmulatorError> {
    spec.validate()?;
    // First: a taken address fails before any TAP exists.
    let uplink = spec
        .uplink
        .as_ref()
        .map(|uplink| uplink::open(uplink, spec.ports.len()))
        .transpose()?;
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
    let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map(OwnedFd::from)
        .map_err(|errno| EmulatorError::Start {
            what: "event fd",
            source: errno.into(),
        })?;
    let ports = spec.port_count();
    let shared = Arc::new(Shared {
        taps,
        captures,
        uplink,
        stop: AtomicBool::new(false),
        wake,
        counters: (0..ports).map(|_| PortCells::default()).collect(),
        columns: spec.column_count(),
        late: late::LateRing::default(),
        change: Mutex::new((None, 0)),
        changed: Condvar::new(),
    });
    let forwarder = Forwarder::new(
        &spec.matrix(),
        ports - spec.ports.len(),
        spec.remote_nodes(),
        spec.reorder,
        spec.seed.unwrap_or_else(|| fastrand::u64(..)),
    );
    let mut handle = EmulatorHandle {
        shared,
        threads: Vec::new(),
        priority: Priority::Normal(None),
    };
    let shared = Arc::clone(&handle.shared);
    let (started, priority) = mpsc::sync_channel(1);
    let (realtime, queue_limit) = (spec.realtime, spec.queue_limit);
    let thread = std::thread::Builder::new()
        .name("sdss-emu".to_owned())
        .spawn(move || {
            let _ = started.send(set_priority(realtime));
            if let Err(error) = engine::run(&shared, forwarder, queue_limit) {
                eprintln!("sdss lab-emulator: forwarding stops: {error}");
            }
        })
        .map_err(|source| EmulatorError::Start {
            what: "thread",
            source,
        })?;
    handle.threads.push(thread);
    handle.priority = priority.recv().map_err(|_| EmulatorError::Start {
        what: "thread",
        source: io::Error::other("it died while starting"),
    })?;
    Ok(handle)
}

impl EmulatorHandle {
    /// How the emulator's thread runs: real time unless the spec opted out or it was refused.
    pub fn priority(&self) -> &Priority {
        &self.priority
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        Counters {
            ports: self.shared.counters.iter().map(PortCells::load).collect(),
            uplink: self.shared.uplink.as_ref().map(|u| u.counters.load()),
        }
    }

    /// Appends the late deliveries recorded since `cursor` to `out` (moving the
    /// cursor past them); returns how many were lost because nobody drained them
    /// for [`late::RING`] entries.
    pub fn drain_late(&self, cursor: &mut u64, out: &mut Vec<LateDelivery>) -> u64 {
        self.shared.late.drain(cursor, out)
    }

    /// Replaces every pair's stages (row `from`, column `to`; a cell is
    /// [`Stages`] or an [`Impairment`](crate::lab::plan::impairment::Impairment),
    /// one stage) while frames flow (every
    /// port, the uplink's remotes included, and a column per remote node
    /// after the ports'); returns once the thread forwards by it, or after
    /// `limit`.
    pub fn set_matrix<C: Into<Stages>>(
        &self,
        matrix: Vec<Vec<C>>,
        limit: Duration,
    ) -> Result<(), EmulatorError> {
        let (ports, columns) = (self.shared.counters.len(), self.shared.columns);
        if matrix.len() != ports || matrix.iter().any(|row| row.len() != columns) {
            return Err(EmulatorError::ChangeShape { ports, columns });
        }
        let matrix: Vec<Vec<Stages>> = matrix
            .into_iter()
            .map(|row| row.into_iter().map(Into::into).collect())
            .collect();
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
        // Cannot fail short of a counter overflow; the thread rechecks `stop` after
        // every wait, so it cannot miss this.
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

/// Sets the calling thread's timer slack and, if asked, SCHED_FIFO.
fn set_priority(realtime: bool) -> Priority {
    // Timed sleeps otherwise overrun by the default 50 us slack. Best effort: without
    // it the spin window still absorbs most of the overrun.
    let _ = nix::sys::prctl::set_timerslack(1);
    if !realtime {
        return Priority::Normal(None);
    }
    match crate::sys::set_fifo_scheduler(REALTIME_PRIORITY) {
        Ok(()) => Priority::Realtime,
        Err(error) => Priority::Normal(Some(error.to_string())),
    }
}
