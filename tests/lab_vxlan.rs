//! A lab stretched across two hosts by a kernel VXLAN device
//! (`Kernel::join_segment`): two simulated hosts (namespaces joined by a
//! veth underlay), each with its share of the lab built by sdss's own code
//! (a switch namespace with `br0`, one node), and frames between the nodes,
//! broadcasts included, cross the underlay.
//!
//! This machine's kernel has VXLAN built in (LAB-NOTES said otherwise: it
//! lacks gretap and wireguard, not VXLAN), so both tests run here, and
//! `scripts/vm-netem.sh` runs them again on Debian's kernel. Joining also
//! names the cause on a kernel without VXLAN.

mod lab_support;

use std::fs::File;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lab_support::*;
use nix::sched::{setns, CloneFlags};
use sdss::lab::builder::kernel::{Host, Kernel};
use sdss::lab::builder::vxlan::SegmentError;
use sdss::lab::file::Topology;
use sdss::lab::plan::segment::VXLAN_PORT;
use sdss::lab::plan::{Plan, Segment};
use sdss::lab::progress::Silent;
use tokio_util::sync::CancellationToken;

/// The underlay's addresses of hosts A and B.
const UNDERLAY: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 98, 0, 1), Ipv4Addr::new(10, 98, 0, 2)];

/// The lab's node on each host.
const NODES: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 7, 1), Ipv4Addr::new(198, 18, 7, 2)];

/// Namespaces removed when dropped, whatever the test's outcome.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.iter().rev() {
            let _ = Host.remove_netns(name);
        }
    }
}

/// Creates the namespaces `names` (recorded in `made` for removal).
fn create(made: &mut Namespaces, names: &[String]) -> Vec<File> {
    made.0.extend(names.iter().cloned());
    Host.prepare().unwrap();
    Host.create_netns(names, &mut |_| Ok(())).unwrap()
}

/// One host's share of the lab `lab`: its switch namespace with `br0` and a
/// node at `address`, wired by sdss's build. Returns (plan, switch, node).
fn share(made: &mut Namespaces, lab: &str, address: Ipv4Addr) -> (Plan, File, File) {
    let text = format!(
        "name = \"{lab}\"\nsubnet = \"198.18.7.0/24\"\n[[node]]\nname = \"n\"\naddress = \"{address}\"\n"
    );
    let path = Path::new("lab_vxlan.toml");
    let topology = Topology::parse(path, &text).unwrap();
    let plan = Plan::new(&topology, path);
    let mut files = create(made, &plan.namespaces()).into_iter();
    let (switch, node) = (files.next().unwrap(), files.next().unwrap());
    let progress = Silent;
    Host.wire(
        &plan,
        &switch,
        std::slice::from_ref(&node),
        false,
        &CancellationToken::new(),
        &progress,
    )
    .unwrap();
    (plan, switch, node)
}

/// Runs `f` on a thread that entered the namespace `ns`.
fn inside<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(ns, CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
    })
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}: {status}");
}

/// Whether UDP port 4789 is bound in the calling thread's namespace.
fn vxlan_socket_here() -> bool {
    let udp = std::fs::read_to_string("/proc/thread-self/net/udp").unwrap();
    let port = format!(":{VXLAN_PORT:04X} ");
    udp.lines().skip(1).any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|local| format!("{local} ").ends_with(&port))
    })
}

/// Sends `payload` from the node `from` to `to` until the node `at`, bound to
/// `to`'s port, receives it (ARP and the first flood may take a moment);
/// returns the sender's address as received.
fn crosses(from: &File, at: &File, to: SocketAddrV4, payload: &[u8]) -> Ipv4Addr {
    let receiver = inside(at, || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, to.port())).unwrap()
    });
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sender = inside(from, || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap()
    });
    sender.set_broadcast(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 64];
    loop {
        sender.send_to(payload, to).unwrap();
        match receiver.recv_from(&mut buffer) {
            Ok((n, source)) if &buffer[..n] == payload => match source.ip() {
                std::net::IpAddr::V4(v4) => return v4,
                other => panic!("from {other}"),
            },
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("receiving at {to}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{payload:?} to {to} did not cross within 10 s"
        );
    }
}

