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
    let mut look = tokio::time::interval(LOOK_EVERY);
    // The silent peer's connections: each with its client and when it opened.
    let mut held = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = look.tick(), if kind == FakePeer::Silent => look_at(&mut held, &log),
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
    // The silent peer's last look: those still open at the end.
    if kind == FakePeer::Silent {
        look_at(&mut held, &log);
    }
}

/// How often the silent peer looks whether its clients closed what it holds.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The silent peer's look at the connections it holds: those their clients
/// closed are let go (and logged, with when), the others are logged open.
fn look_at(held: &mut Vec<(std::net::TcpStream, Ipv4Addr, f64)>, log: &Shared) {
    let at = now();
    let mut closed = Vec::new();
    held.retain(|(stream, from, opened)| {
        let open = still_open(stream);
        if !open {
            closed.push((*from, *opened, at));
        }
        open
    });
    let mut log = lock(log);
    log.silent_closed.extend(closed);
    log.silent_open = held.iter().map(|(_, from, at)| (*from, *at)).collect();
}

/// Once the run's duration is over (`end`, Unix seconds), watches each
/// connection of a graded program to the silent peer still open then and
/// younger than `spec.stuck_open`, until its client closes it or it is that
/// old, at most until `start + spec.longest`, or until `stop`: a client with a
/// long but bounded wait gives up on it, a stuck one never does (the lab's
/// sdss nodes give up after 2 s: theirs are not waited for). Returns by how
/// much the run was extended, if at all.
pub(super) async fn watch_open(
    spec: &ProbeSpec,
    start: f64,
    end: f64,
    log: &Shared,
    stop: &CancellationToken,
) -> Option<f64> {
    let old = spec.stuck_open.as_secs_f64();
    let watched: Vec<(Ipv4Addr, f64)> = lock(log)
        .silent_open
        .iter()
        .filter(|(from, at)| now() - at < old && spec.targets.iter().any(|t| t.address == *from))
        .copied()
        .collect();
    let until = watched
        .iter()
        .map(|(_, at)| at + old)
        .fold(end, f64::max)
        .min(start + spec.longest.as_secs_f64());
    if watched.is_empty() {
        return None;
    }
    while now() < until {
        // The silent peer's look tells which are still open.
        let waiting = {
            let log = lock(log);
            watched
                .iter()
                .any(|c| log.silent_open.contains(c) && now() - c.1 < old)
        };
        if !waiting {
            break;
        }
        let left = Duration::from_secs_f64((until - now()).max(0.0));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(LOOK_EVERY.min(left)) => {}
        }
    }
    Some((now() - end).max(0.0))
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
