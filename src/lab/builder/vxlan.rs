//! A lab's bridge joined to other hosts (issue 13): a kernel VXLAN device,
//! port of the switch namespace's bridge, sends the lab's frames as UDP to
//! the other hosts of the segment and delivers theirs.
//!
//! The device lives in the switch namespace but its UDP socket in the host's
//! (the underlay): the kernel opens it in the namespace that asked for the
//! device, and keeps it there when the device moves. So the device is created
//! from the host's namespace with the switch namespace's fd (one request; the
//! device is never visible among the host's links), then enslaved, brought
//! up and given its flood list from inside the switch namespace. Checked on
//! Debian's 6.1 in a VM: created so, or created then moved, the socket is
//! the underlay's (`/proc/net/udp` there lists port 4789) and frames cross.
//!
//! Nothing to undo: the device dies with the switch namespace.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan};
use thiserror::Error;

use super::links::{in_namespace, index_of, LinkError};
use super::rtnl::{Create, Rtnl, RtnlError};
use crate::lab::plan::segment::{MAX_VNI, VXLAN_PORT};
use crate::lab::plan::{Segment, BRIDGE_IFNAME};

/// Why a bridge could not be joined to the other hosts.
#[derive(Debug, Error)]
pub enum SegmentError {
    /// The kernel has no VXLAN device type (no `vxlan` module).
    #[error(
        "this kernel has no VXLAN (no vxlan module): the bridge cannot be joined to other \
         hosts by a kernel device; the emulator backend carries the segment itself"
    )]
    NoVxlan,
    /// The VNI does not fit VXLAN's 24 bits.
    #[error("VNI {0} does not fit VXLAN's 24 bits (at most {MAX_VNI})")]
    Vni(u32),
    /// The host has a VXLAN device with this VNI on the port already, or a
    /// link with the device's name.
    #[error(
        "VNI {vni} is taken on this host: a VXLAN device with it on port {VXLAN_PORT}, \
         or a link named {ifname}, exists in the host's namespace"
    )]
    Taken {
        /// The VNI.
        vni: u32,
        /// The device's name.
        ifname: String,
    },
    /// The kernel refused the device for another reason.
    #[error("creating {ifname} from the host's namespace: {source}")]
    Create {
        /// The device's name.
        ifname: String,
        /// What failed.
        source: RtnlError,
    },
    /// Attaching it in the switch namespace failed.
    #[error(transparent)]
    Attach(#[from] LinkError),
}

/// Creates `segment`'s VXLAN device from the calling thread's namespace (the
/// underlay: its UDP socket stays there) into the namespace `switch`, then
/// there enslaves it to the bridge, brings it up and adds one flood entry per
/// remote host. Blocking: netlink answers within the calls.
pub fn join(switch: &File, switch_netns: &str, segment: &Segment) -> Result<(), SegmentError> {
    if segment.vni > MAX_VNI {
        return Err(SegmentError::Vni(segment.vni));
    }
    let ifname = segment.ifname();
    let mut rtnl = Rtnl::open().map_err(|source| SegmentError::Create {
        ifname: ifname.clone(),
        source,
    })?;
    rtnl.push(
        create(segment, switch.as_raw_fd()),
        Create::New,
        format!("creating {ifname}"),
    );
    rtnl.flush().map_err(|e| refused(e, segment))?;
    in_namespace(switch, switch_netns, |rtnl| {
        let index = index_of(rtnl, &ifname)?;
        let bridge = index_of(rtnl, BRIDGE_IFNAME)?;
        rtnl.push(
            attach(index, bridge),
            Create::Change,
            format!("attaching {ifname} to {BRIDGE_IFNAME}"),
        );
        for remote in &segment.remotes {
            rtnl.push(
                RouteNetlinkMessage::NewNeighbour(flood_entry(index, *remote)),
                Create::Append,
                format!("adding {remote} to the flood list of {ifname}"),
            );
        }
        rtnl.flush()?;
        checksum_in_software(&ifname).map_err(|source| RtnlError::Refused {
            what: format!("turning off checksum offload on {ifname}"),
            source,
        })
    })?;
    Ok(())
}

