//! One lab segment over several simulated hosts: each host is a network namespace
//! with an underlay address (all joined by a bridge), and runs its own `sdss
//! lab-emulator` (in a switch namespace of its own) whose uplink, opened in the
//! host's namespace, carries the segment to the other hosts in VXLAN's format.
//!
//! Root only, and only inside `scripts/test.sh`'s private network namespace: each
//! test skips with a printed reason otherwise (a failure under CI, see
//! `lab_support::sandboxed`). Everything a test makes is deleted on drop, so
//! also when it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sdss::lab::builder::emulator::{Counters, EmulatorSpec, LinkSpec, PortSpec, UplinkSpec};
use sdss::lab::plan::impairment::Impairment;

mod emulator_support;
mod lab_support;

use emulator_support::{in_netns, ip, round_trips, summary, Echo};

/// The sender's half of a cross-host pair (its node's link).
const SENDER: Duration = Duration::from_millis(3);
/// The receiver's half.
const RECEIVER: Duration = Duration::from_millis(5);
/// What the measured one-way delay may exceed `SENDER + RECEIVER` by: half a
/// round trip measured in userspace, on a machine that may be loaded (a CPU
/// hog put the link test's round trips 1.5 ms over each way). Under the
/// shorter half: a link that lost a half is caught by the minimum, one that
/// applied a half twice (3 ms or more each way) still fails this.
const TOLERANCE: Duration = Duration::from_micros(2_500);
const VNI: u32 = 4242;
const VXLAN_PORT: u16 = 4789;
const NODES_PER_HOST: usize = 2;

/// A named namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Self {
        ip(&["netns", "add", &name]);
        let netns = Self(name);
        ip(&["-n", &netns.0, "link", "set", "lo", "up"]);
        netns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One host's emulator, stopped on drop, its last words shown.
struct Daemon {
    child: Child,
    counters: PathBuf,
}

impl Daemon {
    /// The counters it wrote last.
    fn counters(&self) -> Option<Counters> {
        Counters::read_from(&self.counters)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        eprint!("emulator daemon's last words:\n{stderr}");
    }
}

/// Hosts on an underlay, each with an emulator and its nodes. Fields drop in
/// order: the daemons first, then every namespace.
struct Segment {
    daemons: Vec<Daemon>,
    /// `nodes[host][k]`, with address [`node_ip`]`(host, k)`.
    nodes: Vec<Vec<Netns>>,
    switches: Vec<Netns>,
    hosts: Vec<Netns>,
    underlay: Option<Netns>,
    scratch: lab_support::Scratch,
}

/// Host `host`'s underlay address.
fn host_ip(host: usize) -> String {
    format!("10.99.0.{}", host + 1)
}

/// Node `k` of host `host`'s address on the lab's segment.
fn node_ip(host: usize, k: usize) -> String {
    format!("10.98.0.{}", 10 * (host + 1) + k + 1)
}

/// The prefix of every namespace a test tagged `tag` makes.
fn prefix(tag: &str) -> String {
    format!("sdss-uplink-{}-{tag}-", std::process::id())
}

impl Segment {
    /// Builds `hosts` hosts; every node is addressed and every emulator ready.
    /// Built in place, so that a failure halfway still deletes what exists.
    fn new(tag: &str, hosts: usize) -> Self {
        let name = |role: String| format!("{}{role}", prefix(tag));
        let mut segment = Segment {
            daemons: Vec::new(),
            nodes: Vec::new(),
            switches: Vec::new(),
            hosts: Vec::new(),
            underlay: None,
            scratch: lab_support::Scratch::new(&format!("uplink-{tag}")),
        };
        let underlay = segment.underlay.insert(Netns::new(name("u".into())));
        ip(&["-n", &underlay.0, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &underlay.0, "link", "set", "br0", "up"]);
        let underlay = underlay.0.clone();
        for h in 0..hosts {
            let host = Netns::new(name(format!("h{h}")));
            let port = format!("p{h}");
            ip(&[
                "-n", &underlay, "link", "add", &port, "type", "veth", "peer", "name", "ul",
                "netns", &host.0,
            ]);
            ip(&["-n", &underlay, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &host.0,
                "addr",
                "add",
                &format!("{}/24", host_ip(h)),
                "dev",
                "ul",
            ]);
            ip(&["-n", &host.0, "link", "set", "ul", "up"]);
            segment.hosts.push(host);
            segment.switches.push(Netns::new(name(format!("s{h}"))));
            let nodes = (0..NODES_PER_HOST)
                .map(|k| Netns::new(name(format!("h{h}n{k}"))))
                .collect();
            segment.nodes.push(nodes);
        }
        for h in 0..hosts {
            let daemon = segment.start(h, hosts);
            segment.daemons.push(daemon);
        }
        for (h, nodes) in segment.nodes.iter().enumerate() {
            for (k, node) in nodes.iter().enumerate() {
                let cidr = format!("{}/24", node_ip(h, k));
                ip(&["-n", &node.0, "addr", "add", &cidr, "dev", "eth0"]);
            }
        }
        segment
    }

