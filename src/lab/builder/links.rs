//! The lab's links: a bridge in the switch namespace and one veth pair per
//! node, made with its node end already in the node's namespace and named
//! `eth0`; then, in each node's namespace, its address, links up, a route
//! for limited broadcasts and a permanent neighbour entry for every other node.
//!
//! Every step is a batch of netlink requests ([`super::rtnl`]): the switch's
//! links in one, each node's configuration in one, the nodes configured by a
//! few threads at once (a socket belongs to the namespace of the thread that
//! opens it). A backend providing its own `eth0` (the userspace emulator's
//! TAP devices) skips the switch's links and reuses the rest unchanged.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::sched::{setns, CloneFlags};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use super::netns::{on_thread_in, NetnsError};
use super::pool;
use super::rtnl::{Create, Rtnl, RtnlError};
use crate::lab::plan::{Plan, BRIDGE_IFNAME, NODE_IFNAME};
use crate::lab::progress::Progress;

/// The index of `lo` in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// Failures of link operations, each naming its namespace.
#[derive(Debug, Error)]
pub enum LinkError {
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Netlink failed or refused a request.
    #[error("in namespace {netns}: {source}")]
    Netlink {
        /// The namespace.
        netns: String,
        /// What failed.
        source: RtnlError,
    },
    /// Ctrl-C or SIGTERM, between two nodes' links.
    #[error("interrupted")]
    Cancelled,
    /// A link that should exist does not.
    #[error("link {link} not found in namespace {netns}")]
    Missing {
        /// The link.
        link: String,
        /// The namespace.
        netns: String,
    },
}

/// A node's `eth0`, as the neighbours of the others need it.
#[derive(Debug, Clone)]
struct NodeEnd {
    index: u32,
    address: Ipv4Addr,
    mac: Vec<u8>,
}

/// Connects the lab: the bridge and each node's veth (unless `emulated`: the
/// emulator's TAPs are the links, already in the node namespaces), then each
/// node's `eth0` configured, with every other node as a permanent neighbour.
/// Blocking: netlink answers within the calls.
pub fn wire(
    plan: &Plan,
    switch: &File,
    nodes: &[File],
    emulated: bool,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<(), LinkError> {
    let in_ns = |netns: &str| {
        let netns = netns.to_owned();
        move |source| LinkError::Netlink { netns, source }
    };
    let switch_side = |rtnl: &mut Rtnl| -> Result<(), RtnlError> {
        rtnl.push(up(LOOPBACK_INDEX), Create::Change, "bringing up lo");
        if emulated {
            return rtnl.flush();
        }
        rtnl.push(
            RouteNetlinkMessage::NewLink(LinkBridge::new(BRIDGE_IFNAME).up().build()),
            Create::New,
            format!("creating bridge {BRIDGE_IFNAME}"),
        );
        let bridge = index_of(rtnl, BRIDGE_IFNAME)?;
        for (node, ns) in plan.nodes.iter().zip(nodes) {
            let peer = LinkMessageBuilder::<LinkUnspec>::new()
                .name(NODE_IFNAME.to_owned())
                .setns_by_fd(ns.as_raw_fd())
                .build();
            let veth = LinkVeth::new(&node.bridge_port, NODE_IFNAME)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .controller(bridge)
                .up()
                .build();
            rtnl.push(
                RouteNetlinkMessage::NewLink(veth),
                Create::New,
                format!("creating veth {} to {}", node.bridge_port, node.netns),
            );
        }
        rtnl.flush()
    };
    if !emulated {
        progress.step("creating links", plan.nodes.len() as u64);
    }
    in_namespace(switch, &plan.switch_netns, switch_side)?;
    if !emulated {
        progress.set(plan.nodes.len() as u64);
    }

    // Each node's eth0 (its index and MAC), then each node configured.
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.netns.as_str()).collect();
    let ends = each_node(nodes, &names, cancel, |i, rtnl| {
        let link = link_of(rtnl, NODE_IFNAME)
            .map_err(in_ns(&plan.nodes[i].netns))?
            .ok_or_else(|| LinkError::Missing {
                link: NODE_IFNAME.to_owned(),
                netns: plan.nodes[i].netns.clone(),
            })?;
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(NodeEnd {
            index: link.header.index,
            address: plan.nodes[i].address,
            mac,
        })
    })?;
    progress.step("configuring node namespaces", plan.nodes.len() as u64);
    let done = AtomicUsize::new(0);
    each_node(nodes, &names, cancel, |i, rtnl| {
        let end = &ends[i];
        rtnl.push(
            RouteNetlinkMessage::NewAddress(
                AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(end.index)
                    .address(end.address, plan.subnet.prefix_len())
                    .build(),
            ),
            Create::New,
            format!("adding {} to {NODE_IFNAME}", end.address),
        );
        let eth0 = LinkUnspec::new_with_index(end.index).up();
        // Across hosts, VXLAN takes 50 bytes of every frame the underlay carries.
        let eth0 = match &plan.segment {
            Some(segment) => eth0.mtu(segment.mtu),
            None => eth0,
        };
        rtnl.push(
            RouteNetlinkMessage::SetLink(eth0.build()),
            Create::Change,
            "bringing up eth0",
        );
        rtnl.push(up(LOOPBACK_INDEX), Create::Change, "bringing up lo");
        // `255.255.255.255/32 dev eth0` (scope link): limited broadcasts leave
        // by the lab link; nothing else has a route, so a datagram to an
        // address outside the lab is refused (ENETUNREACH) where it is sent.
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::BROADCAST, 32)
            .output_interface(end.index)
            .scope(RouteScope::Link)
            .build();
        rtnl.push(
            RouteNetlinkMessage::NewRoute(route),
            Create::New,
            "adding the route for limited broadcasts",
        );
        for peer in ends.iter().filter(|p| p.address != end.address) {
            rtnl.push(
                RouteNetlinkMessage::NewNeighbour(neighbour(end.index, peer)),
                Create::Replace,
                format!("adding neighbour {}", peer.address),
            );
        }
        rtnl.flush().map_err(in_ns(&plan.nodes[i].netns))?;
        progress.set(done.fetch_add(1, Ordering::Relaxed) as u64 + 1);
        Ok(())
    })?;
    Ok(())
}

