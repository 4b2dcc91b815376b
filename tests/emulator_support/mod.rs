//! What the emulator's tests share: running code inside a namespace, a UDP
//! echo server there, and round trips to it.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, failing the test with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The echo server's UDP port.
pub const ECHO_PORT: u16 = 7777;

/// Runs `f` on a thread of its own inside `netns`.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = netns.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// A UDP echo server inside a namespace, stopped on drop.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(netns: &Path, address: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let bind: SocketAddr = format!("{address}:{ECHO_PORT}").parse().unwrap();
        let (ready, is_ready) = mpsc::channel();
        let thread = in_netns(netns, move || {
            let socket = UdpSocket::bind(bind).expect("bind echo");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready.send(()).unwrap();
            let mut buffer = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = socket.recv_from(&mut buffer) {
                    let _ = socket.send_to(&buffer[..len], peer);
                }
            }
        });
        is_ready
            .recv_timeout(Duration::from_secs(5))
            .expect("echo server ready");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Round trips to `server` from inside `netns`, after a warm-up that lets ARP cross
/// the delayed link first (its first exchange pays for it).
pub fn round_trips(netns: &Path, server: &str, count: usize) -> Vec<Duration> {
    let server: SocketAddr = format!("{server}:{ECHO_PORT}").parse().unwrap();
    in_netns(netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("bind client");
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buffer = [0u8; 64];
        let warm =
            (0..20).any(|_| socket.send(b"warm-up").is_ok() && socket.recv(&mut buffer).is_ok());
        if !warm {
            // The kernel's ARP table is shared by every namespace: a big lab running
            // beside this test can fill it (see dmesg: "neighbor table overflow").
            let arp = std::fs::read_to_string("/proc/net/stat/arp_cache").unwrap_or_default();
            let entries = arp.lines().nth(1).and_then(|l| l.split_whitespace().next());
            let limit = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3");
            eprintln!("ARP entries (all namespaces): {entries:?} of gc_thresh3 {limit:?}");
            // What the client's namespace looked like, for the failure report.
            for args in [&["-s", "addr"][..], &["neigh"][..]] {
                if let Ok(out) = Command::new("ip").args(args).output() {
                    eprintln!(
                        "ip {}:\n{}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
        }
        assert!(warm, "no echo through the emulator");
        let mut samples = Vec::new();
        for seq in 0..count as u32 {
            let probe = seq.to_be_bytes();
            let sent = Instant::now();
            socket.send(&probe).unwrap();
            loop {
                let len = socket.recv(&mut buffer).expect("echo reply");
                if buffer[..len] == probe {
                    break;
                }
            }
            samples.push(sent.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        samples
    })
    .join()
    .expect("client thread")
}

pub fn summary(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    (
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
    )
}
