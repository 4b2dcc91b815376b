//! The timestamp server: answer every client with our time, promptly, in the
//! dialect it reads (PROTOCOL.md section 2, "Do no harm"), and never let a
//! client hold us.
//!
//! Full service (listening for a greeting, holding for a hint, draining what
//! the client sends after the answer) costs a task and a few hundred
//! milliseconds; its [`Slots`] are limited per source address. A client beyond
//! them is still answered, at once and without waiting for anything, so a
//! flood of connections from one address never costs another address its answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};

use crate::protocol::{dialect_of, Dialect};

use super::clock::wall_now;
use super::stamps::{answer_with_fin, Answered};

/// How long to listen for a client that may speak first: what it sends tells
/// its dialect better than anything known of its address (several
/// implementations may share one). Client-first peers write right after
/// `connect`, so their greeting is usually here already; the time we send is
/// read after the wait, so the wait costs the client nothing in what it measures.
const GREETING_GRACE: Duration = Duration::from_millis(10);

/// The longest a client waits for its answer after our own exchange with its
/// address began, for what that exchange reveals of the dialect it reads. Well
/// under an exchange timeout, and under [`crate::protocol::SERVER_FIRST_WITHIN`]:
/// a client that listens first still hears us as a server that writes first.
pub const HOLD: Duration = Duration::from_millis(100);

/// Most bytes of a greeting read: no timestamp is longer.
const MAX_GREETING: usize = 64;

/// How long to wait for what the client sends after our answer.
const AFTER_ANSWER_WAIT: Duration = Duration::from_millis(250);

/// How long writing our answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Clients in full service at once, in all.
pub const MAX_CLIENTS: usize = 256;

/// Clients from one address in full service at once: far more than one real
/// peer ever opens (one exchange at a time), a small share of [`MAX_CLIENTS`].
pub const MAX_CLIENTS_PER_ADDRESS: usize = 16;

/// The full-service slots, counted per source address (which TCP's handshake
/// makes costly to forge).
#[derive(Debug)]
pub struct Slots {
    total: usize,
    per_address: usize,
    taken: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot taken; it is given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    /// `total` slots, at most `per_address` of them for one address.
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Slots {
            total,
            per_address,
            taken: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a client at `ip`, when both its address and the total have room.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let in_use: usize = taken.values().sum();
        let at_ip = taken.entry(ip).or_insert(0);
        if *at_ip >= self.per_address || in_use >= self.total {
            if *at_ip == 0 {
                taken.remove(&ip);
            }
            return None;
        }
        *at_ip += 1;
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = taken.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                taken.remove(&self.ip);
            }
        }
    }
}

/// Answers a client that gets no slot: our time in the dialect its address is
/// known to read (else the assignment's), written without waiting, with our
/// FIN, then closed. A fresh socket's send buffer always has room for 8 bytes.
pub fn answer_at_once(stream: TcpStream, hint: ClientHint) {
    let dialect = match hint {
        ClientHint::Known(dialect) => dialect,
        ClientHint::Pending { .. } | ClientHint::Unknown => Dialect::BinaryBe,
    };
    let _ = answer_with_fin(stream, dialect);
}

/// What the node knows of the dialect a connecting client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientHint {
    /// The dialect the peer at that address speaks.
    Known(Dialect),
    /// Something about to happen will tell (an exchange with that address is
    /// in flight, or the node has just started and not heard it yet): worth
    /// holding the answer until then, never later.
    Pending {
        /// When to stop waiting.
        until: std::time::Instant,
    },
    /// Nothing: the assignment's `!d` unless the client speaks first.
    Unknown,
}

/// What happened on one served connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The client.
    pub peer: SocketAddr,
    /// The dialect we answered in.
    pub answered: Dialect,
    /// The dialect of what the client sent, when that was a time.
    pub client_dialect: Option<Dialect>,
    /// Whether it sent that before our answer (it speaks first).
    pub client_spoke_first: bool,
    /// How long after accepting we answered.
    pub answered_after: Duration,
}

