//! Where the node takes the times of an exchange: each as close to the wire as
//! a socket lets it (README, "Measurements").
//!
//! * `T_B`, the server's time, is our clock read just before the one system
//!   call that sends it, plus the forecast of how long our own stack then
//!   takes to hand it to the device layer (`forecast`), and that call sends it
//!   with our FIN in one segment. Sent apart, the FIN followed the answer by a
//!   whole write call (on veth the kernel delivers the segment, and handles
//!   the client's ACK, inside that call: about 100 us here), and when the FIN
//!   reached a client that had not yet read the answer, TCP merged the two and
//!   gave the answer the FIN's receive stamp: most of the node's old floor.
//! * `t2`, the answer's arrival, is the kernel's receive stamp of its last
//!   segment (`SO_TIMESTAMPNS`), so the reading task's wake-up is not measured.
//! * The RTT is the kernel's own first sample of the connection, SYN out to
//!   SYN-ACK in (`TCP_INFO`), so the connecting task's wake-up is not measured.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::protocol::{encode_timestamp, Dialect};

use super::clock::{wall_now, wall_seconds};
use super::forecast::{self, node_latency, sent_stamp, stamp_sends};

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
/// between), plus the forecast of our send latency learnt from the kernel's
/// stamps of the answers before (`forecast`), and the FIN rides on the answer
/// (`MSG_MORE` holds the bytes until `shutdown` adds it), so no later FIN can
/// be merged into the answer at a client that has not read it yet and give it
/// the FIN's receive stamp. The peer sees the same bytes at the same moment,
/// then our close as before, only without the gap. The caller writes the rest
/// of the answer, if any, the slow way.
///
/// The connection leaves the runtime's epoll for the send: the kernel queues
/// the TX stamp inside the send, before the segment goes on, and woke a
/// runtime thread waiting on that epoll first. A client measured some 10 us
/// more on veth (a test program here, with and without a thread in
/// `epoll_wait` on the socket: medians 45-48 us against 33-40).
pub fn answer_with_fin(stream: TcpStream, dialect: Dialect) -> Answered {
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            return Answered {
                stream: None,
                sent: Err(error),
                answer: Vec::new(),
            }
        }
    };
    let (sent, answer) = send_with_fin(&stream, dialect);
    Answered {
        stream: TcpStream::from_std(stream).ok(),
        sent,
        answer,
    }
}

/// What [`answer_with_fin`] did.
#[derive(Debug)]
pub struct Answered {
    /// The connection, back in the runtime; `None` when it could not leave it
    /// or come back (never seen): the client then sees our close.
    pub stream: Option<TcpStream>,
    /// How many bytes of the answer went out.
    pub sent: io::Result<usize>,
    /// The answer.
    pub answer: Vec<u8>,
}

/// [`answer_with_fin`]'s send, on a socket no epoll watches.
fn send_with_fin(stream: &std::net::TcpStream, dialect: Dialect) -> (io::Result<usize>, Vec<u8>) {
    let socket = SockRef::from(stream);
    let latency = node_latency();
    let stamped = stamp_sends(stream);
    // An empty send walks much of the send path and sends nothing: a task
    // that has just woken (the kernel's path cold) then sends its time faster
    // (traced on veth here: that send call took a median 6 us instead of 20).
    // It carries no data, so the kernel stamps nothing for it.
    let _ = socket.send_with_flags(&[], libc::MSG_MORE);
    let ahead = latency.forecast();
    let read = SystemTime::now();
    let answer = encode_timestamp(wall_seconds(read) + ahead.as_secs_f64(), dialect);
    let sent = socket.send_with_flags(&answer, libc::MSG_MORE);
    if matches!(&sent, Ok(n) if *n == answer.len()) {
        if socket.shutdown(Shutdown::Write).is_err() {
            // Nothing may stay held back: setting TCP_NODELAY pushes it.
            let _ = socket.set_tcp_nodelay(true);
        } else if stamped {
            // The segment left inside `shutdown` (on veth and loopback): its
            // stamp is queued already, or it is skipped.
            if let Some(took) = sent_stamp(stream).and_then(|at| forecast::latency(read, at)) {
                latency.record(took);
            }
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

    #[tokio::test]
    async fn a_forecast_time_decodes_and_stays_near_the_clients_clock() {
        keep_stamping();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rounds = forecast::MIN_SAMPLES * 3;
        let server = tokio::spawn(async move {
            for _ in 0..rounds {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = answer_with_fin(stream, Dialect::BinaryBe);
            }
        });
        let mut delays = Vec::new();
        for _ in 0..rounds {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut answer = Vec::new();
            let mut buffer = [0u8; 16];
            let mut t2 = None;
            loop {
                let (n, stamp) = read_stamped(&stream, &mut buffer).await.unwrap();
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buffer[..n]);
                t2 = stamp.or(t2);
            }
            let t2 = t2.unwrap_or_else(wall_now);
            let decoded = crate::protocol::decode_timestamp(&answer, wall_now()).unwrap();
            delays.push(t2 - decoded.seconds);
        }
        server.await.unwrap();
        // The kernel stamped the answers (loopback stamps as veth does), the
        // forecast is in its bounds, and every time reads as the client's
        // clock give or take: never ahead by more than the largest forecast,
        // late by no more than a loaded machine's 30 ms.
        assert!(node_latency().forecast() > Duration::ZERO, "no TX stamps");
        assert!(node_latency().forecast() <= forecast::MAX_FORECAST);
        let early = -forecast::MAX_FORECAST.as_secs_f64();
        for delay in delays {
            assert!((early..0.030).contains(&delay), "{:.1} us", delay * 1e6);
        }
    }
}
