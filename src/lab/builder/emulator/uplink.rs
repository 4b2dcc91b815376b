//! The uplink: one UDP socket that carries the lab's segment to the other hosts'
//! emulators (or kernel `vxlan` devices) in VXLAN's wire format. Each remote host
//! is a port of the switch after the TAPs; a frame due to it leaves as one
//! datagram, and a datagram from it enters as a frame of its port.
//!
//! The socket lives in the underlay's namespace (opened by a short-lived thread
//! that entered it, like a TAP) and is stamped by the kernel on receipt, so a
//! remote frame's delay counts from when it reached this host, not from when the
//! thread got to it.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::lab::builder::netns::on_thread_in;
use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage,
};
use rustix::net::sockopt::{set_ip_mtu_discover, Ipv4PathMtuDiscovery};
use thiserror::Error;

use super::counters::{bump, UplinkCells};
use super::spec::UplinkSpec;
use super::stamp::kernel_stamp;
use super::vxlan::{self, HeaderError, HEADER_LEN};

/// Receive and send buffer asked of the kernel: a burst from every remote at once.
const SOCKET_BUFFER: usize = 4 << 20;

/// Why the uplink's socket could not be opened.
#[derive(Debug, Error)]
pub enum UplinkError {
    /// The namespace file is missing or unreadable.
    #[error("uplink: cannot open namespace {}", path.display())]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `setns` refused (not a network namespace, or no privilege), or no
    /// thread could be started to enter it.
    #[error("uplink: cannot enter namespace {}", path.display())]
    EnterNetns {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The socket could not be made or set up.
    #[error("uplink: cannot {what} its socket")]
    Socket {
        /// What was attempted.
        what: &'static str,
        /// The cause.
        source: Errno,
    },
    /// The local address is taken or not on this host (in that namespace).
    #[error("uplink: cannot bind {local}")]
    Bind {
        /// The address.
        local: SocketAddr,
        /// The cause.
        source: Errno,
    },
}

/// What one read of the socket gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Datagram {
    /// A frame of port `port`, at `frame` in the buffer, with the kernel's
    /// CLOCK_REALTIME stamp of its receipt if there was one.
    Frame {
        port: usize,
        frame: Range<usize>,
        stamp: Option<Duration>,
    },
    /// Not a frame of this segment; counted.
    Dropped,
}

/// The open uplink.
#[derive(Debug)]
pub(super) struct Uplink {
    socket: OwnedFd,
    vni: u32,
    header: [u8; HEADER_LEN],
    remotes: Vec<SocketAddr>,
    /// The remotes as the kernel takes them, converted once.
    destinations: Vec<SockaddrStorage>,
    /// The port of remote 0.
    first_port: usize,
    pub(super) counters: UplinkCells,
}

/// Opens the uplink of `spec`, whose remote 0 is port `first_port`.
pub(super) fn open(spec: &UplinkSpec, first_port: usize) -> Result<Uplink, UplinkError> {
    let local = spec.local;
    let socket = match spec.netns_path() {
        None => bind(local)?,
        Some(path) => {
            // Opened here, so a missing namespace is reported before any thread exists.
            let netns = File::open(&path).map_err(|source| UplinkError::OpenNetns {
                path: path.clone(),
                source,
            })?;
            on_thread_in(&netns, || bind(local))
                .map_err(|source| UplinkError::EnterNetns { path, source })??
        }
    };
    Ok(Uplink {
        socket,
        vni: spec.vni,
        header: vxlan::encode_header(spec.vni),
        remotes: spec.remotes.clone(),
        destinations: spec.remotes.iter().map(|r| (*r).into()).collect(),
        first_port,
        counters: UplinkCells::default(),
    })
}

/// A non-blocking UDP socket bound to `local` in the calling thread's namespace,
/// stamping what it receives.
fn bind(local: SocketAddr) -> Result<OwnedFd, UplinkError> {
    let fail = |what| move |source| UplinkError::Socket { what, source };
    let family = match local {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let socket = socket::socket(family, SockType::Datagram, flags, None).map_err(fail("open"))?;
    socket::setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
        .map_err(fail("stamp receipts of"))?;
    // FORCE needs CAP_NET_ADMIN, which making the TAPs already required; the
    // plain options are the fallback. Best effort: the defaults still work.
    let _ = socket::setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER)
        .or_else(|_| socket::setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER));
    let _ = socket::setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER)
        .or_else(|_| socket::setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER));
    if local.is_ipv4() {
        // Never DF, like the kernel's vxlan device: an underlay with a smaller
        // MTU fragments a full-size frame instead of dropping it.
        let _ = set_ip_mtu_discover(&socket, Ipv4PathMtuDiscovery::DONT);
    }
    socket::bind(socket.as_raw_fd(), &SockaddrStorage::from(local))
        .map_err(|source| UplinkError::Bind { local, source })?;
    Ok(socket)
}

impl Uplink {
    /// The socket, to wait on.
    pub(super) fn socket(&self) -> &OwnedFd {
        &self.socket
    }