/// Has the kernel finish each frame's checksums before the device
/// encapsulates it (`ethtool -K DEV tx off`). With offload, a frame from a
/// node leaves with its TCP/UDP checksum still to be filled by the underlay's
/// NIC, which a virtual underlay (veth, virtio) never does: a kernel VXLAN
/// peer takes the frame with its offload state, but a host on the link
/// emulator reads the datagram's bytes, and its nodes dropped every frame
/// from kernel hosts as corrupt. Costs one checksum per frame.
fn checksum_in_software(ifname: &str) -> std::io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    crate::sys::ethtool_set(&socket, ifname, ETHTOOL_STXCSUM, 0)
}

/// The device: `ip link add NAME netns SWITCH mtu MTU type vxlan id VNI
/// local LOCAL dstport 4789 learning`. No `remote`: the flood entries name
/// every other host (head-end replication), and learning finds each node's.
fn create(segment: &Segment, switch: RawFd) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewLink(
        LinkVxlan::new(&segment.ifname(), segment.vni)
            .local(segment.local)
            .port(VXLAN_PORT)
            .learning(true)
            .mtu(segment.mtu)
            .setns_by_fd(switch)
            .build(),
    )
}

/// `ip link set INDEX master BRIDGE up`.
fn attach(index: u32, bridge: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::SetLink(
        LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build(),
    )
}

/// `bridge fdb append 00:00:00:00:00:00 dev INDEX dst REMOTE`: the device's
/// own (NTF_SELF) entry for unknown and broadcast destinations; one per
/// remote, appended, so each such frame goes to every other host.
fn flood_entry(index: u32, remote: Ipv4Addr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    message.header.flags = NeighbourFlags::Own;
    message.header.kind = RouteType::Unspec;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            remote,
        )));
    message
}