/// A permanent neighbour entry on `index` for `peer`.
///
/// Why every pair gets one: the kernel's neighbour table is one for all
/// namespaces, and dynamic entries are capped by
/// `net.ipv4.neigh.default.gc_thresh3` (1024 by default) summed over the whole
/// machine. A lab of n nodes talking to each other needs n(n-1) entries: past
/// ~32 nodes new entries fail ("neighbor table overflow"), and announcements
/// are silently dropped with ENOBUFS. Permanent entries are exempt from that
/// cap, and they also take ARP out of the measured exchanges.
fn neighbour(index: u32, peer: &NodeEnd) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message.header.kind = RouteType::Unspec;
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            peer.address,
        )));
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(peer.mac.clone()));
    message
}

fn up(index: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build())
}

/// The link named `name`, if there is one.
fn link_of(rtnl: &mut Rtnl, name: &str) -> Result<Option<LinkMessage>, RtnlError> {
    let query = RouteNetlinkMessage::GetLink(LinkUnspec::new_with_name(name).build());
    match rtnl.get(query, &format!("looking up {name}")) {
        Ok(RouteNetlinkMessage::NewLink(link)) => Ok(Some(link)),
        Ok(other) => Err(RtnlError::Answer(format!("{:?}", other.message_type()))),
        Err(RtnlError::Refused { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub(super) fn index_of(rtnl: &mut Rtnl, name: &str) -> Result<u32, RtnlError> {
    link_of(rtnl, name)?
        .map(|l| l.header.index)
        .ok_or_else(|| RtnlError::Answer(format!("{name} was made but is not there")))
}

/// Runs `f` with a netlink socket in the namespace `ns`, on a thread that entered it.
pub(super) fn in_namespace<T: Send>(
    ns: &File,
    name: &str,
    f: impl FnOnce(&mut Rtnl) -> Result<T, RtnlError> + Send,
) -> Result<T, LinkError> {
    on_thread_in(ns, || Rtnl::open().and_then(|mut rtnl| f(&mut rtnl)))
        .map_err(|source| NetnsError::Sys {
            action: "entering",
            name: name.to_owned(),
            source,
        })?
        .map_err(|source| LinkError::Netlink {
            netns: name.to_owned(),
            source,
        })
}

/// Runs `f(i, socket in node i's namespace)` for every node, on a few threads
/// at once, and returns the results in the nodes' order; stops at the first
/// error or at cancellation.
fn each_node<T: Send>(
    nodes: &[File],
    names: &[&str],
    cancel: &CancellationToken,
    f: impl Fn(usize, &mut Rtnl) -> Result<T, LinkError> + Sync,
) -> Result<Vec<T>, LinkError> {
    let step = |i: usize| -> Result<T, LinkError> {
        if cancel.is_cancelled() {
            return Err(LinkError::Cancelled);
        }
        setns(&nodes[i], CloneFlags::CLONE_NEWNET).map_err(|e| {
            LinkError::from(NetnsError::Sys {
                action: "entering",
                name: names[i].to_owned(),
                source: e.into(),
            })
        })?;
        let mut rtnl = Rtnl::open().map_err(|source| LinkError::Netlink {
            netns: names[i].to_owned(),
            source,
        })?;
        f(i, &mut rtnl)
    };
    pool::all(nodes.len(), pool::cores(), step, |_| LinkError::Cancelled)
}
