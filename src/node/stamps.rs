//! Where the node takes the times of an exchange: each as close to the wire as
//! a socket lets it (README, "Measurements").
//!
//! * `T_B`, the server's time, is read just before the one system call that
//!   sends it, and that call sends it with our FIN in one segment. Sent apart,
//!   the FIN followed the answer by a whole write call (on veth the kernel
//!   delivers the segment, and handles the client's ACK, inside that call:
//!   about 100 us here), and when the FIN reached a client that had not yet
//!   read the answer, TCP merged the two and gave the answer the FIN's receive
//!   stamp: most of the node's old floor.
//! * `t2`, the answer's arrival, is the kernel's receive stamp of its last
//!   segment (`SO_TIMESTAMPNS`), so the reading task's wake-up is not measured.
//! * The RTT is the kernel's own first sample of the connection, SYN out to
//!   SYN-ACK in (`TCP_INFO`), so the connecting task's wake-up is not measured.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::protocol::{encode_timestamp, Dialect};

use super::clock::wall_now;

/// Keeps the kernel stamping arriving packets for as long as the process runs.
/// The kernel stamps only while some socket asks for stamps; when the last one
/// closes (between two exchanges, every client socket is closed) it stops, and
/// the next request turns stamping on again only later, from deferred work,
/// after the answer may have arrived unstamped (a CI run saw that on its first
/// exchange). One socket that asks, never bound and never closed, keeps it on.
pub fn keep_stamping() {
    static KEEP: OnceLock<Option<socket2::Socket>> = OnceLock::new();
    KEEP.get_or_init(|| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).ok()?;
        Some(socket)
    });
}

/// Where an exchange's `t2` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The kernel's receive stamp of the answer's last segment.
    Kernel,
    /// Our wall clock when we read it: the kernel gave no usable stamp.
    Read,
}

/// Reads what has arrived, with the kernel's arrival stamp (UTC seconds) of
/// the last segment read when the socket gives one.
pub async fn read_stamped(
    stream: &TcpStream,
    buffer: &mut [u8],
) -> io::Result<(usize, Option<f64>)> {
    loop {
        stream.readable().await?;
        let received = stream.try_io(Interest::READABLE, || {
            let mut space = nix::cmsg_space!(TimeSpec);
            let mut iov = [io::IoSliceMut::new(buffer)];
            let message = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(at) => {
                        Some(at.tv_sec() as f64 + at.tv_nsec() as f64 * 1e-9)
                    }
                    _ => None,
                })
            });
            // A stamp from another clock (a monotonic delivery time left on
            // the segment: never seen here, but cheap to refuse) would corrupt
            // every delay: keep only one from the last second.
            let stamp = stamp.filter(|at| (0.0..1.0).contains(&(wall_now() - at)));
            Ok((message.bytes, stamp))
        });
        match received {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// The connection's first RTT sample as the kernel took it: our SYN leaving
/// TCP to the peer's SYN-ACK reaching it, in microseconds. Read right after
/// `connect`, before anything else is sent, the smoothed RTT is still exactly
/// that one sample. `None` when the kernel has none: a retransmitted SYN gives
/// no sample (Karn) or a coarse one from TCP timestamps.
pub fn handshake_rtt(stream: &impl AsFd) -> Option<Duration> {
    let info = tcp_info(stream).ok()?;
    (info.tcpi_rtt > 0 && info.tcpi_total_retrans == 0)
        .then(|| Duration::from_micros(u64::from(info.tcpi_rtt)))
}

/// The socket's `TCP_INFO`.
pub fn tcp_info(stream: &impl AsFd) -> io::Result<libc::tcp_info> {
    crate::sys::tcp_info(stream)
}

/// Sends our time in `dialect` and closes our side, in one segment: `T_B` is
/// read just before the system call that sends it (nothing is awaited in
/// between), and the FIN rides on the answer (`MSG_MORE` holds the bytes until
/// `shutdown` adds it), so no later FIN can be merged into the answer at a
/// client that has not read it yet and give it the FIN's receive stamp.
/// The peer sees the same bytes at the same moment, then our close as before,
/// only without the gap. Returns how many bytes of the answer went out and the
/// answer; the caller writes the rest, if any, the slow way.
pub fn answer_with_fin(stream: &TcpStream, dialect: Dialect) -> (io::Result<usize>, Vec<u8>) {
    let socket = SockRef::from(stream);
    // An empty send walks much of the send path and sends nothing: a task
    // that has just woken (the kernel's path cold) then sends its time faster
    // (traced on veth here: that send call took a median 6 us instead of 20).
    let _ = socket.send_with_flags(&[], libc::MSG_MORE);
    let answer = encode_timestamp(wall_now(), dialect);
    let sent = socket.send_with_flags(&answer, libc::MSG_MORE);
    if matches!(&sent, Ok(n) if *n == answer.len()) {
        if socket.shutdown(Shutdown::Write).is_err() {
            // Nothing may stay held back: setting TCP_NODELAY pushes it.
            let _ = socket.set_tcp_nodelay(true);
        }
    } else {
        let _ = socket.set_tcp_nodelay(true);
    }
    (sent, answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn the_handshake_rtt_is_the_kernels_single_first_sample() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
        let stream = TcpStream::connect(addr).await.unwrap();
        let info = tcp_info(&stream).unwrap();
        let rtt = handshake_rtt(&stream).expect("a sample from the handshake");
        // One sample: the smoothed RTT is it, the windowed minimum too, and the
        // mean deviation is half of it (RFC 6298's first-sample rule).
        assert_eq!(rtt, Duration::from_micros(info.tcpi_min_rtt.into()));
        assert_eq!(info.tcpi_rttvar, info.tcpi_rtt / 2, "{}", info.tcpi_rtt);
        assert!(rtt < Duration::from_millis(100), "{rtt:?} on loopback");
        drop(accept.await.unwrap());
    }
}
