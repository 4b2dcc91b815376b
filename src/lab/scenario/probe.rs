//! The grading probe: what the lab does on the lab link, from a namespace of its
//! own, while graded nodes run. It listens to every datagram (one socket bound
//! to each broadcast address, so it knows where each was sent), connects to the
//! graded nodes' timestamp servers, plays two extra peers (one that answers like
//! a correct node and joins late, one that accepts and never answers), sends a
//! burst of malformed datagrams, and reads the graded processes in `/proc`.
//!
//! Everything runs on a current-thread runtime in one OS thread that entered
//! the probe's namespace (sockets opened there stay in it); see
//! [`crate::lab::scenario::grading`]. The output is plain data: [`ProbeLog`].

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, MsgFlags, SockaddrIn};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fakes::{burst, fake_peer, watch_open};
use super::probe_log::{lock, now, FakePeer, Heard, ProbeLog, ProbeSpec, Shared, Target};
use super::syn_watch;
use crate::lab::builder::emulator::stamp::{control_buffer, kernel_stamp};
use crate::lab::plan::timeline::ProbeStep;
use crate::lab::procfs;

use crate::lab::scenario::observe::{
    Destination, Probe, ProbeKind, ProcessSample, LISTEN_BEFORE_SPEAKING,
};
use crate::protocol::{encode_timestamp, Announcement, Dialect};

/// How long a connection to a graded server may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the probe waits for a server's first bytes (then for its close).
const ANSWER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Time between two rounds of connections to the graded servers.
const PROBE_EVERY: Duration = Duration::from_millis(1500);
/// Time between two readings of `/proc`.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Runs the probe until `spec.duration` has passed since `start` (Unix
/// seconds), and on while a program waits on the silent peer (see
/// [`watch_open`]), or until `cancel` fires. Must run inside the probe's
/// namespace.
pub async fn run(
    spec: ProbeSpec,
    start: f64,
    mut steps: mpsc::UnboundedReceiver<ProbeStep>,
    cancel: CancellationToken,
) -> ProbeLog {
    let log: Shared = Arc::default();
    let end = start + spec.duration.as_secs_f64();
    let stop = cancel.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    for (address, destination) in [
        (Ipv4Addr::BROADCAST, Destination::Limited),
        (spec.directed, Destination::Directed),
    ] {
        match listen(address, spec.broadcast_port) {
            Ok(socket) => {
                tasks.spawn(receive(
                    socket,
                    destination,
                    spec.clone(),
                    log.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => lock(&log).errors.push(format!(
                "listening on {address}:{}: {e}",
                spec.broadcast_port
            )),
        }
    }
    // Each program's own namespace is watched for the connections it opens.
    let watches: Vec<_> = spec
        .targets
        .iter()
        .filter_map(|t| {
            let watched = std::fs::File::open(format!("/proc/{}/ns/net", t.pid))
                .and_then(|netns| syn_watch::watch(&netns, stop.clone()));
            match watched {
                Ok(handle) => Some((t.clone(), handle)),
                Err(e) => {
                    lock(&log)
                        .errors
                        .push(format!("watching {}'s connections: {e}", t.name));
                    None
                }
            }
        })
        .collect();
    let (targets, sampled, sampling) = (spec.targets.clone(), log.clone(), stop.clone());
    tasks.spawn_blocking(move || sample(&targets, &sampled, &sampling));
    tasks.spawn(probe_servers(
        spec.clone(),
        start,
        log.clone(),
        stop.clone(),
    ));
    // The grading timeline's steps come from the lab's scenario, when due.
    let deadline = tokio::time::sleep(until(end));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut deadline => break,
            step = steps.recv() => match step {
                Some(ProbeStep::SilentPeer) => {
                    tasks.spawn(fake_peer(FakePeer::Silent, spec.clone(), log.clone(), stop.clone()));
                }
                Some(ProbeStep::Joiner) => {
                    tasks.spawn(fake_peer(FakePeer::Joiner, spec.clone(), log.clone(), stop.clone()));
                }
                Some(ProbeStep::MalformedBurst) => {
                    tasks.spawn(burst(spec.clone(), log.clone()));
                }
                None => (&mut deadline).await,
            },
        }
    }
    // A program still waiting on the silent peer at the end is watched on.
    let extended = match stop.is_cancelled() {
        true => None,
        false => watch_open(&spec, start, end, &log, &stop).await,
    };
    let ended_at = now();
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let mut log = lock(&log).clone();
    (log.ended_at, log.extended_by) = (Some(ended_at), extended);
    for (target, handle) in watches {
        let syns = tokio::task::spawn_blocking(move || handle.join())
            .await
            .ok()
            .and_then(Result::ok);
        match syns {
            Some(Ok(syns)) => syn_watch::count_self_connections(&mut log, &target, &syns),
            Some(Err(e)) => log
                .errors
                .push(format!("watching {}'s connections: {e}", target.name)),
            None => log.errors.push(format!(
                "watching {}'s connections: the watch panicked",
                target.name
            )),
        }
    }
    log
}

/// The time left until `at` (Unix seconds), zero if past.
fn until(at: f64) -> Duration {
    Duration::from_secs_f64((at - now()).max(0.0))
}

/// Sleeps until `at`; false when cancelled first.
async fn sleep_until(at: f64, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(until(at)) => true,
    }
}

