//! Every TCP connection a graded program opens, seen as it happens: a packet
//! socket in the program's network namespace records each SYN (loopback
//! included), so a connection that lives a few microseconds is not missed
//! between two readings of `/proc` (250 ms apart). The grading probe asks it
//! which of them went from the program to itself.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::probe_log::{now, ProbeLog, Target};
use crate::lab::builder::netns::spawn_in;

/// Most SYNs kept per program: a flood of them cannot grow the record.
const MAX_SYNS: usize = 4096;

/// How long one read waits before it looks at the stop token.
const POLL: Duration = Duration::from_millis(50);

/// One connection attempt seen in the program's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Syn {
    /// When it was read (Unix seconds, to the millisecond).
    pub at_ms: u64,
    /// Its source address and port.
    pub from: (Ipv4Addr, u16),
    /// Its destination address and port.
    pub to: (Ipv4Addr, u16),
}

impl Syn {
    /// Whether both ends are the namespace's own: its lab address or loopback.
    pub fn is_to_itself(&self, address: Ipv4Addr) -> bool {
        let own = |a: Ipv4Addr| a == address || a.is_loopback();
        own(self.from.0) && own(self.to.0)
    }
}

/// Starts watching the namespace `netns` for SYNs until `stop`; the thread
/// returns them, each once (a SYN seen twice on loopback, or sent again,
/// counts once).
pub fn watch(
    netns: &File,
    stop: CancellationToken,
) -> io::Result<JoinHandle<io::Result<Vec<Syn>>>> {
    spawn_in(netns, "sdss-syn-watch", move || {
        let ip = i32::from((libc::ETH_P_IP as u16).to_be());
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(ip)))?;
        socket.set_read_timeout(Some(POLL))?;
        // Headers are all a SYN is read for: the rest of a datagram is dropped.
        let mut buf = [0u8; 96];
        let mut seen = HashSet::new();
        let mut syns = Vec::new();
        while !stop.is_cancelled() {
            let Ok(len) = (&socket).read(&mut buf) else {
                continue;
            };
            let Some((syn, isn)) = parse_syn(&buf[..len.min(buf.len())]) else {
                continue;
            };
            if syns.len() < MAX_SYNS && seen.insert((syn.from, syn.to, isn)) {
                syns.push(Syn {
                    at_ms: (now() * 1e3) as u64,
                    ..syn
                });
            }
        }
        Ok(syns)
    })
}

/// Adds to `log` each connection `target` opened to one of its own
/// listening ports, as its SYN showed it (by the connection's source port,
/// as the readings of `/proc` count them).
pub(super) fn count_self_connections(log: &mut ProbeLog, target: &Target, syns: &[Syn]) {
    let listening = log.listening.get(&target.name).cloned().unwrap_or_default();
    let own = syns
        .iter()
        .filter(|s| s.is_to_itself(target.address) && listening.contains(&s.to.1))
        .map(|s| s.from.1);
    log.self_connections
        .entry(target.name.clone())
        .or_default()
        .extend(own);
}

/// An IPv4 TCP segment with SYN set and ACK not (an opening), and its
/// initial sequence number; anything else is `None`.
fn parse_syn(packet: &[u8]) -> Option<(Syn, u32)> {
    let version_ihl = *packet.first()?;
    if version_ihl >> 4 != 4 || packet.get(9) != Some(&6) {
        return None;
    }
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    let address = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let tcp = packet.get(ihl..)?;
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(tcp.get(at..at + 2)?.try_into().ok()?))
    };
    let flags = *tcp.get(13)?;
    if flags & 0x02 == 0 || flags & 0x10 != 0 {
        return None;
    }
    let isn = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    Some((
        Syn {
            at_ms: 0,
            from: (address(12)?, port(0)?),
            to: (address(16)?, port(2)?),
        },
        isn,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header (20 bytes) and a TCP header with `flags`.
    fn segment(from: [u8; 4], to: [u8; 4], flags: u8) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&from);
        p.extend_from_slice(&to);
        p.extend_from_slice(&[
            0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, flags, 0, 0, 0, 0, 0, 0,
        ]);
        p
    }

    #[test]
    fn an_opening_is_a_syn_without_ack_and_its_ends_are_read() {
        let (syn, isn) = parse_syn(&segment([10, 0, 0, 2], [10, 0, 0, 2], 0x02)).unwrap();
        assert_eq!(syn.from, (Ipv4Addr::new(10, 0, 0, 2), 40000));
        assert_eq!(syn.to, (Ipv4Addr::new(10, 0, 0, 2), 8080));
        assert_eq!(isn, 7);
        assert!(syn.is_to_itself(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(
            parse_syn(&segment([10, 0, 0, 2], [10, 0, 0, 3], 0x12)).is_none(),
            "SYN-ACK"
        );
        assert!(
            parse_syn(&segment([10, 0, 0, 2], [10, 0, 0, 3], 0x10)).is_none(),
            "ACK"
        );
        let mut udp = segment([10, 0, 0, 2], [10, 0, 0, 3], 0x02);
        udp[9] = 17;
        assert!(parse_syn(&udp).is_none());
        assert!(parse_syn(&[0x45, 0, 0]).is_none(), "truncated");
    }

    #[test]
    fn a_peer_is_not_itself_and_loopback_is() {
        let (syn, _) = parse_syn(&segment([10, 0, 0, 3], [10, 0, 0, 2], 0x02)).unwrap();
        assert!(!syn.is_to_itself(Ipv4Addr::new(10, 0, 0, 2)));
        let (syn, _) = parse_syn(&segment([127, 0, 0, 1], [127, 0, 0, 1], 0x02)).unwrap();
        assert!(syn.is_to_itself(Ipv4Addr::new(10, 0, 0, 2)));
    }
}
