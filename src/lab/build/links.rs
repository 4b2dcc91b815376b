//! The lab's links, through rtnetlink: a bridge in the switch namespace, one veth
//! pair per node, the node end moved into the node's namespace and renamed
//! `eth0`, then addresses, links up and a default route.
//!
//! [`wire`] is the whole step. Link creation ([`build_switch`]) is separate
//! from address configuration ([`configure_node`]) so that a backend
//! providing its own `eth0` (the userspace emulator's TAP devices) reuses the
//! second unchanged.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use thiserror::Error;

use tokio_util::sync::CancellationToken;

use crate::lab::build::netns::{self, NetnsError};
use crate::lab::plan::{Plan, BRIDGE_IFNAME, NODE_IFNAME};
use crate::lab::report::progress::Progress;
use crate::lab::LabError;

/// Failures of link operations, each naming the link and its namespace.
#[derive(Debug, Error)]
pub enum LinkError {
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Opening the netlink socket failed.
    #[error("netlink socket in namespace {netns}: {source}")]
    Connect {
        /// The namespace.
        netns: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("{action} {link} in namespace {netns}: {source}")]
    Request {
        /// What was being done.
        action: &'static str,
        /// The link.
        link: String,
        /// The namespace.
        netns: String,
        /// What the kernel said.
        source: Box<rtnetlink::Error>,
    },
    /// A link that should exist does not.
    #[error("link {link} not found in namespace {netns}")]
    Missing {
        /// The link.
        link: String,
        /// The namespace.
        netns: String,
    },
}

/// A netlink connection bound to one namespace.
pub struct Netlink {
    handle: Handle,
    netns: String,
}

impl Netlink {
    /// Opens a netlink socket inside the namespace `ns` (named `name`). Must be
    /// called from within the tokio runtime, which then drives the connection.
    pub fn connect(ns: &File, name: &str) -> Result<Netlink, LinkError> {
        let runtime = tokio::runtime::Handle::current();
        let label = name.to_owned();
        let (connection, handle) = netns::run_in(ns, name, move || {
            let _entered = runtime.enter();
            rtnetlink::new_connection().map(|(connection, handle, _)| (connection, handle))
        })?
        .map_err(|source| LinkError::Connect {
            netns: label,
            source,
        })?;
        tokio::spawn(connection);
        Ok(Netlink {
            handle,
            netns: name.to_owned(),
        })
    }

    fn failed(
        &self,
        action: &'static str,
        link: &str,
    ) -> impl FnOnce(rtnetlink::Error) -> LinkError {
        let link = link.to_owned();
        let netns = self.netns.clone();
        move |source| LinkError::Request {
            action,
            link,
            netns,
            source: Box::new(source),
        }
    }

    /// The index of a link by name.
    pub async fn index(&self, name: &str) -> Result<u32, LinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(self.missing(name)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                Err(self.missing(name))
            }
            Err(e) => Err(self.failed("looking up", name)(e)),
        }
    }

    fn missing(&self, name: &str) -> LinkError {
        LinkError::Missing {
            link: name.to_owned(),
            netns: self.netns.clone(),
        }
    }

    /// The hardware address of a link.
    pub async fn mac(&self, index: u32, name: &str) -> Result<Vec<u8>, LinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(self.failed("reading", name))?
            .ok_or_else(|| self.missing(name))?;
        link.attributes
            .into_iter()
            .find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac),
                _ => None,
            })
            .ok_or_else(|| self.missing(name))
    }

    /// Adds a permanent neighbour (ARP) entry.
    pub async fn add_static_neighbour(
        &self,
        index: u32,
        ip: Ipv4Addr,
        mac: &[u8],
    ) -> Result<(), LinkError> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(self.failed("adding a neighbour entry on", NODE_IFNAME))
    }

    /// Creates a bridge and brings it up.
    pub async fn add_bridge(&self, name: &str) -> Result<(), LinkError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).up().build())
            .execute()
            .await
            .map_err(self.failed("creating bridge", name))
    }

    /// Creates a veth pair.
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), LinkError> {
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .map_err(self.failed("creating veth pair", name))
    }

    /// Attaches a link to a bridge and brings it up.
    pub async fn attach(&self, port: &str, bridge_index: u32) -> Result<(), LinkError> {
        let index = self.index(port).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(self.failed("attaching to the bridge", port))
    }

    /// Moves a link into another namespace.
    pub async fn move_to(&self, name: &str, target: &File) -> Result<(), LinkError> {
        let index = self.index(name).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .setns_by_fd(target.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(self.failed("moving", name))
    }

    /// Renames a (down) link.
    pub async fn rename(&self, from: &str, to: &str) -> Result<u32, LinkError> {
        let index = self.index(from).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(to.to_owned())
                    .build(),
            )
            .execute()
            .await
            .map_err(self.failed("renaming", from))?;
        Ok(index)
    }

    /// Brings a link up.
    pub async fn up(&self, index: u32, name: &str) -> Result<(), LinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(self.failed("bringing up", name))
    }

    /// Adds an IPv4 address (the kernel derives the broadcast address).
    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), LinkError> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(self.failed("adding an address to", name))
    }

    /// Adds `default dev NAME` (scope link): limited broadcasts then leave by the lab link.
    pub async fn add_default_route(&self, index: u32, name: &str) -> Result<(), LinkError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(self.failed("adding a default route via", name))
    }
}