/// Serves one client. `hint` tells what the node knows of the client's
/// address; it is asked again whenever `learnt` changes (an exchange ended).
/// Never fails: a client that vanishes has simply been served.
pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    hint: impl Fn() -> ClientHint,
    mut learnt: watch::Receiver<()>,
) -> Served {
    let accepted = Instant::now();
    let _ = stream.set_nodelay(true);
    let mut greeting = Vec::with_capacity(MAX_GREETING);
    let mut buffer = [0u8; MAX_GREETING];
    let mut client_closed = false;
    let mut learning = true;
    let (answered, greeted_in) = loop {
        learnt.borrow_and_update();
        if let Some(dialect) = dialect_of(&greeting, wall_now()) {
            break (dialect, Some(dialect));
        }
        let (wait_until, fallback) = match hint() {
            ClientHint::Known(dialect) => (accepted + GREETING_GRACE, dialect),
            ClientHint::Pending { until } => (
                Instant::from_std(until).max(accepted + GREETING_GRACE),
                Dialect::BinaryBe,
            ),
            ClientHint::Unknown => (accepted + GREETING_GRACE, Dialect::BinaryBe),
        };
        if client_closed || greeting.len() >= MAX_GREETING || Instant::now() >= wait_until {
            break (fallback, None);
        }
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => client_closed = true,
                Ok(n) => {
                    let room = MAX_GREETING - greeting.len();
                    greeting.extend_from_slice(&buffer[..n.min(room)]);
                }
            },
            changed = learnt.changed(), if learning => learning = changed.is_ok(),
            () = sleep_until(wait_until) => {}
        }
    };
    // `T_B` is read as it is sent, with our FIN (see `answer_with_fin`):
    // however long we held, the client measures only the way back. Closing our
    // side first matters: closing with unread data would reset the connection,
    // and a reset can destroy our answer before the client has read it.
    let answered_after = accepted.elapsed();
    let Answered {
        stream,
        sent,
        answer,
    } = answer_with_fin(stream, answered);
    let Some(mut stream) = stream else {
        return Served {
            peer,
            answered,
            client_dialect: greeted_in,
            client_spoke_first: greeted_in.is_some(),
            answered_after,
        };
    };
    if !matches!(sent, Ok(n) if n == answer.len()) {
        // The send buffer was full (never seen with one time) or the client is
        // gone: the rest the slow way, then the FIN.
        let rest = &answer[sent.unwrap_or(0)..];
        let _ = timeout(WRITE_TIMEOUT, stream.write_all(rest)).await;
        let _ = stream.shutdown().await;
    }

    // Drain what the client still sends until it closes. A client sends a time
    // at most: past that many bytes it is reset, its answer long written.
    let mut after = Vec::with_capacity(MAX_GREETING);
    let _ = timeout(AFTER_ANSWER_WAIT, async {
        while after.len() < MAX_GREETING {
            match stream.read(&mut buffer[..MAX_GREETING - after.len()]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => after.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    let client_dialect = greeted_in.or_else(|| dialect_of(&after, wall_now()));
    Served {
        peer,
        answered,
        client_dialect,
        client_spoke_first: greeted_in.is_some(),
        answered_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::client::{exchange, Exchange};
    use crate::node::stamps::tcp_info;
    use crate::protocol::{decode_timestamp, encode_timestamp, FirstSpeaker, Manner};
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    /// A server on loopback that serves one client with `hint`; returns its
    /// address and the outcome.
    async fn one_client(
        hint: Arc<Mutex<ClientHint>>,
        learnt: watch::Receiver<()>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Served>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            serve(stream, peer, move || *hint.lock().unwrap(), learnt).await
        });
        (addr, served)
    }

    fn pending_for(hold: Duration) -> ClientHint {
        ClientHint::Pending {
            until: std::time::Instant::now() + hold,
        }
    }

    /// Connects, writes `greeting`, reads the answer until the server closes.
    async fn greet(addr: SocketAddr, greeting: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(greeting).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_held_answer_does_not_change_what_the_client_measures() {
        let hint = Arc::new(Mutex::new(pending_for(HOLD)));
        let (learn, learnt) = watch::channel(());
        let (addr, served) = one_client(hint.clone(), learnt).await;
        let teacher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            *hint.lock().unwrap() = ClientHint::Known(Dialect::Ascii);
            learn.send_replace(());
            learn
        });
        let measured: Exchange = exchange(addr, Manner::default(), Duration::from_secs(2))
            .await
            .unwrap();
        let served = served.await.unwrap();
        drop(teacher.await);
        assert!(
            served.answered_after >= Duration::from_millis(60),
            "{served:?}"
        );
        assert_eq!(
            served.answered,
            Dialect::Ascii,
            "what the exchange revealed"
        );
        assert_eq!(
            measured.first(),
            FirstSpeaker::Server,
            "heard as server-first"
        );
        assert_eq!(measured.spoke, None);
        let delay = measured.delay().unwrap();
        // Loopback takes microseconds; 30 ms leaves a loaded machine room and
        // stays well under the 60 ms held.
        assert!(
            (-0.001..0.030).contains(&delay),
            "held {:?}, yet the client measured {:.3} ms: only the way back counts",
            served.answered_after,
            delay * 1e3
        );
    }

    #[tokio::test]
    async fn the_answer_and_our_fin_reach_the_client_in_one_segment() {
        // Held until we have counted the segments in so far (the SYN-ACK).
        let hint = Arc::new(Mutex::new(pending_for(Duration::from_secs(5))));
        let (learn, learnt) = watch::channel(());
        let (addr, served) = one_client(hint.clone(), learnt).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let before = tcp_info(&stream).unwrap().tcpi_segs_in;
        *hint.lock().unwrap() = ClientHint::Known(Dialect::BinaryBe);
        learn.send_replace(());
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let after = tcp_info(&stream).unwrap().tcpi_segs_in;
        drop(stream);
        assert_eq!(served.await.unwrap().answered, Dialect::BinaryBe);
        assert!(decode_timestamp(&answer, wall_now()).is_ok(), "{answer:?}");
        assert_eq!(
            after - before,
            1,
            "the time and the FIN came in {} segments",
            after - before
        );
    }

    #[tokio::test]
    async fn a_client_without_a_slot_gets_our_time_and_fin_in_one_segment() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            answer_at_once(stream, ClientHint::Known(Dialect::Ascii));
        });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        server.await.unwrap();
        assert_eq!(dialect_of(&answer, wall_now()), Some(Dialect::Ascii));
        // The SYN-ACK, then one segment with the time and the FIN.
        assert_eq!(tcp_info(&stream).unwrap().tcpi_segs_in, 2);
    }

    #[tokio::test]
    async fn a_held_client_that_nothing_teaches_gets_the_assignment_encoding_at_the_bound() {
        // The bound counts from when the hint was made, before the accept:
        // the answer comes no sooner, and well before twice the hold.
        let made = std::time::Instant::now();
        let hint = Arc::new(Mutex::new(pending_for(HOLD)));
        let (_learn, learnt) = watch::channel(());
        let (addr, served) = one_client(hint, learnt).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answered_at = made.elapsed();
        let served = served.await.unwrap();
        assert_eq!(answer.len(), 8);
        assert_eq!(served.answered, Dialect::BinaryBe);
        assert!(answered_at >= HOLD, "{answered_at:?} {served:?}");
        assert!(served.answered_after < HOLD * 2, "{served:?}");
    }

    #[tokio::test]
    async fn a_client_that_speaks_first_is_answered_in_its_own_dialect() {
        for dialect in [Dialect::Float32, Dialect::Ascii, Dialect::BinaryLe] {
            let hint = Arc::new(Mutex::new(ClientHint::Known(Dialect::BinaryBe)));
            let (_learn, learnt) = watch::channel(());
            let (addr, served) = one_client(hint, learnt).await;
            let answer = greet(addr, &encode_timestamp(wall_now(), dialect)).await;
            let served = served.await.unwrap();
            assert_eq!(served.answered, dialect);
            assert_eq!(served.client_dialect, Some(dialect));
            assert!(served.client_spoke_first);
            assert_eq!(dialect_of(&answer, wall_now()), Some(dialect), "{answer:?}");
        }
    }

    #[tokio::test]
    async fn a_client_that_writes_after_the_answer_is_recorded_but_not_as_first() {
        let hint = Arc::new(Mutex::new(ClientHint::Unknown));
        let (_learn, learnt) = watch::channel(());
        let (addr, served) = one_client(hint, learnt).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answer = [0u8; 8];
        stream.read_exact(&mut answer).await.unwrap();
        stream
            .write_all(&encode_timestamp(wall_now(), Dialect::Float32))
            .await
            .unwrap();
        drop(stream);
        let served = served.await.unwrap();
        assert!(decode_timestamp(&answer, wall_now()).is_ok());
        assert_eq!(served.answered, Dialect::BinaryBe);
        assert_eq!(served.client_dialect, Some(Dialect::Float32));
        assert!(!served.client_spoke_first);
    }
}
