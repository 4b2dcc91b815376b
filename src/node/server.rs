//! The timestamp server: answer every client with our time, at once, in the
//! dialect it speaks, and never let a client hold us.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::protocol::{decode_timestamp, encode_timestamp, Dialect};

use super::clock::wall_now;

/// How long to listen for a client of unknown dialect that may speak first.
/// sdss and other client-first peers write right after `connect`, so their
/// greeting is usually here already; the wait is short enough to never matter
/// to server-first clients, and the time we send is read after it.
const GREETING_GRACE: Duration = Duration::from_millis(3);

/// How long to wait for what the client sends after our answer.
const AFTER_ANSWER_WAIT: Duration = Duration::from_millis(250);

/// How long writing our answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What happened on one served connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The client.
    pub peer: SocketAddr,
    /// The dialect we answered in.
    pub answered: Dialect,
    /// The dialect of the client's greeting, when it sent a readable one.
    pub client_dialect: Option<Dialect>,
}

/// Serves one client. `known` is the dialect the peer at that address is known
/// to speak. Never fails: a client that vanishes has simply been served.
pub async fn serve(mut stream: TcpStream, peer: SocketAddr, known: Option<Dialect>) -> Served {
    let _ = stream.set_nodelay(true);
    let mut greeting = [0u8; 64];
    let mut greeting_len = read_now(&stream, &mut greeting);
    if greeting_len == 0 && known.is_none() {
        if let Ok(Ok(n)) = timeout(GREETING_GRACE, stream.read(&mut greeting)).await {
            greeting_len = n;
        }
    }
    let greeted_in = (greeting_len > 0)
        .then(|| decode_timestamp(&greeting[..greeting_len], wall_now()).ok())
        .flatten()
        .map(|decoded| decoded.dialect);
    let answered = greeted_in.or(known).unwrap_or(Dialect::BinaryBe);
    let answer = encode_timestamp(wall_now(), answered);
    let _ = timeout(WRITE_TIMEOUT, stream.write_all(&answer)).await;

    // Close our side, then drain what the client still sends until it closes:
    // closing with unread data would reset the connection, and a reset can
    // destroy our answer before the client has read it.
    let _ = stream.shutdown().await;
    let mut client_dialect = greeted_in;
    let drained = timeout(AFTER_ANSWER_WAIT, async {
        let mut after = Vec::new();
        loop {
            match stream.read(&mut greeting).await {
                Ok(0) | Err(_) => break,
                Ok(n) if after.len() < greeting.len() => after.extend_from_slice(&greeting[..n]),
                Ok(_) => {}
            }
        }
        after
    })
    .await;
    if let (None, Ok(after)) = (client_dialect, drained) {
        client_dialect = decode_timestamp(&after, wall_now())
            .ok()
            .map(|decoded| decoded.dialect);
    }
    Served {
        peer,
        answered,
        client_dialect,
    }
}

/// Whatever the client has already sent, without waiting.
fn read_now(stream: &TcpStream, buffer: &mut [u8]) -> usize {
    stream.try_read(buffer).unwrap_or(0)
}
