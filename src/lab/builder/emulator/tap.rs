//! TAP devices inside other namespaces. A TAP is created in the namespace of the
//! thread that opens `/dev/net/tun`, so each is made by a short-lived thread that
//! entered the namespace first; the fd keeps working from any thread afterwards,
//! and closing it deletes the device.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::lab::builder::netns::on_thread_in;
use crate::sys;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, MsgFlags};
use socket2::{Domain, SockFilter, Socket, Type};
use thiserror::Error;

use super::spec::PortSpec;
use super::stamp::kernel_stamp;

/// A TAP device owned by the emulator: the device lives as long as `fd`.
#[derive(Debug)]
pub struct Tap {
    /// Non-blocking, close-on-exec; Ethernet frames without a packet-info header.
    pub fd: OwnedFd,
    /// A packet socket on the TAP that receives, with kernel timestamps, the frames
    /// the node sends (see [`super::stamp`]).
    pub capture: OwnedFd,
}

/// Why a TAP could not be made.
#[derive(Debug, Error)]
pub enum TapError {
    /// The namespace file is missing or unreadable.
    #[error("cannot open namespace {}", path.display())]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `setns` refused (not a network namespace, or no privilege), or no
    /// thread could be started to enter it.
    #[error("cannot enter namespace {}", path.display())]
    EnterNetns {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// No TUN/TAP support or no privilege.
    #[error("cannot open /dev/net/tun (TUN/TAP missing or no privilege)")]
    OpenTun(#[source] io::Error),
    /// Something already has the name in that namespace.
    #[error("an interface with that name already exists")]
    Exists,
    /// `TUNSETIFF` failed.
    #[error("cannot create the TAP device")]
    Create(#[source] io::Error),
    /// Reading or setting its flags or address failed.
    #[error("cannot {what} the TAP device")]
    Configure {
        /// What was attempted.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

/// Creates the TAP of `port` inside its namespace and brings it up.
pub fn create(port: &PortSpec) -> Result<Tap, TapError> {
    let path = port.netns_path();
    let ifname = port.ifname.clone();
    // Open the namespace here, so a missing one is reported before any thread exists.
    let netns = File::open(&path).map_err(|source| TapError::OpenNetns {
        path: path.clone(),
        source,
    })?;
    on_thread_in(&netns, || create_here(&ifname))
        .map_err(|source| TapError::EnterNetns { path, source })?
}

/// Creates, in the calling thread's namespace, a TAP named `ifname`, and sets it up.
fn create_here(ifname: &str) -> Result<Tap, TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(TapError::OpenTun)?;
    let fd = OwnedFd::from(file);

    // EXCL: never attach to a persistent TAP someone else left under that name.
    let flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    if let Err(error) = sys::tun_set_iff(&fd, ifname, flags) {
        return Err(match error.raw_os_error() {
            Some(libc::EBUSY) | Some(libc::EEXIST) => TapError::Exists,
            _ => TapError::Create(error),
        });
    }

    // Interface flags are set through any socket of the namespace.
    let socket: OwnedFd = Socket::new(Domain::IPV4, Type::DGRAM, None)
        .map_err(|e| configure("open a socket to configure", e))?
        .into();
    let flags = sys::interface_flags(&socket, ifname).map_err(|e| configure("read flags of", e))?;
    sys::set_interface_flags(&socket, ifname, flags | libc::IFF_UP as libc::c_short)
        .map_err(|e| configure("bring up", e))?;

    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| configure("find the index of", e.into()))?;
    let capture = open_capture(ifindex).map_err(|e| configure("capture frames of", e))?;
    Ok(Tap { fd, capture })
}

/// A packet socket that receives, stamped by the kernel, only the frames leaving
/// through interface `ifindex` (the node's transmissions), not those we write.
fn open_capture(ifindex: u32) -> io::Result<OwnedFd> {
    // Protocol 0 receives nothing until `bind`, after the filter is in place.
    let socket = Socket::new(Domain::PACKET, Type::RAW.nonblocking(), None)?;
    // Classic BPF, as `tcpdump -dd outbound`: keep outgoing frames whole, drop the rest.
    socket.attach_filter(&[
        SockFilter::new(0x28, 0, 0, (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32),
        SockFilter::new(0x15, 0, 1, u32::from(libc::PACKET_OUTGOING)),
        SockFilter::new(0x06, 0, 0, 0x0004_0000),
        SockFilter::new(0x06, 0, 0, 0),
    ])?;
    let socket = OwnedFd::from(socket);
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
    // Room for a flood's worth of frames; FORCE needs CAP_NET_ADMIN, which making
    // the TAP already required, and the plain option is the fallback.
    let buffer = 4 << 20;
    setsockopt(&socket, sockopt::RcvBufForce, &buffer)
        .or_else(|_| setsockopt(&socket, sockopt::RcvBuf, &buffer))?;
    sys::bind_packet(&socket, libc::ETH_P_ALL as u16, ifindex)?;
    Ok(socket)
}

/// Receives one captured frame into `buffer`: its length and the kernel's
/// CLOCK_REALTIME stamp of its transmission. `control` is scratch room from
/// [`super::stamp::control_buffer`]. `WouldBlock` when none is waiting.
pub fn receive_captured(
    capture: &OwnedFd,
    buffer: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Option<std::time::Duration>)> {
    let mut iov = [io::IoSliceMut::new(buffer)];
    let message = recvmsg::<()>(
        capture.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::empty(),
    )?;
    let stamp = kernel_stamp(&message);
    Ok((message.bytes, stamp))
}

fn configure(what: &'static str, source: io::Error) -> TapError {
    TapError::Configure { what, source }
}
