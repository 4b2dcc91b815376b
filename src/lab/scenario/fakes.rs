//! The grading probe's own peers and noise, played when the grading timeline
//! says: the silent peer, the joiner, the malformed burst.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::probe_log::{lock, now, FakePeer, ProbeSpec, Shared, SILENT_HOLD};
use crate::protocol::{encode_timestamp, Announcement, Dialect, NodeId};

/// One of the probe's own peers: from now on, announces itself every second and
/// serves (the joiner) or holds (the silent peer) every connection.
pub(super) async fn fake_peer(
    kind: FakePeer,
    spec: ProbeSpec,
    log: Shared,
    stop: CancellationToken,
) {
    let setup = async {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
        let port = listener.local_addr()?.port();
        let sender = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        sender.set_broadcast(true)?;
        sender.set_nonblocking(true)?;
        io::Result::Ok((listener, port, UdpSocket::from_std(sender.into())?))
    };
    let (listener, port, sender) = match setup.await {
        Ok(parts) => parts,
        Err(e) => {
            lock(&log).errors.push(format!("{kind:?} peer: {e}"));
            return;
        }
    };
    {
        let mut log = lock(&log);
        match kind {
            FakePeer::Silent => log.silent_at = Some(now()),
            FakePeer::Joiner => log.joined_at = Some(now()),
        }
    }
    let message = Announcement {
        id: NodeId::seeded(&mut fastrand::Rng::with_seed(
            u64::from(spec.seed) << 8 | kind as u64,
        )),
        port,
    }
    .encode();
    let destination = SocketAddrV4::new(Ipv4Addr::BROADCAST, spec.broadcast_port);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The silent peer's connections: each with its client and when it opened.
    let mut held = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = sender.send_to(&message, destination).await {
                    lock(&log).errors.push(format!("{kind:?} peer announcing: {e}"));
                } else if kind == FakePeer::Joiner {
                    lock(&log).joiner_broadcasts.push(now());
                }
            }
            accepted = listener.accept() => {
                let Ok((mut stream, SocketAddr::V4(from))) = accepted else { continue };
                let at = now();
                lock(&log).accepted.push((kind, *from.ip(), at));
                match kind {
                    FakePeer::Silent => {
                        // Off the runtime: only read once, at the end.
                        if let (true, Ok(stream)) = (held.len() < SILENT_HOLD, stream.into_std()) {
                            held.push((stream, *from.ip(), at));
                        }
                    }
                    FakePeer::Joiner => {
                        tokio::spawn(async move {
                            let _ = stream.write_all(&encode_timestamp(now(), Dialect::BinaryBe)).await;
                            let mut sink = [0u8; 64];
                            let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink)).await;
                        });
                    }
                }
            }
        }
    }
    let open: Vec<_> = held
        .into_iter()
        .filter(|(stream, _, _)| still_open(stream))
        .map(|(_, from, at)| (from, at))
        .collect();
    lock(&log).silent_open.extend(open);
}

/// Whether the client of a held connection has not closed it: a read finds
/// no end of stream (what it sent, if anything, is read and dropped).
fn still_open(mut stream: &std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut sink = [0u8; 512];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Datagrams real peers send by mistake or that break naive parsers.
pub fn malformed_datagrams() -> Vec<Vec<u8>> {
    let mut list: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        b"abcdefgh ON".to_vec(),
        b"abcdefgh ON port".to_vec(),
        b"abcdefgh ON 0".to_vec(),
        b"abcdefgh ON 99999".to_vec(),
        b"abcdefgh ON -1".to_vec(),
        b"abcdefgh on 4000".to_vec(),
        b"abcdefgh ON 4000 extra".to_vec(),
        b"ON ON ON".to_vec(),
        b"\xff\xfe\xfd\xfc ON 4000".to_vec(),
        b"\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(),
        b"abcdefgh  ON  4000".to_vec(),
    ];
    list.push(vec![b'A'; 1400]);
    list
}

pub(super) async fn burst(spec: ProbeSpec, log: Shared) {
    let sender = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
        s.set_broadcast(true)?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s.into())
    });
    let sender = match sender {
        Ok(s) => s,
        Err(e) => {
            lock(&log).errors.push(format!("malformed burst: {e}"));
            return;
        }
    };
    lock(&log).burst_at = Some(now());
    for _ in 0..3 {
        for datagram in malformed_datagrams() {
            for address in [Ipv4Addr::BROADCAST, spec.directed] {
                let to = SocketAddrV4::new(address, spec.broadcast_port);
                if let Err(e) = sender.send_to(&datagram, to).await {
                    lock(&log)
                        .errors
                        .push(format!("malformed burst to {to}: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_connection_is_open_until_its_client_closes_it() {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (held, _) = listener.accept().unwrap();
        held.set_nonblocking(true).unwrap();
        assert!(still_open(&held));
        // What the client wrote is read and dropped: it still waits.
        std::io::Write::write_all(&mut client, b"1800000000.0").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(still_open(&held));
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!still_open(&held));
    }
}
