//! The link probe: a stream of numbered, timestamped UDP packets for every
//! ordered pair, sent and received by threads inside the node namespaces (no
//! process of its own), so the links are measured themselves and not through
//! the nodes (in the spirit of OWAMP/TWAMP and irtt). One receiving thread
//! per receiving namespace, one sending thread per sending namespace pacing
//! a stream to each of its peers; both read the one CLOCK_MONOTONIC, so a
//! one-way delay is a plain difference. Memory is bounded: each pair's room
//! is allocated before the first packet leaves.

mod lab;
pub mod packet;
pub mod record;

pub use lab::{measure_lab, settings, PairSelection};

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, MsgFlags, SockaddrIn};

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::lab::builder::emulator::stamp::{control_buffer, kernel_stamp};
use crate::lab::builder::netns::spawn_in;
use packet::{Packet, HEADER_LEN, MAX_LEN};
use record::{Arrival, PairRecord};

/// The probe's UDP port: below Linux's ephemeral range (so no socket of a
/// node holds it by chance), away from SDSS's 35498 and VXLAN's 4788/4789.
pub const PROBE_PORT: u16 = 31_998;

/// Most records the probe keeps over all pairs (24 bytes each).
pub const MAX_RECORDS: u64 = 20_000_000;

/// The time before the streams start, from twice the drain within these:
/// each sender's first datagram to each peer, which no pair counts, has
/// the neighbours resolved by then, so no measured packet waits for ARP.
const WARMUP_MIN: Duration = Duration::from_millis(50);
const WARMUP_MAX: Duration = Duration::from_secs(2);

/// The pair number of a warm-up datagram: no pair's, so every receiver drops it.
const WARMUP_PAIR: u32 = u32::MAX;

/// How long receivers have to bind their sockets.
const READY_WAIT: Duration = Duration::from_secs(5);

/// How long a receiver waits in one `recv` before it looks at the clock.
const POLL: Duration = Duration::from_millis(20);

/// One end of a probed pair.
#[derive(Debug)]
pub struct Endpoint {
    /// The node's name.
    pub node: String,
    /// Its network namespace.
    pub netns: File,
    /// Its address on the lab link.
    pub address: Ipv4Addr,
}

/// How the probe sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSettings {
    /// Packets per second of each ordered pair.
    pub rate: f64,
    /// How long each pair sends.
    pub duration: Duration,
    /// UDP payload bytes of each packet.
    pub payload_bytes: usize,
    /// How long receivers keep listening after the last packet left: the
    /// largest expected delay and a margin.
    pub drain: Duration,
    /// The UDP port receivers bind.
    pub port: u16,
}

impl ProbeSettings {
    /// Packets each pair sends.
    pub fn packets(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }

    /// Time between two packets of a pair.
    pub fn spacing(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }
}

/// Why the probe could not measure.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The settings make no probe.
    #[error("link probe: {0}")]
    Settings(String),
    /// A thread could not be started or could not enter its namespace.
    #[error("link probe thread for {node}: {source}")]
    Thread {
        /// The node whose namespace it was for.
        node: String,
        /// Why.
        source: io::Error,
    },
    /// A node's namespace could not be opened.
    #[error("link probe: the namespace of {node}: {source}")]
    Namespace {
        /// The node.
        node: String,
        /// Why.
        source: crate::lab::builder::netns::NetnsError,
    },
    /// A socket could not be opened or bound.
    #[error("link probe socket in {node}: {source}")]
    Socket {
        /// The node.
        node: String,
        /// Why.
        source: io::Error,
    },
    /// Ctrl-C or SIGTERM stopped it; the lab is left as it was.
    #[error("link probe: interrupted; the lab is left as it was")]
    Interrupted,
    /// A thread ended without its result.
    #[error("link probe thread for {0} panicked")]
    Panicked(String),
}

/// One ordered pair to probe: indices into the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sender.
    pub from: usize,
    /// The receiver.
    pub to: usize,
}

