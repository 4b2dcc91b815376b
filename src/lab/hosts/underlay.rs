//! What the network between the hosts adds to a cross-host pair: each agent
//! answers UDP probes on its underlay address while the lab comes up, and
//! measures the round trip to every other host; half the median is the
//! one-way delay added to that host pair's expected delays.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// The UDP port of the probes (beside VXLAN's 4789; both must pass between hosts).
pub const PROBE_PORT: u16 = 4788;

/// Probes per peer; the median of their round trips is kept.
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
        let _ = socket.send_to(&buffer[..16], from).await;
    }
}

/// Half the median round trip to each peer, or `None` for a peer that never answered.
pub async fn measure(
    local: Ipv4Addr,
    peers: &[Ipv4Addr],
) -> io::Result<Vec<(Ipv4Addr, Option<Duration>)>> {
    let socket = UdpSocket::bind(SocketAddrV4::new(local, 0)).await?;
    let mut out = Vec::with_capacity(peers.len());
    let mut sequence = 0u64;
    for peer in peers {
        let to = SocketAddrV4::new(*peer, PROBE_PORT);
        let mut rtts = Vec::with_capacity(PROBES);
        let give_up = Instant::now() + PEER_WAIT;
        while rtts.len() < PROBES && (Instant::now() < give_up || !rtts.is_empty()) {
            sequence += 1;
            if let Some(rtt) = probe(&socket, to, sequence).await {
                rtts.push(rtt);
            } else if !rtts.is_empty() && Instant::now() >= give_up {
                break;
            }
        }
        rtts.sort();
        out.push((*peer, rtts.get(rtts.len() / 2).map(|rtt| *rtt / 2)));
    }
    Ok(out)
}

/// One probe's round trip, if its own answer came back in time.
async fn probe(socket: &UdpSocket, to: SocketAddrV4, sequence: u64) -> Option<Duration> {
    let mut ask = [0u8; 16];
    ask[..8].copy_from_slice(ASK);
    ask[8..].copy_from_slice(&sequence.to_be_bytes());
    let sent = Instant::now();
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
            && len == 16
            && &buffer[..8] == ANSWER
            && buffer[8..16] == ask[8..]
        {
            return Some(sent.elapsed());
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
        let delay = measured[0].1.expect("loopback answers");
        assert!(delay < Duration::from_millis(50), "{delay:?}");
        assert_eq!(measured[1], (silent, None));
    }
}
