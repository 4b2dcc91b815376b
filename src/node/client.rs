//! The timestamp client: connect to a peer's server, listen first, speak only
//! in a language the peer is known to read (PROTOCOL.md section 2, "A, the
//! client" and "Do no harm"), read its time.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::protocol::{
    decode_timestamp, encode_timestamp, DecodedTimestamp, Dialect, FirstSpeaker, Manner,
    TimestampError, SERVER_FIRST_WITHIN,
};

use super::clock::wall_now;
use super::event::RemovalCause;
use super::stamps::{handshake_rtt, keep_stamping, read_stamped, Arrival};

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
    /// The cause a `removed` event gives.
    pub fn cause(&self) -> RemovalCause {
        match self {
            ExchangeError::Refused => RemovalCause::Refused,
            ExchangeError::TimedOut(_) => RemovalCause::Timeout,
            ExchangeError::Unreachable(_) => RemovalCause::Unreachable,
            ExchangeError::Reset => RemovalCause::Reset,
            ExchangeError::NoAnswer => RemovalCause::NoAnswer,
            ExchangeError::Io(_) => RemovalCause::Io,
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
}

/// A completed exchange: the peer answered something.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// TCP handshake duration: the kernel's first RTT sample, else the time
    /// around `connect`.
    pub rtt: Duration,
    /// Our wall clock when the answer had fully arrived (`t2`).
    pub received_at: f64,
    /// Where `received_at` came from.
    pub arrival: Arrival,
    /// The peer's time, or why its bytes were not one.
    pub answer: Result<DecodedTimestamp, TimestampError>,
    /// The dialect we spoke, if we had to speak.
    pub spoke: Option<Dialect>,
}

impl Exchange {
    /// Who wrote first: the server, or we, after it stayed mute (or because it
    /// was known to read first).
    pub fn first(&self) -> FirstSpeaker {
        if self.spoke.is_some() {
            FirstSpeaker::Client
        } else {
            FirstSpeaker::Server
        }
    }

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

/// Measures one peer. Listens first: a server-first peer writes its time at
/// once. Speaks only when the peer is `known` to read first, or when its
/// server stays mute for [`SERVER_FIRST_WITHIN`]; then in the peer's own
/// dialect, ASCII when none is known (every client-first server seen reads
/// text, and a binary greeting kills some of them). A peer known to write
/// first is never spoken to.
pub async fn exchange(
    addr: SocketAddr,
    known: Manner,
    timeout: Duration,
) -> Result<Exchange, ExchangeError> {
    keep_stamping();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| ExchangeError::TimedOut(Phase::Connect))?
        .map_err(ExchangeError::from_io)?;
    let rtt = handshake_rtt(&stream).unwrap_or_else(|| started.elapsed());
    let _ = stream.set_nodelay(true);
    // The kernel stamps each segment as it arrives: `t2` then excludes how long
    // this task took to wake up, which is most of a LAN measurement's error.
    let _ = setsockopt(&stream, sockopt::ReceiveTimestampns, &true);

    let greeting = known.dialect.unwrap_or(Dialect::Ascii);
    let (spoke, read) = match known.first {
        Some(FirstSpeaker::Client) => {
            speak(&mut stream, greeting, deadline).await;
            (
                Some(greeting),
                read_answer(&mut stream, deadline, deadline).await,
            )
        }
        Some(FirstSpeaker::Server) => (None, read_answer(&mut stream, deadline, deadline).await),
        None => {
            let listen_until = deadline.min(Instant::now() + SERVER_FIRST_WITHIN);
            match read_answer(&mut stream, listen_until, deadline).await {
                Err(ExchangeError::TimedOut(Phase::Answer)) if listen_until < deadline => {
                    speak(&mut stream, greeting, deadline).await;
                    (
                        Some(greeting),
                        read_answer(&mut stream, deadline, deadline).await,
                    )
                }
                read => (None, read),
            }
        }
    };
    let (answer, received_at, arrival) = read?;
    Ok(Exchange {
        rtt,
        received_at,
        arrival,
        answer: decode_timestamp(&answer, received_at),
        spoke,
    })
}

/// Writes our time in `dialect`. A server that already answered and closed may
/// reset us here; its answer is still readable, so a failed write is no failure.
async fn speak(stream: &mut TcpStream, dialect: Dialect, deadline: Instant) {
    let greeting = encode_timestamp(wall_now(), dialect);
    let _ = timeout_at(deadline, stream.write_all(&greeting)).await;
}