/// Probes every pair of `probes` at once over `endpoints` and returns each
/// pair's record, in `probes`' order. A cancelled probe stops sending at
/// once, drains, and returns what it has.
pub fn measure(
    endpoints: &[Endpoint],
    probes: &[Probe],
    settings: &ProbeSettings,
    cancel: &CancellationToken,
) -> Result<Vec<PairRecord>, ProbeError> {
    check(endpoints, probes, settings)?;
    let packets = settings.packets();
    let origin = Instant::now();
    // Receivers first: each binds, says so, then listens until told to stop.
    let stop = CancellationToken::new();
    // Whatever way this returns, the receivers stop within a poll.
    let _stop_receivers = stop.clone().drop_guard();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut receivers = Vec::new();
    let mut by_receiver: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_receiver.entry(p.to).or_default().push(i);
    }
    for (&to, pairs) in &by_receiver {
        let end = &endpoints[to];
        let senders: Vec<(u32, Ipv4Addr)> = pairs
            .iter()
            .map(|&i| (i as u32, endpoints[probes[i].from].address))
            .collect();
        let receiver = Receiver {
            node: end.node.clone(),
            port: settings.port,
            size: settings.payload_bytes,
            senders,
            room: (packets + packets / 8 + 16) as usize,
            origin,
            stop: stop.clone(),
            ready: ready_tx.clone(),
        };
        let handle = spawn_in(&end.netns, "sdss-probe-rx", move || Ok(receiver.run()))
            .map_err(|source| thread_error(end, source))?;
        receivers.push((to, pairs.clone(), handle));
    }
    drop(ready_tx);
    for _ in 0..receivers.len() {
        match ready_rx.recv_timeout(READY_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ProbeError::Panicked("a receiver (not ready)".into())),
        }
    }
    // Senders: one per sending namespace, its pairs interleaved evenly.
    let mut by_sender: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_sender.entry(p.from).or_default().push(i);
    }
    // Senders stop on the caller's cancel, or at once if this returns early.
    let halt = cancel.child_token();
    let _halt_senders = halt.clone().drop_guard();
    let start = Instant::now() + (settings.drain * 2).clamp(WARMUP_MIN, WARMUP_MAX);
    let mut senders = Vec::new();
    for (&from, pairs) in &by_sender {
        let end = &endpoints[from];
        let sender = Sender {
            address: end.address,
            peers: pairs
                .iter()
                .map(|&i| (i as u32, endpoints[probes[i].to].address))
                .collect(),
            settings: *settings,
            packets,
            origin,
            start,
            cancel: halt.clone(),
        };
        let handle = spawn_in(&end.netns, "sdss-probe-tx", move || sender.run())
            .map_err(|source| thread_error(end, source))?;
        senders.push((from, pairs.clone(), handle));
    }
    let mut sent = vec![0u64; probes.len()];
    let mut failure = None;
    for (from, pairs, handle) in senders {
        match handle.join() {
            Ok(Ok(counts)) => {
                for (&i, count) in pairs.iter().zip(counts) {
                    sent[i] = count;
                }
            }
            Ok(Err(source)) => {
                failure.get_or_insert(ProbeError::Socket {
                    node: endpoints[from].node.clone(),
                    source,
                });
            }
            Err(_) => {
                failure.get_or_insert(ProbeError::Panicked(endpoints[from].node.clone()));
            }
        }
    }
    // The last packets are still on their links: wait for them (or a cancel).
    let drained = Instant::now() + settings.drain;
    while Instant::now() < drained && !cancel.is_cancelled() {
        std::thread::sleep(POLL.min(drained.saturating_duration_since(Instant::now())));
    }
    stop.cancel();
    let mut records: Vec<Option<PairRecord>> = vec![None; probes.len()];
    for (to, pairs, handle) in receivers {
        let kept = match handle.join() {
            Ok(Ok(kept)) => kept,
            Ok(Err(source)) => {
                failure.get_or_insert(thread_error(&endpoints[to], source));
                continue;
            }
            Err(_) => {
                failure.get_or_insert(ProbeError::Panicked(endpoints[to].node.clone()));
                continue;
            }
        };
        for (&i, (arrivals, overflow)) in pairs.iter().zip(kept) {
            records[i] = Some(PairRecord {
                from: endpoints[probes[i].from].node.clone(),
                to: endpoints[to].node.clone(),
                sent: sent[i],
                arrivals,
                overflow,
                spacing: settings.spacing(),
                payload_bytes: settings.payload_bytes,
            });
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    records
        .into_iter()
        .map(|r| r.ok_or_else(|| ProbeError::Panicked("a receiver".into())))
        .collect()
}

fn thread_error(end: &Endpoint, source: io::Error) -> ProbeError {
    ProbeError::Thread {
        node: end.node.clone(),
        source,
    }
}

/// Refuses settings and pairs that make no probe or unbounded memory.
fn check(endpoints: &[Endpoint], probes: &[Probe], s: &ProbeSettings) -> Result<(), ProbeError> {
    let refuse = |why: String| Err(ProbeError::Settings(why));
    if !(s.rate.is_finite() && s.rate > 0.0) || s.packets() == 0 {
        return refuse(format!(
            "rate {} for {:?} sends no packet",
            s.rate, s.duration
        ));
    }
    if !(HEADER_LEN..=MAX_LEN).contains(&s.payload_bytes) {
        return refuse(format!(
            "packets of {} bytes: {HEADER_LEN} to {MAX_LEN}",
            s.payload_bytes
        ));
    }
    if s.packets().saturating_mul(probes.len() as u64) > MAX_RECORDS {
        return refuse(format!(
            "{} packets for each of {} pairs: at most {MAX_RECORDS} in all",
            s.packets(),
            probes.len()
        ));
    }
    if let Some(p) = probes
        .iter()
        .find(|p| p.from == p.to || p.from.max(p.to) >= endpoints.len())
    {
        return refuse(format!("pair {p:?} is not two distinct endpoints"));
    }
    Ok(())
}

/// Nanoseconds since the probe's origin.
fn since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The receiving side of one namespace.
struct Receiver {
    node: String,
    port: u16,
    size: usize,
    /// Its pairs: the number each carries and the sender's address.
    senders: Vec<(u32, Ipv4Addr)>,
    /// Records each pair has room for.
    room: usize,
    origin: Instant,
    stop: CancellationToken,
    ready: mpsc::Sender<Result<(), ProbeError>>,
}

impl Receiver {
    /// Per pair (in `senders`' order): the arrivals and those not kept.
    fn run(self) -> Vec<(Vec<Arrival>, u64)> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.port))
            .and_then(|s| s.set_read_timeout(Some(POLL)).map(|()| s));
        let socket = match socket {
            Ok(socket) => socket,
            Err(source) => {
                let node = self.node.clone();
                let _ = self.ready.send(Err(ProbeError::Socket { node, source }));
                return Vec::new();
            }
        };
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        // The kernel's receive stamp, not this thread's wake-up, is the arrival.
        let _ = setsockopt(&socket, sockopt::ReceiveTimestampns, &true);
        let mut kept: Vec<(Vec<Arrival>, u64)> = self
            .senders
            .iter()
            .map(|_| (Vec::with_capacity(self.room), 0))
            .collect();
        let _ = self.ready.send(Ok(()));
        let mut buf = vec![0u8; MAX_LEN + 1];
        let offset = wall_offset(self.origin);
        while !self.stop.is_cancelled() {
            let Ok((len, source, received)) = receive(&socket, &mut buf, self.origin, offset)
            else {
                continue;
            };
            let Ok(packet) = Packet::parse(&buf[..len], self.size) else {
                continue;
            };
            // Only the pair's own sender may speak for it.
            let Some(slot) = self.senders.iter().position(|&(pair, address)| {
                pair == packet.pair && source == SocketAddr::from((address, source.port()))
            }) else {
                continue;
            };
            let (arrivals, overflow) = &mut kept[slot];
            if arrivals.len() < self.room {
                arrivals.push(Arrival {
                    seq: packet.seq,
                    sent: Duration::from_nanos(packet.sent_ns),
                    received: Duration::from_nanos(received),
                });
            } else {
                *overflow += 1;
            }
        }
        kept
    }
}