    /// Host `h`'s emulator spec: its nodes, then the other hosts; the sender's
    /// link toward every other host, the receiver's link from each.
    fn spec(&self, h: usize, hosts: usize) -> EmulatorSpec {
        let ports = self.nodes[h]
            .iter()
            .map(|node| PortSpec {
                netns: node.0.clone(),
                ifname: "eth0".to_owned(),
            })
            .collect();
        let remotes: Vec<SocketAddr> = (0..hosts)
            .filter(|other| *other != h)
            .map(|other| format!("{}:{VXLAN_PORT}", host_ip(other)).parse().unwrap())
            .collect();
        let delay = |delay| Impairment {
            delay,
            jitter: Duration::ZERO,
            ..Default::default()
        };
        let mut impairments = Vec::new();
        for local in 0..NODES_PER_HOST {
            for remote in NODES_PER_HOST..NODES_PER_HOST + remotes.len() {
                impairments.push(LinkSpec {
                    from: local,
                    to: remote,
                    impairment: delay(SENDER),
                    then: None,
                });
                impairments.push(LinkSpec {
                    from: remote,
                    to: local,
                    impairment: delay(RECEIVER),
                    then: None,
                });
            }
        }
        let mut spec = EmulatorSpec::new(ports, impairments);
        spec.seed = Some(1);
        spec.uplink = Some(UplinkSpec {
            local: format!("{}:{VXLAN_PORT}", host_ip(h)).parse().unwrap(),
            vni: VNI,
            remotes,
            netns: Some(self.hosts[h].path().display().to_string()),
            nodes: Vec::new(),
        });
        spec
    }

    /// Starts host `h`'s emulator in its switch namespace; returns once it is ready.
    fn start(&self, h: usize, hosts: usize) -> Daemon {
        let spec = self.scratch.0.join(format!("spec-{h}.json"));
        let text = serde_json::to_string_pretty(&self.spec(h, hosts)).unwrap();
        std::fs::write(&spec, text).unwrap();
        let counters = self.scratch.0.join(format!("counters-{h}.json"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.switches[h].0])
            .arg(env!("CARGO_BIN_EXE_sdss"))
            .arg("lab-emulator")
            .arg(&spec)
            .arg("--counters")
            .arg(&counters)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sdss lab-emulator");
        let mut daemon = Daemon { child, counters };
        let stdout = daemon.child.stdout.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let line = line_rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(line.as_deref(), Ok("ready\n"), "host {h}'s emulator");
        daemon
    }

    /// Polls host `h`'s counters file until `done` holds of it, or panics at the deadline.
    fn wait_for_counters(&self, h: usize, what: &str, done: impl Fn(&Counters) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let counters = self.daemons[h].counters();
            if counters.as_ref().is_some_and(&done) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "host {h}: {what}; counters: {counters:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The daemons first: the namespaces go once nothing holds them.
        self.daemons.clear();
    }
}

/// Collects what arrives on UDP `port` inside `netns` until `last` has come and
/// then `linger` has passed (late duplicates would arrive within it), or 5 s.
fn collect(
    netns: &Netns,
    port: u16,
    last: &'static [u8],
    linger: Duration,
) -> (mpsc::Receiver<()>, JoinHandle<Vec<Vec<u8>>>) {
    let (ready, is_ready) = mpsc::channel();
    let thread = in_netns(&netns.path(), move || {
        let socket = UdpSocket::bind(("0.0.0.0", port)).expect("bind receiver");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        ready.send(()).unwrap();
        let mut deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(len) = socket.recv(&mut buffer) {
                got.push(buffer[..len].to_vec());
                if &buffer[..len] == last {
                    deadline = deadline.min(Instant::now() + linger);
                }
            }
        }
        got
    });
    (is_ready, thread)
}

