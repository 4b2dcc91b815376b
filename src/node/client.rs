//! The timestamp client: connect to a peer's server, speak first, read its time.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use thiserror::Error;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::protocol::{
    decode_timestamp, encode_timestamp, DecodedTimestamp, Dialect, TimestampError,
};

use super::clock::wall_now;

/// Once the first bytes of an answer are in, how long to wait for the rest
/// from a server that does not close: ASCII answers have no fixed length.
const TAIL_WAIT: Duration = Duration::from_millis(50);

/// Larger answers are cut here: no timestamp is this long.
const MAX_ANSWER: usize = 64;

/// Where an exchange timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP handshake.
    Connect,
    /// Waiting for the peer's time.
    Answer,
}

/// Why an exchange failed; each transport failure the seed names is its own variant.
#[derive(Debug, Error)]
pub enum ExchangeError {
    /// Nobody listens on the announced port: the peer is gone.
    #[error("connection refused")]
    Refused,
    /// No answer in time.
    #[error("timed out during {0:?}")]
    TimedOut(Phase),
    /// No route to the peer.
    #[error("unreachable: {0}")]
    Unreachable(io::Error),
    /// The peer reset the connection before sending its time.
    #[error("connection reset before the timestamp arrived")]
    Reset,
    /// The peer closed without sending anything.
    #[error("closed without sending a timestamp")]
    NoAnswer,
    /// Any other socket error.
    #[error("{0}")]
    Io(io::Error),
}

impl ExchangeError {
    /// The machine-readable cause used in `removed` events.
    pub fn cause(&self) -> &'static str {
        match self {
            ExchangeError::Refused => "refused",
            ExchangeError::TimedOut(_) => "timeout",
            ExchangeError::Unreachable(_) => "unreachable",
            ExchangeError::Reset => "reset",
            ExchangeError::NoAnswer => "no_answer",
            ExchangeError::Io(_) => "io",
        }
    }

    fn from_io(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => ExchangeError::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                ExchangeError::Reset
            }
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ExchangeError::Unreachable(error)
            }
            io::ErrorKind::TimedOut => ExchangeError::TimedOut(Phase::Connect),
            _ => ExchangeError::Io(error),
        }
    }

    /// Whether a server of another dialect might have answered had we spoken its language.
    fn may_be_dialect_mismatch(&self) -> bool {
        matches!(
            self,
            ExchangeError::NoAnswer | ExchangeError::TimedOut(Phase::Answer)
        )
    }
}

/// A completed exchange: the peer answered something.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// TCP handshake duration.
    pub rtt: Duration,
    /// Our wall clock when the answer had fully arrived (`t2`).
    pub received_at: f64,
    /// The peer's time, or why its bytes were not one.
    pub answer: Result<DecodedTimestamp, TimestampError>,
    /// The dialect we spoke.
    pub spoke: Dialect,
}

impl Exchange {
    /// `t2 - T_B`: the seed's delay, B -> A.
    pub fn delay(&self) -> Option<f64> {
        let answer = self.answer.as_ref().ok()?;
        Some(self.received_at - answer.seconds)
    }

    /// `T_B - (t2 - rtt/2)`: B's clock against ours, assuming symmetric paths.
    pub fn offset(&self) -> Option<f64> {
        let answer = self.answer.as_ref().ok()?;
        Some(answer.seconds - (self.received_at - self.rtt.as_secs_f64() / 2.0))
    }
}

/// Measures one peer. Speaks `dialect` (the peer's, when known); when the
/// dialect is not known and the peer stays mute, tries once more in ASCII,
/// because text servers that read first drop a binary greeting.
pub async fn exchange(
    addr: SocketAddr,
    dialect: Option<Dialect>,
    timeout: Duration,
) -> Result<Exchange, ExchangeError> {
    let first = exchange_once(addr, dialect.unwrap_or(Dialect::BinaryBe), timeout).await;
    match first {
        Err(error) if dialect.is_none() && error.may_be_dialect_mismatch() => {
            exchange_once(addr, Dialect::Ascii, timeout).await
        }
        other => other,
    }
}

async fn exchange_once(
    addr: SocketAddr,
    dialect: Dialect,
    timeout: Duration,
) -> Result<Exchange, ExchangeError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| ExchangeError::TimedOut(Phase::Connect))?
        .map_err(ExchangeError::from_io)?;
    let rtt = started.elapsed();
    let _ = stream.set_nodelay(true);
    // The kernel stamps each segment as it arrives: `t2` then excludes how long
    // this task took to wake up, which is most of a LAN measurement's error.
    let _ = setsockopt(&stream, sockopt::ReceiveTimestampns, &true);
    // Speak first: some servers read before they write. A server that already
    // answered and closed may reset us here; its answer is still readable.
    let greeting = encode_timestamp(wall_now(), dialect);
    let _ = timeout_at(deadline, stream.write_all(&greeting)).await;

    let (answer, received_at) = read_answer(&mut stream, deadline).await?;
    Ok(Exchange {
        rtt,
        received_at,
        answer: decode_timestamp(&answer, received_at),
        spoke: dialect,
    })
}

/// Reads what has arrived, with the kernel's arrival stamp (UTC seconds) of
/// the last segment read when the socket gives one.
async fn read_stamped(stream: &TcpStream, buffer: &mut [u8]) -> io::Result<(usize, Option<f64>)> {
    loop {
        stream.readable().await?;
        let received = stream.try_io(Interest::READABLE, || {
            let mut space = nix::cmsg_space!(TimeSpec);
            let mut iov = [io::IoSliceMut::new(buffer)];
            let message = recvmsg::<()>(
                std::os::fd::AsRawFd::as_raw_fd(stream),
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
            // A stamp from another clock epoch (never seen, but cheap to refuse)
            // would corrupt every delay: keep only one from the last second.
            let stamp = stamp.filter(|at| (0.0..1.0).contains(&(wall_now() - at)));
            Ok((message.bytes, stamp))
        });
        match received {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Reads until EOF, a complete 8-byte time, or a pause after the first bytes.
/// Returns the bytes and the wall-clock time the last of them arrived.
async fn read_answer(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(Vec<u8>, f64), ExchangeError> {
    let mut answer = Vec::with_capacity(MAX_ANSWER);
    let mut chunk = [0u8; MAX_ANSWER];
    let mut received_at = 0.0;
    loop {
        let wait_until = if answer.is_empty() {
            deadline
        } else {
            deadline.min(Instant::now() + TAIL_WAIT)
        };
        match timeout_at(wait_until, read_stamped(stream, &mut chunk)).await {
            Err(_) if answer.is_empty() => return Err(ExchangeError::TimedOut(Phase::Answer)),
            Err(_) | Ok(Ok((0, _))) => break,
            Ok(Ok((n, stamp))) => {
                received_at = stamp.unwrap_or_else(wall_now);
                answer.extend_from_slice(&chunk[..n]);
                let binary_complete =
                    answer.len() == 8 && decode_timestamp(&answer, received_at).is_ok();
                if binary_complete || answer.len() >= MAX_ANSWER {
                    break;
                }
            }
            Ok(Err(error))
                if !answer.is_empty() && error.kind() == io::ErrorKind::ConnectionReset =>
            {
                break
            }
            Ok(Err(error)) => return Err(ExchangeError::from_io(error)),
        }
    }
    if answer.is_empty() {
        return Err(ExchangeError::NoAnswer);
    }
    Ok((answer, received_at))
}