/// Reads until EOF, a complete 8-byte time, or a pause after the first bytes;
/// the first bytes must come by `first_by`, the rest by `deadline`.
/// Returns the bytes and the wall-clock time the last of them arrived.
async fn read_answer(
    stream: &mut TcpStream,
    first_by: Instant,
    deadline: Instant,
) -> Result<(Vec<u8>, f64, Arrival), ExchangeError> {
    let mut answer = Vec::with_capacity(MAX_ANSWER);
    let mut chunk = [0u8; MAX_ANSWER];
    let (mut received_at, mut arrival) = (0.0, Arrival::Read);
    loop {
        let wait_until = if answer.is_empty() {
            first_by
        } else {
            deadline.min(Instant::now() + TAIL_WAIT)
        };
        match timeout_at(wait_until, read_stamped(stream, &mut chunk)).await {
            Err(_) if answer.is_empty() => return Err(ExchangeError::TimedOut(Phase::Answer)),
            Err(_) | Ok(Ok((0, _))) => break,
            Ok(Ok((n, stamp))) => {
                (received_at, arrival) = match stamp {
                    Some(at) => (at, Arrival::Kernel),
                    None => (wall_now(), Arrival::Read),
                };
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
    Ok((answer, received_at, arrival))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// How a scripted server on loopback behaves on its one connection.
    #[derive(Clone, Copy)]
    enum Script {
        /// Writes its time in this dialect at once, then reads until the client closes.
        WritesFirst(Dialect),
        /// Reads first; answers in ASCII if what came was ASCII.
        ReadsText,
        /// Never writes.
        Mute,
    }

    /// Serves one connection; returns the address and, when it ends, what the
    /// client wrote and how long after accepting its first bytes came.
    async fn scripted(
        script: Script,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<(Vec<u8>, Option<Duration>)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let accepted = Instant::now();
            if let Script::WritesFirst(dialect) = script {
                stream
                    .write_all(&encode_timestamp(wall_now(), dialect))
                    .await
                    .unwrap();
            }
            let mut got = Vec::new();
            let mut first_at = None;
            let mut buffer = [0u8; 64];
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer)).await
            {
                if n == 0 {
                    break;
                }
                first_at.get_or_insert(accepted.elapsed());
                got.extend_from_slice(&buffer[..n]);
                if matches!(script, Script::ReadsText) {
                    if std::str::from_utf8(&got).is_ok_and(|t| t.parse::<f64>().is_ok()) {
                        let _ = stream
                            .write_all(&encode_timestamp(wall_now(), Dialect::Ascii))
                            .await;
                    }
                    break;
                }
            }
            (got, first_at)
        });
        (addr, task)
    }

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_server_that_writes_first_is_never_spoken_to() {
        for dialect in [Dialect::BinaryBe, Dialect::Ascii, Dialect::Float32] {
            let (addr, server) = scripted(Script::WritesFirst(dialect)).await;
            let measured = exchange(addr, Manner::default(), TIMEOUT).await.unwrap();
            let (got, _) = server.await.unwrap();
            assert!(got.is_empty(), "{dialect}: the client wrote {got:?}");
            assert_eq!(
                (measured.spoke, measured.first()),
                (None, FirstSpeaker::Server)
            );
        }
    }

    #[tokio::test]
    async fn an_exchange_takes_the_answers_arrival_from_the_kernel() {
        // Stamping comes on from deferred kernel work: wait until it is on (the
        // first exchange of a process may precede it), then every one is stamped.
        let on = Instant::now() + Duration::from_secs(5);
        loop {
            let (addr, server) = scripted(Script::WritesFirst(Dialect::BinaryBe)).await;
            let measured = exchange(addr, Manner::default(), TIMEOUT).await.unwrap();
            drop(server.await.unwrap());
            if measured.arrival == Arrival::Kernel {
                break;
            }
            assert!(Instant::now() < on, "never stamped: {measured:?}");
        }
        for dialect in [Dialect::BinaryBe, Dialect::Ascii, Dialect::BinaryBe] {
            let (addr, server) = scripted(Script::WritesFirst(dialect)).await;
            let measured = exchange(addr, Manner::default(), TIMEOUT).await.unwrap();
            drop(server.await.unwrap());
            assert_eq!(measured.arrival, Arrival::Kernel, "{dialect}: {measured:?}");
            assert!(measured.delay().unwrap().abs() < 0.030, "{measured:?}");
            assert!(measured.rtt < Duration::from_millis(30), "{measured:?}");
        }
    }

    #[tokio::test]
    async fn a_mute_server_of_unknown_manner_hears_text_after_the_listen_window() {
        let (addr, server) = scripted(Script::ReadsText).await;
        let measured = exchange(addr, Manner::default(), TIMEOUT).await.unwrap();
        let (got, first_at) = server.await.unwrap();
        assert!(first_at.unwrap() >= SERVER_FIRST_WITHIN, "{first_at:?}");
        assert_eq!(
            decode_timestamp(&got, wall_now()).unwrap().dialect,
            Dialect::Ascii
        );
        assert_eq!(
            (measured.spoke, measured.first()),
            (Some(Dialect::Ascii), FirstSpeaker::Client)
        );
        assert!(measured.delay().unwrap().abs() < 0.030, "{measured:?}");
    }

    #[tokio::test]
    async fn a_server_known_to_read_first_is_spoken_to_at_once_in_its_dialect() {
        let (addr, server) = scripted(Script::Mute).await;
        let known = Manner {
            dialect: Some(Dialect::Float32),
            first: Some(FirstSpeaker::Client),
        };
        let outcome = exchange(addr, known, Duration::from_millis(600)).await;
        let (got, first_at) = server.await.unwrap();
        assert!(matches!(
            outcome,
            Err(ExchangeError::TimedOut(Phase::Answer))
        ));
        assert_eq!(got.len(), 4, "a 4-byte float: {got:?}");
        assert!(first_at.unwrap() < SERVER_FIRST_WITHIN, "{first_at:?}");
    }

    #[tokio::test]
    async fn a_server_known_to_write_first_is_never_spoken_to_even_when_mute() {
        let (addr, server) = scripted(Script::Mute).await;
        let known = Manner {
            dialect: Some(Dialect::BinaryBe),
            first: Some(FirstSpeaker::Server),
        };
        let outcome = exchange(addr, known, Duration::from_millis(600)).await;
        let (got, _) = server.await.unwrap();
        assert!(matches!(
            outcome,
            Err(ExchangeError::TimedOut(Phase::Answer))
        ));
        assert!(got.is_empty(), "{got:?}");
    }
}