/// Name of the veth end that becomes a node's `eth0`, while it is still in the
/// switch namespace.
pub fn node_end(index: usize) -> String {
    format!("n{index}")
}

/// Creates the bridge and every node's veth pair in the switch namespace, and
/// moves each node end into its node's namespace (`node_ns[i]` for node `i`).
/// `on_node` is told each time a node's link is in place.
pub async fn build_switch(
    switch: &Netlink,
    plan: &Plan,
    node_ns: &[File],
    mut on_node: impl FnMut(),
) -> Result<(), LinkError> {
    switch.add_bridge(BRIDGE_IFNAME).await?;
    let bridge = switch.index(BRIDGE_IFNAME).await?;
    for (index, (node, ns)) in plan.nodes.iter().zip(node_ns).enumerate() {
        let end = node_end(index);
        switch.add_veth(&node.bridge_port, &end).await?;
        switch.attach(&node.bridge_port, bridge).await?;
        switch.move_to(&end, ns).await?;
        on_node();
    }
    Ok(())
}

/// Configures a node's namespace once its lab link is in it (named `link`):
/// renamed to `eth0`, address, up, loopback up, default route on the lab link.
/// Returns the index of `eth0`.
pub async fn configure_node(
    node: &Netlink,
    link: &str,
    address: Ipv4Addr,
    prefix: u8,
) -> Result<u32, LinkError> {
    let index = if link == NODE_IFNAME {
        node.index(link).await?
    } else {
        node.rename(link, NODE_IFNAME).await?
    };
    node.add_address(index, NODE_IFNAME, address, prefix)
        .await?;
    node.up(index, NODE_IFNAME).await?;
    loopback_up(node).await?;
    node.add_default_route(index, NODE_IFNAME).await?;
    Ok(index)
}

/// A configured node namespace: its netlink connection, `eth0`'s index and MAC.
pub struct NodeLink {
    /// Netlink inside the node's namespace.
    pub netlink: Netlink,
    /// Index of its `eth0`.
    pub index: u32,
    /// Its address.
    pub address: Ipv4Addr,
    /// `eth0`'s hardware address.
    pub mac: Vec<u8>,
}

/// Gives every node a permanent ARP entry for every other node.
///
/// Why: the kernel's neighbour table is one for all namespaces, and dynamic
/// entries are capped by `net.ipv4.neigh.default.gc_thresh3` (1024 by default)
/// summed over the whole machine. A lab of n nodes talking to each other needs
/// n(n-1) entries: past ~32 nodes new entries fail ("neighbor table overflow"),
/// and announcements are silently dropped with ENOBUFS. Permanent entries are
/// exempt from that cap, and they also take ARP out of the measured exchanges.
pub async fn add_static_neighbours(
    nodes: &[NodeLink],
    mut on_node: impl FnMut(),
) -> Result<(), LinkError> {
    for node in nodes {
        for peer in nodes.iter().filter(|p| p.address != node.address) {
            node.netlink
                .add_static_neighbour(node.index, peer.address, &peer.mac)
                .await?;
        }
        on_node();
    }
    Ok(())
}

/// Brings loopback up in a namespace (the switch's, which has no address).
pub async fn loopback_up(netlink: &Netlink) -> Result<(), LinkError> {
    let lo = netlink.index("lo").await?;
    netlink.up(lo, "lo").await
}

/// Connects the lab: the bridge and each node's veth (unless `emulated`: the
/// emulator's TAPs are the links, already in the node namespaces), then each
/// node's `eth0` configured and every node's static neighbours.
pub async fn wire(
    plan: &Plan,
    switch: &File,
    nodes: &[File],
    emulated: bool,
    cancel: &CancellationToken,
    progress: &Progress,
) -> Result<(), LabError> {
    let switch_link = Netlink::connect(switch, &plan.switch_netns)?;
    loopback_up(&switch_link).await?;
    let node_link: Vec<String> = if emulated {
        vec![NODE_IFNAME.to_owned(); plan.nodes.len()]
    } else {
        progress.step("creating links", plan.nodes.len() as u64);
        build_switch(&switch_link, plan, nodes, || progress.inc()).await?;
        (0..plan.nodes.len()).map(node_end).collect()
    };
    progress.step("configuring node namespaces", plan.nodes.len() as u64);
    let mut configured = Vec::with_capacity(plan.nodes.len());
    for ((node, file), link) in plan.nodes.iter().zip(nodes).zip(&node_link) {
        if cancel.is_cancelled() {
            return Err(LabError::Cancelled);
        }
        let netlink = Netlink::connect(file, &node.netns)?;
        let index = configure_node(&netlink, link, node.address, plan.subnet.prefix).await?;
        let mac = netlink.mac(index, NODE_IFNAME).await?;
        configured.push(NodeLink {
            netlink,
            index,
            address: node.address,
            mac,
        });
        progress.inc();
    }
    progress.step("adding static neighbour entries", plan.nodes.len() as u64);
    add_static_neighbours(&configured, || progress.inc()).await?;
    Ok(())
}
