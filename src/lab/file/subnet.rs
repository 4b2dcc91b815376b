//! The lab's subnet: CIDR parsing and arithmetic, and the ranges a lab must avoid.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The subnet a lab gets when its file names none: part of 198.18.0.0/15, which
/// RFC 2544 reserves for benchmarking, so it is unlikely to be anyone's network.
pub const DEFAULT_SUBNET: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(198, 18, 0, 0),
    prefix: 24,
};

/// An IPv4 network in CIDR form (`198.18.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Net {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Netmask as an integer.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }

    /// The directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Number of usable host addresses (network and broadcast excluded).
    pub fn host_count(&self) -> u64 {
        match self.prefix {
            32 => 0,
            31 => 0,
            p => (1u64 << (32 - u32::from(p))) - 2,
        }
    }

    /// The `n`-th host address (1-based), if it exists.
    pub fn host(&self, n: u64) -> Option<Ipv4Addr> {
        (n >= 1 && n <= self.host_count()).then(|| Ipv4Addr::from(u32::from(self.addr) + n as u32))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected =
            || format!("{text:?} is not a subnet: expected an IPv4 network like 198.18.0.0/24");
        let (addr, prefix) = text.split_once('/').ok_or_else(expected)?;
        let addr: Ipv4Addr = addr.trim().parse().map_err(|_| expected())?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| expected())?;
        if prefix > 32 {
            return Err(expected());
        }
        let net = Ipv4Net { addr, prefix };
        let network = Ipv4Addr::from(u32::from(addr) & net.mask());
        if network != addr {
            return Err(format!(
                "{text:?} has host bits set: expected the network address, {network}/{prefix}"
            ));
        }
        Ok(net)
    }
}

/// Ranges a lab subnet must stay out of: addresses that mean something special
/// to the kernel or to every host, where a lab would break routing or discovery.
pub(super) const RESERVED: [(Ipv4Net, &str); 5] = [
    (
        Ipv4Net {
            addr: Ipv4Addr::new(0, 0, 0, 0),
            prefix: 8,
        },
        "\"this network\" (0.0.0.0/8)",
    ),
    (
        Ipv4Net {
            addr: Ipv4Addr::new(127, 0, 0, 0),
            prefix: 8,
        },
        "loopback (127.0.0.0/8)",
    ),
    (
        Ipv4Net {
            addr: Ipv4Addr::new(169, 254, 0, 0),
            prefix: 16,
        },
        "link-local (169.254.0.0/16)",
    ),
    (
        Ipv4Net {
            addr: Ipv4Addr::new(224, 0, 0, 0),
            prefix: 4,
        },
        "multicast (224.0.0.0/4)",
    ),
    (
        Ipv4Net {
            addr: Ipv4Addr::new(240, 0, 0, 0),
            prefix: 4,
        },
        "reserved/limited broadcast (240.0.0.0/4)",
    ),
];
