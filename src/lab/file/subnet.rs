//! The lab's subnet: its parsing with messages a lab file's author can act
//! on, what a lab takes from it (host addresses, as `ip` counts them), and the
//! ranges a lab must avoid. The CIDR arithmetic is `ipnet`'s.

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// The subnet a lab gets when its file names none: part of 198.18.0.0/15, which
/// RFC 2544 reserves for benchmarking, so it is unlikely to be anyone's network.
pub const DEFAULT_SUBNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 24);

/// Parses `198.18.0.0/24`, refusing a prefix with host bits set (the author
/// likely meant another network) with the network it would be.
pub fn parse(text: &str) -> Result<Ipv4Net, String> {
    let expected =
        || format!("{text:?} is not a subnet: expected an IPv4 network like 198.18.0.0/24");
    let net: Ipv4Net = text.trim().parse().map_err(|_| expected())?;
    if net.addr() != net.network() {
        return Err(format!(
            "{text:?} has host bits set: expected the network address, {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Reads a subnet as the plan writes it (`"198.18.0.0/24"`), or as builds
/// before ipnet wrote it (`{"addr": "198.18.0.0", "prefix": 24}`), so that
/// `lab down` still reads the state of a lab such a build left up.
pub fn deserialize_either<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Ipv4Net, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(Ipv4Net),
        Parts { addr: Ipv4Addr, prefix: u8 },
    }
    match serde::Deserialize::deserialize(deserializer)? {
        Either::Text(net) => Ok(net),
        Either::Parts { addr, prefix } => {
            Ipv4Net::new(addr, prefix).map_err(serde::de::Error::custom)
        }
    }
}

/// What a lab takes from its subnet.
pub trait LabSubnet {
    /// Usable host addresses: the network and broadcast addresses excluded,
    /// and none in a /31 or /32 (a lab needs its directed broadcast).
    fn host_count(&self) -> u64;

    /// The `n`-th host address (1-based), if it exists.
    fn host(&self, n: u64) -> Option<Ipv4Addr>;

    /// Whether the two networks share any address.
    fn overlaps(&self, other: &Ipv4Net) -> bool;
}

impl LabSubnet for Ipv4Net {
    fn host_count(&self) -> u64 {
        match self.prefix_len() {
            31 | 32 => 0,
            p => (1u64 << (32 - u32::from(p))) - 2,
        }
    }

    fn host(&self, n: u64) -> Option<Ipv4Addr> {
        let n = u32::try_from(n).ok()?;
        (n >= 1 && u64::from(n) <= self.host_count())
            .then(|| Ipv4Addr::from(u32::from(self.network()) + n))
    }

    fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other) || other.contains(self)
    }
}

/// Ranges a lab subnet must stay out of: addresses that mean something special
/// to the kernel or to every host, where a lab would break routing or discovery.
pub(super) const RESERVED: [(Ipv4Net, &str); 5] = [
    (
        Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
        "\"this network\" (0.0.0.0/8)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
        "loopback (127.0.0.0/8)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
        "link-local (169.254.0.0/16)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
        "multicast (224.0.0.0/4)",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
        "reserved/limited broadcast (240.0.0.0/4)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "deserialize_either")]
        subnet: Ipv4Net,
    }

    #[test]
    fn a_subnet_reads_as_text_and_as_older_builds_wrote_it() {
        let net: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        for json in [
            r#"{"subnet": "10.1.0.0/16"}"#,
            r#"{"subnet": {"addr": "10.1.0.0", "prefix": 16}}"#,
        ] {
            let holder: Holder = serde_json::from_str(json).unwrap();
            assert_eq!(holder.subnet, net, "{json}");
        }
        assert!(serde_json::from_str::<Holder>(r#"{"subnet": "10.1.0.0/40"}"#).is_err());
    }
}