fn listen(address: Ipv4Addr, port: u16) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    // Each datagram's arrival is the kernel's stamp, not when this thread got
    // to read it: a loaded machine that holds the lab's thread for a second
    // would otherwise show a right program's cadence as irregular.
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
    socket.bind(&SocketAddr::from((address, port)).into())?;
    UdpSocket::from_std(socket.into())
}

/// Receives one datagram: its length, sender and arrival (the kernel's stamp,
/// else the time it was read).
async fn recv_stamped(
    socket: &UdpSocket,
    buffer: &mut [u8],
) -> io::Result<(usize, SocketAddr, f64)> {
    loop {
        socket.readable().await?;
        let received = socket.try_io(Interest::READABLE, || {
            let mut space = control_buffer();
            let mut iov = [io::IoSliceMut::new(buffer)];
            let message = recvmsg::<SockaddrIn>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let read_at = now();
            // A stamp must be from this clock and this run, never the future.
            let at = kernel_stamp(&message)
                .map(|at| at.as_secs_f64())
                .filter(|at| (0.0..60.0).contains(&(read_at - at)))
                .unwrap_or(read_at);
            let from = message
                .address
                .map(|a| SocketAddr::V4(SocketAddrV4::from(a)))
                .ok_or_else(|| io::Error::other("a datagram without a sender"))?;
            Ok((message.bytes, from, at))
        });
        match received {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Records the datagrams heard on one address: a graded node's whole (its
/// checks read them), anyone else's arrival alone (an observer's broadcasts
/// are timed); at most [`KEPT_PER_GRADED`] of each graded node and
/// [`KEPT_OF_OTHERS`] of all the others, so a flood cannot grow the log, nor
/// one graded node's crowd out another's.
async fn receive(
    socket: UdpSocket,
    destination: Destination,
    spec: ProbeSpec,
    log: Shared,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; 2048];
    let mut kept: HashMap<Ipv4Addr, usize> = spec.targets.iter().map(|t| (t.address, 0)).collect();
    let mut others = 0usize;
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = recv_stamped(&socket, &mut buffer) => r,
        };
        let Ok((len, SocketAddr::V4(from), at)) = received else {
            continue;
        };
        let source = *from.ip();
        if source == spec.own {
            continue;
        }
        let (count, most, graded) = match kept.get_mut(&source) {
            Some(count) => (count, KEPT_PER_GRADED, true),
            None => (&mut others, KEPT_OF_OTHERS, false),
        };
        *count += 1;
        if *count > most {
            if *count == most + 1 {
                let whose = if graded {
                    format!("{source}")
                } else {
                    "the others".to_owned()
                };
                lock(&log).errors.push(format!(
                    "more than {most} datagrams from {whose} on the {destination:?} address: the rest were not kept"
                ));
            }
            continue;
        }
        lock(&log).heard.push(Heard {
            at,
            source,
            destination,
            payload: if graded {
                buffer[..len.min(600)].to_vec()
            } else {
                Vec::new()
            },
        });
    }
}