#[test]
fn three_hosts_share_one_segment_with_each_links_delay_and_no_duplicates() {
    if !lab_support::sandboxed(
        "three_hosts_share_one_segment_with_each_links_delay_and_no_duplicates",
    ) {
        return;
    }
    let segment = Segment::new("seg", 3);

    // (a) Host 0's node to host 1's: the sender's link, then the receiver's.
    let echo = Echo::start(&segment.nodes[1][0].path(), &node_ip(1, 0));
    let mut samples = round_trips(&segment.nodes[0][0].path(), &node_ip(1, 0), 30);
    let (min, median, max) = summary(&mut samples);
    let one_way = SENDER + RECEIVER;
    eprintln!("RTT across hosts ({one_way:?} each way): min {min:?} median {median:?} max {max:?}");
    assert!(min >= 2 * one_way, "a frame left early: {min:?}");
    assert!(
        median / 2 <= one_way + TOLERANCE,
        "median one-way {:?}",
        median / 2
    );

    // (b) A broadcast from host 0 reaches every other node once: the other local
    // node, and both nodes of each other host (no host relays another's flood).
    const PORT: u16 = 7788;
    const MESSAGES: [&[u8]; 4] = [b"b0", b"b1", b"b2", b"end"];
    // A duplicate relayed by a third host would come one cross-host delay
    // after the original: waiting ten of them after the last message shows it.
    let linger = 10 * one_way;
    let receivers: Vec<((usize, usize), _)> = [(0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        .into_iter()
        .map(|(h, k)| ((h, k), collect(&segment.nodes[h][k], PORT, b"end", linger)))
        .collect();
    for (_, (ready, _)) in &receivers {
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("receiver ready");
    }
    in_netns(&segment.nodes[0][0].path(), || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_broadcast(true).unwrap();
        for message in MESSAGES {
            socket.send_to(message, ("10.98.0.255", PORT)).unwrap();
        }
    })
    .join()
    .unwrap();
    let expected: Vec<Vec<u8>> = MESSAGES.iter().map(|m| m.to_vec()).collect();
    let mut heard = BTreeMap::new();
    for ((h, k), (_, thread)) in receivers {
        heard.insert((h, k), thread.join().unwrap());
    }
    for ((h, k), got) in &heard {
        let got: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        eprintln!("node {k} of host {h} heard {got:?}");
    }
    for ((h, k), got) in heard {
        assert_eq!(got, expected, "node {k} of host {h}");
    }
    drop(echo);
    drop(segment);
    assert_eq!(
        lab_support::namespaces(&prefix("seg")),
        Vec::<String>::new()
    );
}

/// An Ethernet broadcast frame carrying an IPv4/UDP datagram to
/// 255.255.255.255:`port` with `payload`, as a foreign host's node would send.
fn broadcast_frame(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0x99, 0x01, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&[10, 98, 0, 99, 255, 255, 255, 255]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let checksum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&9999u16.to_be_bytes());
    frame.extend_from_slice(&port.to_be_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]); // No UDP checksum (allowed over IPv4).
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn the_uplink_drops_and_counts_what_is_not_its_segments() {
    if !lab_support::sandboxed("the_uplink_drops_and_counts_what_is_not_its_segments") {
        return;
    }
    let segment = Segment::new("drop", 2);
    const PORT: u16 = 7799;
    let (ready, receiver) = collect(&segment.nodes[0][0], PORT, b"right", Duration::ZERO);
    ready
        .recv_timeout(Duration::from_secs(5))
        .expect("receiver ready");

    // From host 1's underlay address, from an arbitrary source port like a
    // kernel peer's: written by hand, so the format is the standard's, not ours.
    let uplink = format!("{}:{VXLAN_PORT}", host_ip(0));
    in_netns(&segment.hosts[1].path(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let datagram = |flags: u8, vni: u32, payload: &[u8]| {
            let [_, a, b, c] = vni.to_be_bytes();
            let mut datagram = vec![flags, 0, 0, 0, a, b, c, 0];
            datagram.extend_from_slice(&broadcast_frame(PORT, payload));
            datagram
        };
        for bytes in [
            datagram(0x08, VNI + 1, b"wrong VNI"),
            datagram(0x00, VNI, b"no I flag"),
            vec![0x08, 0, 0],
            datagram(0x08, VNI, b"right"),
        ] {
            socket.send_to(&bytes, &uplink).unwrap();
        }
    })
    .join()
    .unwrap();
    // From host 0's own address: not one of its remotes.
    let uplink = format!("{}:{VXLAN_PORT}", host_ip(0));
    let local = format!("{}:0", host_ip(0));
    in_netns(&segment.hosts[0].path(), move || {
        let socket = UdpSocket::bind(&local).unwrap();
        let mut datagram = vec![0x08, 0, 0, 0, 0, 0x10, 0x92, 0];
        datagram.extend_from_slice(&broadcast_frame(PORT, b"stranger"));
        socket.send_to(&datagram, &uplink).unwrap();
    })
    .join()
    .unwrap();

    let got = receiver.join().unwrap();
    let got: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    eprintln!("node 0 of host 0 heard {got:?}");
    // One link, FIFO: a forwarded bad datagram would have come before "right".
    assert_eq!(got, ["right"]);
    segment.wait_for_counters(0, "drops not counted", |counters| {
        counters.uplink.is_some_and(|uplink| {
            uplink.wrong_vni == 1 && uplink.malformed == 2 && uplink.unknown_sender == 1
        })
    });
    let counters = segment.daemons[0].counters().unwrap();
    eprint!("host 0's emulator:\n{counters}");
    // Port 2 is host 1: the good frame counts as received from it.
    assert!(counters.ports[2].received >= 1, "{counters}");
}
