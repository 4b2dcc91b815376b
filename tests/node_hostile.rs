//! Bad input costs a node nothing: malformed datagrams are counted and
//! rate-limited, silent TCP clients do not block the timestamp server, and
//! floods of fake IDs, liars and connection storms from one address neither
//! starve nor fool it. Attackers speak from addresses of their own in 127/8,
//! as another host of the LAN would; floods are about 10k, and the assertions
//! are counts with generous bounds, never timings.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{sdss_node, unique_port, Proc, LOOPBACK_BROADCAST};

#[test]
fn a_burst_of_malformed_datagrams_gives_few_warnings_and_no_state_change() {
    let port = unique_port();
    let node = sdss_node("target", port, &[]);
    node.id();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_broadcast(true).unwrap();
    let oversized = vec![b'x'; 600];
    let long_id = format!("{} ON 6758", "a".repeat(300));
    let malformed: [&[u8]; 10] = [
        b"cc89e68 ON 6758",
        b"cc89e6820 ON 6758",
        long_id.as_bytes(),
        b"cc89e682 on 6758",
        b"cc89e682 ON 0",
        b"cc89e682 ON 70000",
        b"\xff\xfe ON 1",
        b"just some words here",
        b"cc89\x07e682 ON 6758",
        &oversized,
    ];
    for _ in 0..200 {
        for datagram in malformed {
            sender
                .send_to(datagram, (LOOPBACK_BROADCAST, port))
                .unwrap();
        }
    }
    // A peer announces after the burst: once the node has measured it, it has
    // read every datagram of the burst (one socket, read in order).
    let peer = sdss_node("peer", port, &[]);
    let peer_id = peer.id();
    node.wait_for(
        "a measurement after the burst",
        Duration::from_secs(10),
        |line| line["event"] == "neighbor" && line["id"] == peer_id.as_str(),
    );
    let warnings = node.events("warning");
    let malformed_warnings: Vec<_> = warnings
        .iter()
        .filter(|w| w["kind"] == "malformed_datagram")
        .collect();
    // One warning per kind and source address in the rate-limit period, not 2000.
    assert_eq!(
        malformed_warnings.len(),
        1,
        "expected one warning, got:\n{}",
        node.transcript()
    );
    let discovered: Vec<Value> = node
        .events("discovered")
        .into_iter()
        .filter(|line| line["id"] != peer_id.as_str())
        .collect();
    assert!(
        discovered.is_empty(),
        "a malformed datagram created a peer: {discovered:?}"
    );
}

#[test]
fn silent_tcp_clients_do_not_stop_the_server_from_answering_others() {
    let port = unique_port();
    let node = sdss_node("target", port, &[]);
    let started = node.wait_for("started", Duration::from_secs(5), |line| {
        line["event"] == "started"
    });
    let tcp_port = started["tcp_port"].as_u64().unwrap() as u16;
    // Clients that connect and never speak nor close.
    let _silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", tcp_port)).unwrap())
        .collect();
    // A client that does speak gets an answer at once: 8 bytes of big-endian double.
    let mut client = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = [0u8; 8];
    client.read_exact(&mut answer).unwrap();
    let their_time = f64::from_be_bytes(answer);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - their_time).abs() < 1.0,
        "answer {their_time} is not the current UTC time {now}"
    );
}

/// Sends `count` announcements from `source`, each from a new ID made by
/// `id_of`, all pointing at TCP `target_port` on `source`; paced over `spread`.
fn flood(
    port: u16,
    source: Ipv4Addr,
    count: u32,
    target_port: u16,
    spread: Duration,
    id_of: impl Fn(u32) -> String,
) {
    let sender = UdpSocket::bind((source, 0)).unwrap();
    sender.set_broadcast(true).unwrap();
    let batch = 100;
    let pause = spread / (count / batch).max(1);
    for i in 0..count {
        let datagram = format!("{} ON {target_port}", id_of(i));
        // A full socket buffer drops a datagram or two: a flood is a flood.
        let _ = sender.send_to(datagram.as_bytes(), (LOOPBACK_BROADCAST, port));
        if i % batch == batch - 1 {
            std::thread::sleep(pause);
        }
    }
}