/// Datagrams kept of each graded node on each address: a hundred a second
/// over a default run, far beyond any node that announces on time.
const KEPT_PER_GRADED: usize = 2400;

/// Datagrams kept of everyone else on each address (their times only).
const KEPT_OF_OTHERS: usize = 50_000;

/// The port to probe on a target: the last one it announced, else one it listens on.
fn ports_for(target: &Target, log: &Shared) -> (Option<u16>, Option<u16>) {
    let log = lock(log);
    let announced = log
        .heard
        .iter()
        .rev()
        .filter(|h| h.source == target.address)
        .find_map(|h| Announcement::port_of(&h.payload).ok());
    let listening = log
        .listening
        .get(&target.name)
        .and_then(|ports| ports.iter().next().copied());
    (announced, listening)
}

/// The kind of the `n`-th round of connections: `Listen` until `risky`
/// (the index of the first round that starts at or after [`ProbeSpec::risky_from`]),
/// then a mute client that gives up and a binary one, each followed by a
/// `Listen` that tells whether the server survived it.
fn round_kind(n: usize, risky: usize) -> ProbeKind {
    match n.checked_sub(risky) {
        Some(0) => ProbeKind::CloseMute,
        Some(2) => ProbeKind::Binary,
        _ => ProbeKind::Listen,
    }
}

async fn probe_servers(spec: ProbeSpec, start: f64, log: Shared, stop: CancellationToken) {
    let rounds = spec
        .targets
        .iter()
        .map(|target| probe_server(target, &spec, start, &log, &stop));
    futures::future::join_all(rounds).await;
}

/// One graded server's rounds, on a schedule of its own: a server that is
/// slow to answer (one that waits for the client first) delays only its own
/// rounds, not the others' (in a lab of ten graded servers, one round of all
/// took longer than a period, and the risky clients came after the run).
async fn probe_server(
    target: &Target,
    spec: &ProbeSpec,
    start: f64,
    log: &Shared,
    stop: &CancellationToken,
) {
    let every = PROBE_EVERY.as_secs_f64();
    let risky_at = start + spec.risky_from.as_secs_f64();
    // The first round that starts once the scenario's steps are judged.
    let mut risky = None;
    let mut round = 0usize;
    let mut next = start + every;
    while sleep_until(next, stop).await {
        // A slow round is followed at once, not by a burst to catch up.
        next = (next + every).max(now());
        if now() >= risky_at {
            risky.get_or_insert(round);
        }
        let kind = risky.map_or(ProbeKind::Listen, |r| round_kind(round, r));
        round += 1;
        let (announced, listening) = ports_for(target, log);
        let mut ports: Vec<u16> = announced.into_iter().collect();
        if let Some(port) = listening.filter(|p| Some(*p) != announced) {
            ports.push(port);
        }
        for port in ports {
            let probe = tokio::select! {
                _ = stop.cancelled() => return,
                p = connect_once(SocketAddrV4::new(target.address, port), kind) => p,
            };
            let failed_announced = Some(port) == announced && probe.connect_error.is_some();
            lock(log)
                .probes
                .entry(target.name.clone())
                .or_default()
                .push(probe);
            // The listening port is tried only when the announced one fails.
            if !failed_announced {
                break;
            }
        }
    }
}

