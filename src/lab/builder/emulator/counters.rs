//! What the emulator did with the frames, per port: live atomic cells while
//! it runs, plain counts for the lab's report (kept in a file it rewrites).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What happened to the frames of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    /// Frames read from this port's TAP.
    pub received: u64,
    /// Frames written to this port's TAP.
    pub forwarded: u64,
    /// Copies destined to this port dropped by the link's loss.
    pub lost: u64,
    /// Copies destined to this port dropped because their link passes
    /// nothing (a timeline's cut or partition, or loss 1 with no delay): the
    /// lab's doing, not a link's chance loss.
    #[serde(default)]
    pub cut: u64,
    /// Copies destined to this port dropped because their link's queue was
    /// full or held its limit.
    pub overflowed: u64,
    /// Frames from this port not forwarded: runts, or destined to their own port.
    pub rejected: u64,
    /// Failed reads from or writes to this port's TAP.
    pub errors: u64,
    /// Frames from this port timed from when they were read, for want of a kernel
    /// stamp: a precision diagnostic, normally zero.
    pub unstamped: u64,
    /// Frames written to this port more than [`super::LATE`] after their due time: the
    /// machine was too busy to keep time. A precision diagnostic, normally zero.
    pub late: u64,
}

/// Datagrams the uplink dropped before they were frames of a port. A remote
/// port's own counters count the frames it carried: received (decapsulated),
/// forwarded (sent to it), errors (failed sends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkCounters {
    /// From an address that is not one of the remotes.
    pub unknown_sender: u64,
    /// Shorter than a VXLAN header, without the I flag, or truncated.
    pub malformed: u64,
    /// Another segment's VNI.
    pub wrong_vni: u64,
    /// Failed reads of the uplink's socket.
    pub errors: u64,
}

/// Counters of every port, in port order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// One entry per port of the spec: the TAPs', then the uplink's remotes'.
    pub ports: Vec<PortCounters>,
    /// The uplink's drops, if the spec has an uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkCounters>,
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
                cut: sum.cut + port.cut,
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
                "{name}: received {}, forwarded {}, dropped by loss {}, dropped by a cut {}, dropped by full queue {}, rejected {}, errors {}, unstamped {}, late {}",
                c.received, c.forwarded, c.lost, c.cut, c.overflowed, c.rejected, c.errors, c.unstamped, c.late
            )
        };
        for (index, port) in self.ports.iter().enumerate() {
            line(f, &format!("port {index}"), port)?;
        }
        line(f, "total", &self.total())?;
        if let Some(uplink) = &self.uplink {
            writeln!(
                f,
                "uplink: unknown sender {}, malformed {}, wrong VNI {}, errors {}",
                uplink.unknown_sender, uplink.malformed, uplink.wrong_vni, uplink.errors
            )?;
        }
        Ok(())
    }
}

/// The live counters of one port, bumped by the emulator's threads.
#[derive(Debug, Default)]
pub(super) struct PortCells {
    pub(super) received: AtomicU64,
    pub(super) forwarded: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) cut: AtomicU64,
    pub(super) overflowed: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) unstamped: AtomicU64,
    pub(super) late: AtomicU64,
}

pub(super) fn bump(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

impl PortCells {
    /// The counts now.
    pub(super) fn load(&self) -> PortCounters {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        PortCounters {
            received: load(&self.received),
            forwarded: load(&self.forwarded),
            lost: load(&self.lost),
            cut: load(&self.cut),
            overflowed: load(&self.overflowed),
            rejected: load(&self.rejected),
            errors: load(&self.errors),
            unstamped: load(&self.unstamped),
            late: load(&self.late),
        }
    }
}

/// The live counters of the uplink.
#[derive(Debug, Default)]
pub(super) struct UplinkCells {
    pub(super) unknown_sender: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) wrong_vni: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl UplinkCells {
    /// The counts now.
    pub(super) fn load(&self) -> UplinkCounters {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        UplinkCounters {
            unknown_sender: load(&self.unknown_sender),
            malformed: load(&self.malformed),
            wrong_vni: load(&self.wrong_vni),
            errors: load(&self.errors),
        }
    }
}
