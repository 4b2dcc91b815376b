//! What the network between the hosts adds to a cross-host pair: each agent
//! answers UDP probes on its underlay address while the lab comes up, and
//! measures the round trip to every other host; half the shortest is the
//! one-way delay added to that host pair's expected delays.
//!
//! A node measures a delay with two clocks (the peer's send time, its own
//! arrival time), so across hosts the measurement also holds the difference
//! of the hosts' clocks. The answer carries the answering host's time, and
//! the probe's midpoint gives that difference (NTP's estimate), added to the
//! expected delays too: calibrated, and reported, rather than blamed on the nodes.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

/// The UDP port of the probes (beside VXLAN's 4789; both must pass between hosts).
pub const PROBE_PORT: u16 = 4788;

/// Probes per peer; the one with the shortest round trip is kept.
const PROBES: usize = 21;

/// How long one probe waits for its answer.
const PROBE_WAIT: Duration = Duration::from_millis(200);

/// How long a peer may stay silent before it is reported unmeasured.
const PEER_WAIT: Duration = Duration::from_secs(3);

const ASK: &[u8; 8] = b"SDSSPING";
const ANSWER: &[u8; 8] = b"SDSSPONG";

/// Binds the answering socket; [`answer`] serves it.
pub async fn bind(local: Ipv4Addr) -> io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddrV4::new(local, PROBE_PORT)).await
}

/// Answers probes from `peers` only (anyone else is ignored, so the socket
/// cannot be used to reflect traffic elsewhere) until `cancel`.
pub async fn answer(socket: UdpSocket, peers: Vec<Ipv4Addr>, cancel: CancellationToken) {
    let mut buffer = [0u8; 64];
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let Ok((len, SocketAddr::V4(from))) = received else {
            continue;
        };
        if len != 16 || &buffer[..8] != ASK || !peers.contains(from.ip()) {
            continue;
        }
        buffer[..8].copy_from_slice(ANSWER);
        buffer[16..24].copy_from_slice(&wall_now().to_be_bytes());
        let _ = socket.send_to(&buffer[..24], from).await;
    }
}

/// What one host learnt of a peer, from its probe with the shortest round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Half the round trip.
    pub delay: Duration,
    /// The peer's clock minus ours, seconds: its time in the answer minus
    /// the midpoint of our send and receive times.
    pub clock: f64,
}

/// Each peer measured, or `None` for a peer that never answered.
pub async fn measure(
    local: Ipv4Addr,
    peers: &[Ipv4Addr],
) -> io::Result<Vec<(Ipv4Addr, Option<Measured>)>> {
    let socket = UdpSocket::bind(SocketAddrV4::new(local, 0)).await?;
    let mut out = Vec::with_capacity(peers.len());
    let mut sequence = 0u64;
    for peer in peers {
        let to = SocketAddrV4::new(*peer, PROBE_PORT);
        // NTP's clock filter: the sample with the shortest round trip waited
        // least in queues and wake-ups, so its delay and clock are the truest.
        let mut best: Option<(Duration, f64)> = None;
        let mut answered = 0;
        let give_up = Instant::now() + PEER_WAIT;
        while answered < PROBES && (Instant::now() < give_up || answered > 0) {
            sequence += 1;
            if let Some((rtt, clock)) = probe(&socket, to, sequence).await {
                answered += 1;
                if best.is_none_or(|(least, _)| rtt < least) {
                    best = Some((rtt, clock));
                }
            } else if answered > 0 && Instant::now() >= give_up {
                break;
            }
        }
        let measured = best.map(|(rtt, clock)| Measured {
            delay: rtt / 2,
            clock,
        });
        out.push((*peer, measured));
    }
    Ok(out)
}

/// One probe's round trip and clock difference, if its own answer came back in time.
async fn probe(socket: &UdpSocket, to: SocketAddrV4, sequence: u64) -> Option<(Duration, f64)> {
    let mut ask = [0u8; 16];
    ask[..8].copy_from_slice(ASK);
    ask[8..].copy_from_slice(&sequence.to_be_bytes());
    let (sent, sent_wall) = (Instant::now(), wall_now());
    socket.send_to(&ask, to).await.ok()?;
    let deadline = sent + PROBE_WAIT;
    let mut buffer = [0u8; 64];
    loop {
        let wait = deadline.checked_duration_since(Instant::now())?;
        let (len, from) = tokio::time::timeout(wait, socket.recv_from(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if from == SocketAddr::V4(to)
            && len == 24
            && &buffer[..8] == ANSWER
            && buffer[8..16] == ask[8..]
        {
            let rtt = sent.elapsed();
            let mut theirs = [0u8; 8];
            theirs.copy_from_slice(&buffer[16..24]);
            let theirs = f64::from_be_bytes(theirs);
            return theirs
                .is_finite()
                .then(|| (rtt, theirs - (sent_wall + rtt.as_secs_f64() / 2.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_on_loopback_is_measured_and_a_silent_one_is_not() {
        let here = Ipv4Addr::LOCALHOST;
        let socket = match bind(here).await {
            Ok(socket) => socket,
            // Another test or program holds the port: nothing to learn here.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return,
            Err(e) => panic!("bind: {e}"),
        };
        let cancel = CancellationToken::new();
        tokio::spawn(answer(socket, vec![here], cancel.clone()));
        let silent = Ipv4Addr::new(127, 0, 0, 9);
        let measured = measure(here, &[here, silent]).await.expect("measure");
        cancel.cancel();
        assert_eq!(measured[0].0, here);
        let seen = measured[0].1.expect("loopback answers");
        assert!(seen.delay < Duration::from_millis(50), "{seen:?}");
        // One clock: the difference is within the round trip.
        assert!(seen.clock.abs() < 0.05, "{seen:?}");
        assert_eq!(measured[1], (silent, None));
    }
}