/// The most IDs one address can have added in `elapsed`: the node admits a
/// burst of 16, then one per interval (200 ms here), whenever the flood's
/// datagrams are read (a loaded machine reads them later, over more intervals);
/// one more for the interval under way.
fn admissible(elapsed: Duration) -> usize {
    16 + (elapsed.as_secs_f64() / 0.2).ceil() as usize + 1
}

fn fake_id(salt: u32) -> impl Fn(u32) -> String {
    move |i| format!("{:08x}", i.wrapping_mul(2_654_435_761) ^ salt)
}

/// Lines of `node` with `event` about a peer at `ip`.
fn about(node: &Proc, event: &str, ip: &str) -> Vec<Value> {
    node.events(event)
        .into_iter()
        .filter(|line| line["ip"] == ip)
        .collect()
}

fn samples_of(node: &Proc, id: &str) -> usize {
    node.events("neighbor")
        .iter()
        .filter(|line| line["id"] == id)
        .count()
}

fn tcp_port(node: &Proc) -> u16 {
    let started = node.wait_for("started", Duration::from_secs(5), |line| {
        line["event"] == "started"
    });
    started["tcp_port"].as_u64().unwrap() as u16
}

/// Connects from `source` and reads the server's answer, as a peer would.
fn ordinary_client(source: Ipv4Addr, port: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = connect_from(source, port)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

fn measured_pair(port: u16) -> (Proc, Proc, String, String) {
    let victim = sdss_node("victim", port, &[]);
    let peer = sdss_node("peer", port, &[]);
    let (victim_id, peer_id) = (victim.id(), peer.id());
    victim.wait_for("a sample of the peer", Duration::from_secs(10), |line| {
        line["event"] == "neighbor" && line["id"] == peer_id.as_str()
    });
    peer.wait_for("a sample of the victim", Duration::from_secs(10), |line| {
        line["event"] == "neighbor" && line["id"] == victim_id.as_str()
    });
    (victim, peer, victim_id, peer_id)
}

#[test]
fn a_flood_of_fake_ids_neither_starves_a_measured_peer_nor_floods_the_output() {
    let port = unique_port();
    let (victim, _peer, _, peer_id) = measured_pair(port);
    let attacker = Ipv4Addr::new(127, 0, 0, 66);
    // A server that never answers: every fake ID's exchange runs to its timeout.
    let mute = TcpListener::bind((attacker, 0)).unwrap();
    let before = samples_of(&victim, &peer_id);
    let started = Instant::now();
    flood(
        port,
        attacker,
        10_000,
        mute.local_addr().unwrap().port(),
        Duration::from_secs(3),
        fake_id(1),
    );
    let during = samples_of(&victim, &peer_id) - before;
    // One sample every 3 broadcasts of 200 ms: about 5 in the flood's 3 s.
    assert!(
        during >= 2,
        "the measured peer got {during} samples during the flood"
    );
    let discovered = about(&victim, "discovered", "127.0.0.66").len();
    let allowed = admissible(started.elapsed());
    assert!(
        discovered <= allowed,
        "{discovered} fake IDs admitted, more than {allowed}: a burst, then one per interval"
    );
    let warnings = about(&victim, "warning", "127.0.0.66").len();
    assert!(
        warnings <= 4,
        "{warnings} warnings about one address, for 10,000 fake IDs"
    );
}

/// A server that answers every client with bytes that are no time.
fn liar_server(bind: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((bind, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(&noise);
        }
    });
    port
}