    /// Reads one datagram into `buffer`; counts and drops it unless it is a
    /// frame of this segment from a remote. `EAGAIN` when none is waiting.
    pub(super) fn receive(&self, buffer: &mut [u8], control: &mut [u8]) -> Result<Datagram, Errno> {
        let (len, source, truncated, stamp) = {
            let mut iov = [IoSliceMut::new(buffer)];
            let message = socket::recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(control),
                MsgFlags::empty(),
            )?;
            let stamp = kernel_stamp(&message);
            let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
            (message.bytes, message.address, truncated, stamp)
        };
        let Some(port) = source
            .and_then(|s| socket_addr(&s))
            .and_then(|s| remote_index(&self.remotes, s))
            .map(|index| self.first_port + index)
        else {
            bump(&self.counters.unknown_sender);
            return Ok(Datagram::Dropped);
        };
        let datagram = buffer.get(..len).filter(|_| !truncated);
        match datagram.map(|d| vxlan::decapsulate(d, self.vni)) {
            Some(Ok(_)) => Ok(Datagram::Frame {
                port,
                frame: HEADER_LEN..len,
                stamp,
            }),
            Some(Err(HeaderError::WrongVni(_))) => {
                bump(&self.counters.wrong_vni);
                Ok(Datagram::Dropped)
            }
            Some(Err(_)) | None => {
                bump(&self.counters.malformed);
                Ok(Datagram::Dropped)
            }
        }
    }

    /// Sends `frame` to the remote behind `port`, encapsulated, in one datagram.
    pub(super) fn send(&self, port: usize, frame: &[u8]) -> Result<(), Errno> {
        let destination = port
            .checked_sub(self.first_port)
            .and_then(|index| self.destinations.get(index))
            .ok_or(Errno::EINVAL)?;
        let parts = [IoSlice::new(&self.header), IoSlice::new(frame)];
        socket::sendmsg(
            self.socket.as_raw_fd(),
            &parts,
            &[],
            MsgFlags::empty(),
            Some(destination),
        )
        .map(drop)
    }
}

/// Which remote sent from `source`: the one with that exact address, else the
/// only one with its IP (a kernel peer sends from a port hashed per flow).
fn remote_index(remotes: &[SocketAddr], source: SocketAddr) -> Option<usize> {
    if let Some(index) = remotes.iter().position(|r| *r == source) {
        return Some(index);
    }
    let mut same_ip = remotes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ip() == source.ip());
    match (same_ip.next(), same_ip.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddrV4::from(*v4).into());
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddrV6::from(*v6).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_sender_is_known_by_its_address_or_its_ip_alone() {
        let remotes = [addr("10.0.0.2:4789"), addr("10.0.0.3:4789")];
        assert_eq!(remote_index(&remotes, addr("10.0.0.3:4789")), Some(1));
        // A kernel peer's hashed source port.
        assert_eq!(remote_index(&remotes, addr("10.0.0.2:51234")), Some(0));
        assert_eq!(remote_index(&remotes, addr("10.0.0.9:4789")), None);
    }

    #[test]
    fn two_remotes_on_one_ip_are_told_apart_by_port_only() {
        let remotes = [addr("127.0.0.1:4790"), addr("127.0.0.1:4791")];
        assert_eq!(remote_index(&remotes, addr("127.0.0.1:4791")), Some(1));
        assert_eq!(remote_index(&remotes, addr("127.0.0.1:5000")), None);
    }

    fn pair() -> (Uplink, std::net::UdpSocket) {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let spec = UplinkSpec {
            local: addr("127.0.0.1:0"),
            vni: 42,
            remotes: vec![peer.local_addr().unwrap()],
            netns: None,
            nodes: Vec::new(),
        };
        (open(&spec, 3).unwrap(), peer)
    }

    fn local_of(uplink: &Uplink) -> SocketAddr {
        let storage: SockaddrStorage = socket::getsockname(uplink.socket.as_raw_fd()).unwrap();
        socket_addr(&storage).unwrap()
    }

    /// Waits (bounded) for the next datagram the uplink takes.
    fn next(uplink: &Uplink, buffer: &mut [u8]) -> Datagram {
        let mut control = crate::lab::builder::emulator::stamp::control_buffer();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match uplink.receive(buffer, &mut control) {
                Err(Errno::EAGAIN) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other.unwrap(),
            }
        }
    }

    #[test]
    fn carries_frames_over_loopback_and_counts_what_it_drops() {
        let (uplink, peer) = pair();
        let local = local_of(&uplink);
        let mut buffer = vec![0; 65_536];

        uplink.send(3, b"frame from here").unwrap();
        let (len, from) = peer.recv_from(&mut buffer).unwrap();
        assert_eq!(from, local);
        assert_eq!(&buffer[..HEADER_LEN], &vxlan::encode_header(42));
        assert_eq!(&buffer[HEADER_LEN..len], b"frame from here");
        assert_eq!(uplink.send(2, b"x"), Err(Errno::EINVAL));
        assert_eq!(uplink.send(4, b"x"), Err(Errno::EINVAL));

        let mut datagram = vxlan::encode_header(42).to_vec();
        datagram.extend_from_slice(b"frame from there");
        peer.send_to(&datagram, local).unwrap();
        match next(&uplink, &mut buffer) {
            Datagram::Frame { port, frame, stamp } => {
                assert_eq!(port, 3);
                assert_eq!(&buffer[frame], b"frame from there");
                assert!(stamp.is_some(), "no kernel stamp");
            }
            Datagram::Dropped => panic!("dropped {:?}", uplink.counters.load()),
        }

        peer.send_to(&vxlan::encode_header(43), local).unwrap();
        peer.send_to(&[0x08, 0, 0], local).unwrap();
        peer.send_to(&[0; 20], local).unwrap();
        let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        stranger.send_to(&datagram, local).unwrap();
        for _ in 0..4 {
            assert_eq!(next(&uplink, &mut buffer), Datagram::Dropped);
        }
        let counters = uplink.counters.load();
        assert_eq!(counters.wrong_vni, 1);
        assert_eq!(counters.malformed, 2);
        assert_eq!(counters.unknown_sender, 1);
    }
}