/// Where the realtime clock's zero lies on the probe's monotonic one, in
/// nanoseconds: `wall - since(origin)`, read in the tightest of a few
/// brackets so a preemption between the two reads does not skew it. The two
/// clocks are slewed alike, so one offset holds for the whole probe and
/// keeps the kernel's stamps in the order they were taken.
fn wall_offset(origin: Instant) -> i128 {
    let wall = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128)
    };
    (0..8)
        .map(|_| {
            let before = since(origin);
            let at = wall();
            let after = since(origin);
            (
                after - before,
                at - i128::from(before + (after - before) / 2),
            )
        })
        .min_by_key(|(width, _)| *width)
        .map_or(0, |(_, offset)| offset)
}

/// Reads one datagram: its length, its sender, and when it arrived in
/// nanoseconds since `origin`, from the kernel's receive stamp (realtime,
/// moved onto the monotonic clock by `offset`, [`wall_offset`]) when the
/// socket gave a plausible one, else from now.
fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
    origin: Instant,
    offset: i128,
) -> io::Result<(usize, SocketAddr, u64)> {
    let mut space = control_buffer();
    let mut iov = [io::IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let now = since(origin);
    let stamp = kernel_stamp(&message).map(|at| at.as_nanos() as i128);
    // A stamp from the future or from over a second ago (a clock step) is
    // not this datagram's arrival.
    let received = stamp
        .map(|at| at - offset)
        .filter(|at| (0.max(i128::from(now) - 1_000_000_000)..=i128::from(now)).contains(at))
        .map_or(now, |at| at as u64);
    let source = message
        .address
        .map(|a| SocketAddr::V4(SocketAddrV4::from(a)))
        .ok_or_else(|| io::Error::other("a datagram without its sender"))?;
    Ok((message.bytes, source, received))
}

/// The sending side of one namespace.
struct Sender {
    address: Ipv4Addr,
    /// Its pairs: the number each carries and the receiver's address.
    peers: Vec<(u32, Ipv4Addr)>,
    settings: ProbeSettings,
    packets: u64,
    origin: Instant,
    start: Instant,
    cancel: CancellationToken,
}

impl Sender {
    /// Packets sent to each peer, numbered `0..count` (a send the kernel
    /// refuses keeps its number for the next slot).
    fn run(self) -> io::Result<Vec<u64>> {
        let socket = UdpSocket::bind(SocketAddrV4::new(self.address, 0))?;
        let _ = socket2::SockRef::from(&socket).set_send_buffer_size(4 << 20);
        let peers = self.peers.len() as u32;
        let spacing = self.settings.spacing();
        let mut sent = vec![0u64; self.peers.len()];
        let mut buf = vec![0u8; self.settings.payload_bytes];
        for &(_, to) in &self.peers {
            let warmup = Packet {
                pair: WARMUP_PAIR,
                seq: 0,
                sent_ns: since(self.origin),
            };
            warmup.encode(&mut buf);
            let _ = socket.send_to(&buf, SocketAddrV4::new(to, self.settings.port));
        }
        for slot in 0..self.packets {
            for (k, &(pair, to)) in self.peers.iter().enumerate() {
                // Pair k's packets sit k/peers of a spacing after the slot's start.
                let due = self.start
                    + spacing.mul_f64(slot as f64 + f64::from(k as u32) / f64::from(peers));
                if self.cancel.is_cancelled() {
                    return Ok(sent);
                }
                sleep_until(due);
                let packet = Packet {
                    pair,
                    seq: sent[k],
                    sent_ns: since(self.origin),
                };
                packet.encode(&mut buf);
                if socket
                    .send_to(&buf, SocketAddrV4::new(to, self.settings.port))
                    .is_ok()
                {
                    sent[k] += 1;
                }
            }
        }
        Ok(sent)
    }
}

/// Sleeps to `due`, the last stretch spun so the pacing holds to microseconds.
fn sleep_until(due: Instant) {
    const SPIN: Duration = Duration::from_micros(200);
    loop {
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_wall_clock_offset_moves_a_realtime_stamp_onto_the_probes_clock() {
        let origin = Instant::now() - Duration::from_secs(3);
        let offset = wall_offset(origin);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let moved = wall - offset;
        let now = i128::from(since(origin));
        assert!((moved - now).abs() < 1_000_000, "{moved} against {now}");
    }

    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, name)| Endpoint {
                node: (*name).to_owned(),
                netns: File::open("/dev/null").unwrap(),
                address: Ipv4Addr::new(198, 18, 0, i as u8 + 1),
            })
            .collect()
    }

    fn settings() -> ProbeSettings {
        ProbeSettings {
            rate: 100.0,
            duration: Duration::from_secs(2),
            payload_bytes: 64,
            drain: Duration::from_millis(100),
            port: PROBE_PORT,
        }
    }

    #[test]
    fn a_probe_that_sends_nothing_or_more_than_memory_allows_is_refused() {
        let ends = endpoints();
        let pair = [Probe { from: 0, to: 1 }];
        assert!(check(&ends, &pair, &settings()).is_ok());
        assert_eq!(settings().packets(), 200);
        assert_eq!(settings().spacing(), Duration::from_millis(10));
        let refused = |s: ProbeSettings, probes: &[Probe]| {
            matches!(check(&ends, probes, &s), Err(ProbeError::Settings(_)))
        };
        assert!(refused(
            ProbeSettings {
                rate: 0.0,
                ..settings()
            },
            &pair
        ));
        assert!(refused(
            ProbeSettings {
                rate: f64::NAN,
                ..settings()
            },
            &pair
        ));
        assert!(refused(
            ProbeSettings {
                payload_bytes: HEADER_LEN - 1,
                ..settings()
            },
            &pair
        ));
        assert!(refused(
            ProbeSettings {
                rate: 1e6,
                duration: Duration::from_secs(100),
                ..settings()
            },
            &pair
        ));
        assert!(refused(settings(), &[Probe { from: 1, to: 1 }]));
        assert!(refused(settings(), &[Probe { from: 0, to: 2 }]));
    }
}
