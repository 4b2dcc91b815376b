//! A node's stdout is a pipe like any other: a reader that goes away ends the
//! node (exit 0), and one that stops reading stalls neither the node, nor its
//! memory, nor its shutdown.

#![deny(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{unique_port, LOOPBACK_BROADCAST};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `sdss node --json` on loopback whose stdout the test holds, read or not.
fn node(port: u16, extra: &[&str]) -> (Child, ChildStdout) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdss"))
        .args(["node", "--json", "--destination", LOOPBACK_BROADCAST])
        .args(["--broadcast-port", &port.to_string(), "--interval", "200ms"])
        .args(extra)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start sdss node");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, stdout)
}

/// Waits for `child` to exit; kills it and fails after `limit`.
fn exit_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the node") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node did not exit within {limit:?} {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Announcements of one fake ID, each printed by a `--verbose` node as a `heard` line.
fn announce(port: u16, count: u32) {
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_broadcast(true).unwrap();
    for i in 0..count {
        let _ = sender.send_to(b"fa11fa11 ON 9", (LOOPBACK_BROADCAST, port));
        if i % 200 == 199 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_reader_that_goes_away_ends_an_idle_node_with_exit_0() {
    let (mut child, stdout) = node(unique_port(), &[]);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert!(first.contains(r#""event":"started""#), "{first}");
    // The reader is dropped here, as `head -1` exits; the node has nothing more
    // to say (no peers), so it must notice without writing.
    let status = exit_within(&mut child, Duration::from_secs(5), "after its reader left");
    assert!(status.success(), "{status}");
}

#[test]
fn a_stalled_reader_costs_bounded_memory_and_sigterm_still_ends_the_node() {
    let port = unique_port();
    let (mut child, stdout) = node(port, &["--verbose"]);
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(&child);
    // Never read: 40,000 `heard` lines fill the pipe, then the queue.
    announce(port, 40_000);
    let stalled = rss_kib(&child);
    assert!(
        stalled < idle + 16 * 1024,
        "RSS grew from {idle} KiB to {stalled} KiB behind a stalled reader"
    );
    terminate(&child);
    let status = exit_within(&mut child, Duration::from_secs(5), "after SIGTERM");
    assert!(status.success(), "{status}");
    drop(stdout);
}

#[test]
fn events_left_out_behind_a_stalled_reader_are_counted_once_it_reads() {
    let port = unique_port();
    let (mut child, stdout) = node(port, &["--verbose"]);
    announce(port, 40_000);
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let dropped = loop {
        line.clear();
        assert!(Instant::now() < deadline, "no events_dropped warning");
        assert_ne!(reader.read_line(&mut line).unwrap(), 0, "stdout closed");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        if value["kind"] == "events_dropped" {
            break value["suppressed"].as_u64().unwrap();
        }
    };
    assert!(dropped > 0);
    terminate(&child);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains(r#""event":"stopped""#), "{rest}");
    exit_within(&mut child, Duration::from_secs(5), "after SIGTERM");
}

/// SIGTERM, as a service manager stops a node.
fn terminate(child: &Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
}