/// The cause of a refused creation.
fn refused(error: RtnlError, segment: &Segment) -> SegmentError {
    let errno = match &error {
        RtnlError::Refused { source, .. } => source.raw_os_error(),
        _ => None,
    };
    match errno {
        // "Unknown device type": no such link kind, even after the kernel's
        // module request.
        Some(libc::EOPNOTSUPP) => SegmentError::NoVxlan,
        Some(libc::EEXIST) => SegmentError::Taken {
            vni: segment.vni,
            ifname: segment.ifname(),
        },
        _ => SegmentError::Create {
            ifname: segment.ifname(),
            source: error,
        },
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
    use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo};

    use std::io;

    use super::super::rtnl::request;
    use super::*;

    fn segment() -> Segment {
        Segment {
            vni: 42,
            local: Ipv4Addr::new(10, 98, 0, 1),
            remotes: vec![Ipv4Addr::new(10, 98, 0, 2), Ipv4Addr::new(10, 98, 0, 3)],
            mtu: Segment::mtu_over(1500),
        }
    }

    /// The bytes the kernel receives for `message`.
    fn bytes(message: RouteNetlinkMessage, create: Create) -> Vec<u8> {
        let message = request(message, create.flags(), 7);
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_device_is_vxlan_with_the_segments_vni_local_port_and_mtu_made_in_the_switch() {
        let RouteNetlinkMessage::NewLink(link) = create(&segment(), 9) else {
            panic!("not a new link");
        };
        let attrs = &link.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("sdss-vx42".to_owned())));
        assert!(attrs.contains(&LinkAttribute::Mtu(1450)));
        assert!(attrs.contains(&LinkAttribute::NetNsFd(9)));
        let info = attrs
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(info) => Some(info),
                _ => None,
            })
            .expect("link info");
        assert!(info.contains(&LinkInfo::Kind(InfoKind::Vxlan)));
        let Some(LinkInfo::Data(InfoData::Vxlan(data))) =
            info.iter().find(|i| matches!(i, LinkInfo::Data(_)))
        else {
            panic!("no vxlan data in {info:?}");
        };
        assert_eq!(
            data,
            &[
                InfoVxlan::Id(42),
                InfoVxlan::Local(Ipv4Addr::new(10, 98, 0, 1)),
                InfoVxlan::Port(4789),
                InfoVxlan::Learning(true),
            ]
        );
        // Not brought up here: it is, once it is the bridge's port.
        assert_eq!(link.header.flags.bits() & libc::IFF_UP as u32, 0);
    }

    #[test]
    fn the_device_request_carries_its_attributes_as_the_kernel_reads_them() {
        let bytes = bytes(create(&segment(), 9), Create::New);
        // RTM_NEWLINK, create exclusively.
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), libc::RTM_NEWLINK);
        // IFLA_VXLAN_ID (1): 42, host order; IFLA_VXLAN_PORT (15): 4789, network order;
        // IFLA_VXLAN_LOCAL (4): 10.98.0.1; IFLA_NET_NS_FD (28): 9; IFLA_MTU (4): 1450.
        assert!(contains(&bytes, &[8, 0, 1, 0, 42, 0, 0, 0]));
        assert!(contains(&bytes, &[6, 0, 15, 0, 0x12, 0xb5]));
        assert!(contains(&bytes, &[8, 0, 4, 0, 10, 98, 0, 1]));
        assert!(contains(&bytes, &[8, 0, 28, 0, 9, 0, 0, 0]));
        assert!(contains(&bytes, &[8, 0, 4, 0, 0xaa, 0x05, 0, 0]));
        assert!(contains(&bytes, b"vxlan\0"));
    }

    #[test]
    fn attaching_sets_the_bridge_as_controller_and_the_link_up() {
        let RouteNetlinkMessage::SetLink(link) = attach(5, 2) else {
            panic!("not a set link");
        };
        assert_eq!(link.header.index, 5);
        assert!(link.attributes.contains(&LinkAttribute::Controller(2)));
        assert_ne!(link.header.flags.bits() & libc::IFF_UP as u32, 0);
        assert_ne!(link.header.change_mask.bits() & libc::IFF_UP as u32, 0);
    }

    #[test]
    fn a_flood_entry_is_bridge_fdb_append_of_all_zeros_to_the_remote() {
        let entry = flood_entry(5, Ipv4Addr::new(10, 98, 0, 2));
        let bytes = bytes(RouteNetlinkMessage::NewNeighbour(entry), Create::Append);
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), libc::RTM_NEWNEIGH);
        assert_eq!(
            u16::from_ne_bytes([bytes[6], bytes[7]]),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
        );
        // struct ndmsg: AF_BRIDGE, ifindex 5, NUD_PERMANENT, NTF_SELF, type 0.
        let mut ndmsg = vec![libc::AF_BRIDGE as u8, 0, 0, 0];
        ndmsg.extend(5u32.to_ne_bytes());
        ndmsg.extend(libc::NUD_PERMANENT.to_ne_bytes());
        ndmsg.extend([libc::NTF_SELF, 0]);
        assert_eq!(&bytes[16..28], &ndmsg[..]);
        // NDA_LLADDR (2): six zeros; NDA_DST (1): the remote.
        assert!(contains(&bytes[28..], &[10, 0, 2, 0, 0, 0, 0, 0, 0, 0]));
        assert!(contains(&bytes[28..], &[8, 0, 1, 0, 10, 98, 0, 2]));
    }

    #[test]
    fn a_refusal_names_its_cause() {
        let refusal = |errno| RtnlError::Refused {
            what: "creating sdss-vx42".to_owned(),
            source: io::Error::from_raw_os_error(errno),
        };
        let no = refused(refusal(libc::EOPNOTSUPP), &segment());
        assert!(matches!(no, SegmentError::NoVxlan));
        assert!(no.to_string().contains("emulator backend"), "{no}");
        assert!(matches!(
            refused(refusal(libc::EEXIST), &segment()),
            SegmentError::Taken { vni: 42, .. }
        ));
        assert!(matches!(
            refused(refusal(libc::EPERM), &segment()),
            SegmentError::Create { .. }
        ));
    }
}
