//! Bad input costs a node nothing: malformed datagrams are counted and
//! rate-limited, silent TCP clients do not block the timestamp server.

mod common;

use std::io::Read;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::{sdss_node, unique_port, LOOPBACK_BROADCAST};

#[test]
fn a_burst_of_malformed_datagrams_gives_few_warnings_and_no_state_change() {
    let port = unique_port();
    let node = sdss_node("target", port, &[]);
    node.id();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_broadcast(true).unwrap();
    let oversized = vec![b'x'; 600];
    let malformed: [&[u8]; 7] = [
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
    std::thread::sleep(Duration::from_millis(500));
    let warnings = node.events("warning");
    let malformed_warnings: Vec<_> = warnings
        .iter()
        .filter(|w| w["kind"] == "malformed_datagram")
        .collect();
    // One warning per kind per source in the rate-limit period: 6 kinds (lower-case
    // ON is one, ports 0 and 70000 are both "port"), not 1400.
    assert!(
        (5..=7).contains(&malformed_warnings.len()),
        "expected one warning per kind, got {}:\n{}",
        malformed_warnings.len(),
        node.transcript()
    );
    assert!(
        node.events("discovered").is_empty(),
        "a malformed datagram created a peer"
    );
    // Still alive and still measuring.
    let peer = sdss_node("peer", port, &[]);
    let peer_id = peer.id();
    node.wait_for(
        "a measurement after the burst",
        Duration::from_secs(5),
        |line| line["event"] == "neighbor" && line["id"] == peer_id.as_str(),
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