#[test]
fn two_hosts_share_a_lab_over_vxlan_unicast_and_broadcast() {
    if !sandboxed("two_hosts_share_a_lab_over_vxlan_unicast_and_broadcast") {
        return;
    }
    let mut made = Namespaces(Vec::new());
    let hosts = create(&mut made, &["sdss-uhost-a".into(), "sdss-uhost-b".into()]);
    // The underlay: a veth between the two hosts.
    ip(&[
        "link",
        "add",
        "u0",
        "netns",
        "sdss-uhost-a",
        "type",
        "veth",
        "peer",
        "u0",
        "netns",
        "sdss-uhost-b",
    ]);
    for (host, address) in ["sdss-uhost-a", "sdss-uhost-b"].iter().zip(UNDERLAY) {
        ip(&[
            "-n",
            host,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "u0",
        ]);
        ip(&["-n", host, "link", "set", "u0", "up"]);
        ip(&["-n", host, "link", "set", "lo", "up"]);
    }

    let a = share(&mut made, "vxa", NODES[0]);
    let b = share(&mut made, "vxb", NODES[1]);
    for (i, (host, (plan, switch, _))) in hosts.iter().zip([&a, &b]).enumerate() {
        let segment = Segment {
            vni: 4242,
            local: UNDERLAY[i],
            remotes: vec![UNDERLAY[1 - i]],
            mtu: Segment::mtu_over(1500),
        };
        // From the host's namespace, as `sdss lab up` runs in it.
        inside(host, || {
            Host.join_segment(switch, &plan.switch_netns, &segment)
        })
        .unwrap_or_else(|e| panic!("joining {}: {e}", plan.switch_netns));
        // The device is in the switch namespace, its socket on the underlay.
        assert!(inside(host, vxlan_socket_here), "no socket on host {i}");
        assert!(!inside(switch, vxlan_socket_here), "a socket in the switch");
    }

    let (node_a, node_b) = (&a.2, &b.2);
    let to_b = SocketAddrV4::new(NODES[1], 40001);
    assert_eq!(crosses(node_a, node_b, to_b, b"a to b"), NODES[0]);
    let to_a = SocketAddrV4::new(NODES[0], 40002);
    assert_eq!(crosses(node_b, node_a, to_a, b"b to a"), NODES[1]);
    let broadcast = SocketAddrV4::new(Ipv4Addr::new(198, 18, 7, 255), 40003);
    assert_eq!(crosses(node_a, node_b, broadcast, b"all of b"), NODES[0]);
    drop(made);
}

#[test]
fn joining_makes_the_device_or_names_a_kernel_without_vxlan() {
    if !sandboxed("joining_makes_the_device_or_names_a_kernel_without_vxlan") {
        return;
    }
    let mut made = Namespaces(Vec::new());
    let (plan, switch, _node) = share(&mut made, "vxnone", NODES[0]);
    let segment = Segment {
        vni: 4243,
        local: UNDERLAY[0],
        remotes: vec![UNDERLAY[1]],
        mtu: 1450,
    };
    match Host.join_segment(&switch, &plan.switch_netns, &segment) {
        // A kernel with VXLAN (the VM's): the device was made in the switch.
        Ok(()) => {
            let links = Command::new("ip")
                .args(["-n", &plan.switch_netns, "-o", "link"])
                .output()
                .unwrap();
            let links = String::from_utf8_lossy(&links.stdout);
            assert!(links.contains("sdss-vx4243"), "{links}");
        }
        Err(SegmentError::NoVxlan) => {}
        Err(other) => panic!("expected the device or NoVxlan, got: {other}"),
    }
}