#[test]
fn liars_never_become_lasting_neighbors_and_a_real_newcomer_still_gets_in() {
    let port = unique_port();
    let (victim, peer, _, _) = measured_pair(port);
    let peer_tcp_port = tcp_port(&peer);
    let noise = Ipv4Addr::new(127, 0, 0, 66);
    let noise_port = liar_server(noise);
    // Liars of the second kind point at a real server: theirs is a real time.
    let echo = Ipv4Addr::new(127, 0, 0, 67);
    let started = Instant::now();
    let (a, b) = (
        std::thread::spawn(move || {
            flood(
                port,
                noise,
                3000,
                noise_port,
                Duration::from_secs(2),
                fake_id(2),
            )
        }),
        std::thread::spawn(move || {
            flood(
                port,
                echo,
                3000,
                peer_tcp_port,
                Duration::from_secs(2),
                fake_id(3),
            )
        }),
    );
    a.join().unwrap();
    b.join().unwrap();
    let newcomer = sdss_node("newcomer", port, &[]);
    let newcomer_id = newcomer.id();
    victim.wait_for(
        "a sample of the newcomer",
        Duration::from_secs(10),
        |line| line["event"] == "neighbor" && line["id"] == newcomer_id.as_str(),
    );
    assert!(
        about(&victim, "neighbor", "127.0.0.66").is_empty(),
        "noise made a neighbor"
    );
    let echoed: std::collections::BTreeSet<String> = about(&victim, "neighbor", "127.0.0.67")
        .iter()
        .map(|line| line["id"].as_str().unwrap().to_owned())
        .collect();
    let allowed = admissible(started.elapsed());
    assert!(
        echoed.len() <= allowed,
        "{} IDs of one address became neighbors, more than {allowed}",
        echoed.len()
    );
    // Heard once, they fall silent: each is forgotten within two refresh periods.
    victim.wait_for(
        "every echoed liar forgotten",
        Duration::from_secs(10),
        |_| {
            let forgotten = about(&victim, "removed", "127.0.0.67");
            forgotten.len() >= echoed.len() && forgotten.iter().all(|l| l["cause"] == "silent")
        },
    );
}

#[test]
fn a_connection_storm_from_one_address_costs_no_other_address_its_answer() {
    let port = unique_port();
    let (victim, peer, victim_id, _) = measured_pair(port);
    let victim_port = tcp_port(&victim);
    let storm = Ipv4Addr::new(127, 0, 0, 68);
    let before = samples_of(&peer, &victim_id);
    // Connections that never read, 400 of them open at any time, until the
    // peer has measured the victim twice through the storm.
    let mut open = std::collections::VecDeque::new();
    let mut ordinary_failures = Vec::new();
    let mut i = 0;
    while samples_of(&peer, &victim_id) < before + 2 {
        i += 1;
        assert!(i < 50_000, "the peer stopped measuring the victim");
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from((storm, 0)).into()).unwrap();
        if socket
            .connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, victim_port)).into())
            .is_ok()
        {
            open.push_back(socket);
        }
        if open.len() > 400 {
            open.pop_front();
        }
        if i % 50 == 0 {
            match ordinary_client(Ipv4Addr::LOCALHOST, victim_port) {
                Ok(answer) if answer.len() == 8 => {}
                other => ordinary_failures.push(format!("{other:?}")),
            }
        }
    }
    // Bulk senders: each writes 1 MB, read at most a few bytes of.
    let bulk = Ipv4Addr::new(127, 0, 0, 69);
    let senders: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let Ok(mut stream) = connect_from(bulk, victim_port) else {
                    return;
                };
                let _ = stream.write_all(&vec![b'x'; 1 << 20]);
            })
        })
        .collect();
    for _ in 0..20 {
        match ordinary_client(Ipv4Addr::LOCALHOST, victim_port) {
            Ok(answer) if answer.len() == 8 => {}
            other => ordinary_failures.push(format!("{other:?}")),
        }
    }
    for sender in senders {
        sender.join().unwrap();
    }
    drop(open);
    assert!(
        ordinary_failures.is_empty(),
        "{} ordinary clients failed: {ordinary_failures:?}",
        ordinary_failures.len()
    );
    let removals: Vec<_> = peer
        .events("removed")
        .into_iter()
        .filter(|line| line["id"] == victim_id.as_str())
        .collect();
    assert!(
        removals.is_empty(),
        "the peer removed the victim: {removals:?}"
    );
}

fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    Ok(TcpStream::from(socket))
}