/// One connection to a timestamp server, behaving as `kind` says; reads what
/// comes until the server closes or the wait ends.
async fn connect_once(address: SocketAddrV4, kind: ProbeKind) -> Probe {
    let at = now();
    let mut probe = Probe {
        at,
        port: address.port(),
        kind,
        spoke: None,
        connect_error: None,
        bytes: Vec::new(),
        answered_at: None,
        closed: false,
    };
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
    {
        Err(_) => {
            probe.connect_error = Some("timeout".to_owned());
            return probe;
        }
        Ok(Err(e)) => {
            probe.connect_error = Some(match e.kind() {
                io::ErrorKind::ConnectionRefused => "refused".to_owned(),
                _ => e.to_string(),
            });
            return probe;
        }
        Ok(Ok(stream)) => stream,
    };
    let speak = |dialect| {
        let at = now();
        (at, encode_timestamp(at, dialect), dialect)
    };
    let first_wait = match kind {
        ProbeKind::Binary => {
            let (when, bytes, dialect) = speak(Dialect::BinaryBe);
            let _ = stream.write_all(&bytes).await;
            probe.spoke = Some((when, dialect));
            ANSWER_TIMEOUT
        }
        ProbeKind::Listen => Duration::from_secs_f64(LISTEN_BEFORE_SPEAKING),
        ProbeKind::CloseMute => ANSWER_TIMEOUT,
    };
    let mut deadline = tokio::time::Instant::now() + first_wait;
    let mut buffer = [0u8; 64];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) if kind == ProbeKind::Listen && probe.spoke.is_none() => {
                // Mute so far: speak as a text client-first peer expects.
                let (when, bytes, dialect) = speak(Dialect::Ascii);
                let _ = stream.write_all(&bytes).await;
                probe.spoke = Some((when, dialect));
                deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
            }
            Err(_) => break,
            Ok(Ok(0)) => {
                probe.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                if probe.answered_at.is_none() {
                    probe.answered_at = Some(now());
                    // Once it answered, it gets the same time again to close.
                    deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
                }
                let room = 64usize.saturating_sub(probe.bytes.len());
                probe.bytes.extend_from_slice(&buffer[..n.min(room)]);
            }
            Ok(Err(e)) => {
                // A reset is a close, after the answer or instead of one
                // (PROTOCOL.md section 2); other errors end the wait.
                probe.closed =
                    !probe.bytes.is_empty() || e.kind() == io::ErrorKind::ConnectionReset;
                break;
            }
        }
    }
    probe
}

/// Reads the graded processes in `/proc` every [`SAMPLE_EVERY`] until `stop`.
/// It runs on a thread of its own: a scan of `/proc` is many blocking reads,
/// slow on a loaded machine, and on the probe's thread it held the network
/// side (a server's answer was read 9 s late, and the scenario's rounds never
/// came).
fn sample(targets: &[Target], log: &Shared, stop: &CancellationToken) {
    let leaders: Vec<i32> = targets.iter().map(|t| t.pid).collect();
    let mut next = std::time::Instant::now();
    while !stop.is_cancelled() {
        let at = now();
        let readings = procfs::groups(&leaders);
        for target in targets {
            let reading = readings.get(&target.pid);
            let (listening, connections) = procfs::sockets(target.pid, target.address);
            let mut log = lock(log);
            match reading {
                Some(s) if !s.zombie => {
                    log.samples
                        .entry(target.name.clone())
                        .or_default()
                        .push(ProcessSample {
                            at,
                            cpu_secs: s.cpu_secs,
                            rss_kb: s.rss_kb,
                            runnable: s.runnable,
                            processes: s.processes,
                        })
                }
                _ => {
                    log.gone.entry(target.name.clone()).or_insert(at);
                }
            }
            let ports = log.listening.entry(target.name.clone()).or_default();
            ports.extend(listening.iter().copied());
            let selfish: Vec<u16> = connections
                .iter()
                .filter(|(local, _)| listening.contains(local))
                .map(|(_, remote)| *remote)
                .collect();
            log.self_connections
                .entry(target.name.clone())
                .or_default()
                .extend(selfish);
        }
        // A slow scan is followed at once, not by a burst to catch up.
        next = (next + SAMPLE_EVERY).max(std::time::Instant::now());
        while !stop.is_cancelled() {
            let left = next.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risky_probes_come_after_the_scenario_each_followed_by_a_listen() {
        let kinds: Vec<ProbeKind> = (0..9).map(|n| round_kind(n, 4)).collect();
        use ProbeKind::*;
        assert_eq!(
            kinds,
            [Listen, Listen, Listen, Listen, CloseMute, Listen, Binary, Listen, Listen]
        );
    }
}
