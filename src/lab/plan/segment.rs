//! A lab's L2 segment stretched across hosts (issue 13): each host builds its
//! share of the lab, and a VXLAN device on its bridge carries the frames
//! between them, one VNI per lab, unicast to every other host.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::PREFIX;

/// VXLAN's IANA port: every host of a segment sends to it and listens on it.
pub const VXLAN_PORT: u16 = 4789;

/// What VXLAN adds to a frame on an IPv4 underlay: outer IPv4 (20), UDP (8),
/// VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The largest VNI: VXLAN carries 24 bits of it.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// This host's share of the lab's segment: who it is on the underlay and whom
/// its broadcasts must reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The lab's VXLAN network identifier, the same on every host.
    pub vni: u32,
    /// This host's underlay IPv4 address: the tunnel's source.
    pub local: Ipv4Addr,
    /// The other hosts' underlay addresses: each gets a copy of every
    /// broadcast and of every frame to an address not learnt yet.
    pub remotes: Vec<Ipv4Addr>,
    /// The VXLAN device's MTU ([`Segment::mtu_over`] of the underlay's).
    pub mtu: u32,
}

impl Segment {
    /// The MTU a segment can carry over an underlay of `underlay_mtu`
    /// (1450 over Ethernet's 1500).
    pub fn mtu_over(underlay_mtu: u32) -> u32 {
        underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
    }

    /// The VXLAN device's name, `sdss-vx<VNI>` (at most 15 bytes).
    ///
    /// Why not a short fixed name: the device is created from the host's
    /// namespace, and older kernels (Debian 12's 6.1, unlike 6.18) look its
    /// name up there, not in the switch namespace it goes to: a host link of
    /// that name makes the creation fail with EEXIST. sdss's prefix keeps clear of the host's links,
    /// and a VNI is one lab's on a host anyway.
    pub fn ifname(&self) -> String {
        format!("{PREFIX}vx{}", self.vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_name_fits_ifnamsiz_for_every_vni() {
        let segment = Segment {
            vni: MAX_VNI,
            local: Ipv4Addr::new(10, 98, 0, 1),
            remotes: vec![],
            mtu: Segment::mtu_over(1500),
        };
        assert_eq!(segment.ifname(), "sdss-vx16777215");
        assert!(segment.ifname().len() <= 15);
        assert_eq!(segment.mtu, 1450);
    }

    #[test]
    fn a_segment_reads_from_toml_and_refuses_unknown_fields() {
        let text = "vni = 42\nlocal = \"10.98.0.1\"\nremotes = [\"10.98.0.2\"]\nmtu = 1450\n";
        let segment: Segment = toml::from_str(text).unwrap();
        assert_eq!(segment.remotes, [Ipv4Addr::new(10, 98, 0, 2)]);
        assert!(toml::from_str::<Segment>(&format!("{text}port = 1\n")).is_err());
    }
}
