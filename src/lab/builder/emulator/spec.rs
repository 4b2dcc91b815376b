//! What the lab tells the emulator: which namespaces to join and what each ordered
//! pair of ports does to its frames. Written by the lab as JSON into its state dir.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use super::path::Stages;
use super::vxlan;
use crate::lab::plan::impairment::Impairment;

/// Frames a link holds by default before it drops new ones: enough for a 25 ms link
/// at a few thousand frames per second, small enough that a flood cannot eat memory.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

/// Longest interface name the kernel accepts (IFNAMSIZ minus the NUL).
const MAX_IFNAME_LEN: usize = 15;

/// The emulator's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorSpec {
    /// One TAP device per port; a port's index is its identity in `impairments`.
    pub ports: Vec<PortSpec>,
    /// The segment's extension to other hosts; their ports follow the TAPs'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkSpec>,
    /// What each listed ordered pair does; unlisted pairs get `default`.
    #[serde(default)]
    pub impairments: Vec<LinkSpec>,
    /// The impairment of every pair not listed in `impairments`.
    #[serde(default)]
    pub default: Impairment,
    /// Let jitter reorder frames of one link (netem's behaviour); off keeps FIFO per link.
    #[serde(default)]
    pub reorder: bool,
    /// Frames one link may hold; beyond it new frames are dropped and counted.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Run the emulator's thread SCHED_FIFO (best effort), so that a busy machine
    /// does not make frames late.
    #[serde(default = "default_realtime")]
    pub realtime: bool,
    /// Seed of the jitter and loss generator, for reproducible runs; random if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn default_queue_limit() -> usize {
    DEFAULT_QUEUE_LIMIT
}

fn default_realtime() -> bool {
    true
}

fn default_ifname() -> String {
    "eth0".to_owned()
}

/// Where one port's TAP device lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// A namespace name under `/run/netns`, or an absolute path to a namespace file
    /// (`/proc/PID/ns/net`). Never the emulator's own namespace.
    pub netns: String,
    /// Name of the TAP inside that namespace.
    #[serde(default = "default_ifname")]
    pub ifname: String,
}

impl PortSpec {
    /// The namespace file to `setns` into.
    pub fn netns_path(&self) -> PathBuf {
        netns_path(&self.netns)
    }
}

/// The lab's segment stretched to other hosts over VXLAN: every other host's
/// uplink (an emulator's, or a kernel `vxlan` device) is one port of the switch.
/// With `n` TAP ports and `h` remotes, remote `r` is port `n + r` in
/// `impairments`: `i -> n + r` is what a frame from `i` to that host gets
/// (the sender's link: ARP, broadcasts), `n + r -> j` what a frame from it to
/// `j` gets (the receiver's half of a cross-host pair with per-node links,
/// nothing in per-pair mode). Remote node `k` is column `n + h + k`: `i -> n +
/// h + k` is what an IPv4 frame from `i` to that node's address gets on its way
/// to any host (the pair, in per-pair mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkSpec {
    /// The UDP address to bind; without a port, VXLAN's 4789.
    #[serde(deserialize_with = "endpoint")]
    pub local: SocketAddr,
    /// The lab's VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The other hosts' uplinks (without a port, 4789); datagrams are accepted
    /// from any source port of their addresses, as a kernel peer hashes it.
    #[serde(default, deserialize_with = "endpoints")]
    pub remotes: Vec<SocketAddr>,
    /// Where `local` lives: a namespace name under `/run/netns` or an absolute
    /// path (`/proc/PID/ns/net`); absent, the emulator's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The lab's nodes on the other hosts, by address: matrix columns after
    /// the ports', so a frame to one can take its ordered pair here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Ipv4Addr>,
}

impl UplinkSpec {
    /// The namespace file to open the socket in, if not the emulator's own.
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns.as_deref().map(netns_path)
    }

    /// What [`EmulatorSpec::validate`] checks of the uplink.
    fn validate(&self) -> Result<(), SpecError> {
        if self.vni > vxlan::MAX_VNI {
            return Err(SpecError::Vni(self.vni));
        }
        if let Some(netns) = &self.netns {
            if !netns_ok(netns) {
                return Err(SpecError::UplinkNetns(netns.clone()));
            }
        }
        if self.local.port() == 0 {
            return Err(SpecError::ZeroPort(self.local));
        }
        for (index, &remote) in self.remotes.iter().enumerate() {
            if remote.port() == 0 {
                return Err(SpecError::ZeroPort(remote));
            }
            if remote.is_ipv4() != self.local.is_ipv4() {
                return Err(SpecError::Family {
                    local: self.local,
                    remote,
                });
            }
            if remote == self.local || self.remotes[..index].contains(&remote) {
                return Err(SpecError::Remote(remote));
            }
        }
        for (index, node) in self.nodes.iter().enumerate() {
            if self.nodes[..index].contains(node) {
                return Err(SpecError::RemoteNode(*node));
            }
        }
        Ok(())
    }
}

/// An address with an optional port ("10.0.0.2" means "10.0.0.2:4789").
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        let ip: IpAddr = text.parse().ok()?;
        Some(SocketAddr::new(ip, vxlan::DEFAULT_PORT))
    })
}

fn endpoint<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_endpoint(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an address[:port]")))
}

fn endpoints<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| {
            parse_endpoint(text).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an address[:port]"))
            })
        })
        .collect()
}

fn netns_path(netns: &str) -> PathBuf {
    if netns.starts_with('/') {
        PathBuf::from(netns)
    } else {
        Path::new("/run/netns").join(netns)
    }
}

/// A namespace name under `/run/netns` or an absolute path.
fn netns_ok(netns: &str) -> bool {
    if netns.starts_with('/') {
        netns.len() > 1
    } else {
        !netns.is_empty() && !netns.contains('/') && netns != "." && netns != ".."
    }
}

/// The impairment of frames going from port `from` to port `to`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Index of the sending port.
    pub from: usize,
    /// Index of the receiving port.
    pub to: usize,
    /// The one-way delay, jitter and loss the lab computed for this pair (its
    /// first stage, when it has a second).
    pub impairment: Impairment,
    /// A second stage every copy the first lets through crosses in turn
    /// ([`Stages`]); absent, the pair is one stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Impairment>,
}

impl LinkSpec {
    /// The pair's stages.
    pub fn stages(&self) -> Stages {
        Stages {
            first: self.impairment,
            then: self.then,
        }
    }
}

/// Why a spec cannot be used. Checked before anything is created.
#[derive(Debug, Error)]
pub enum SpecError {
    /// Not JSON, or not this schema (the message names line and column).
    #[error("emulator spec is not valid JSON of the expected shape")]
    Json(#[from] serde_json::Error),
    /// Nothing to connect.
    #[error("emulator spec has no ports")]
    NoPorts,
    /// A port with an empty namespace, a relative path, or a name with a slash.
    #[error(
        "port {index}: {netns:?} is not a namespace name under /run/netns or an absolute path"
    )]
    Netns {
        /// Port index.
        index: usize,
        /// What the spec said.
        netns: String,
    },
    /// An interface name the kernel would refuse.
    #[error("port {index}: {ifname:?} is not a valid interface name (1 to 15 characters, no '/', ':' or whitespace)")]
    Ifname {
        /// Port index.
        index: usize,
        /// What the spec said.
        ifname: String,
    },
    /// Two ports for the same interface of the same namespace.
    #[error("ports {first} and {second} both name {ifname} in {netns}")]
    DuplicatePort {
        /// Earlier port index.
        first: usize,
        /// Later port index.
        second: usize,
        /// The namespace.
        netns: String,
        /// The interface.
        ifname: String,
    },
    /// A pair naming a port (or a remote node's column) that does not exist.
    #[error("impairment {from}->{to}: there are only {ports} ports and {columns} columns")]
    PortOutOfRange {
        /// Sending port.
        from: usize,
        /// Receiving port or remote node's column.
        to: usize,
        /// Number of ports.
        ports: usize,
        /// Number of columns: the ports, then the remote nodes.
        columns: usize,
    },
    /// A port paired with itself: frames never go back where they came from.
    #[error("impairment {port}->{port}: a port does not send to itself")]
    SelfLink {
        /// The port.
        port: usize,
    },
    /// The same pair listed twice.
    #[error("impairment {from}->{to} is listed twice")]
    DuplicateLink {
        /// Sending port.
        from: usize,
        /// Receiving port.
        to: usize,
    },
    /// A loss outside `0.0..=1.0` (`None` for the default impairment).
    #[error("impairment {}: loss {loss} is not in 0..=1", pair.map_or("default".to_owned(), |(f, t)| format!("{f}->{t}")))]
    Loss {
        /// The pair, or `None` for the default.
        pair: Option<(usize, usize)>,
        /// What the spec said.
        loss: f64,
    },
    /// A queue that holds nothing would drop every frame.
    #[error("queue_limit must be at least 1")]
    QueueLimit,
    /// A VNI wider than VXLAN's 24 bits.
    #[error("uplink: VNI {0} does not fit in 24 bits")]
    Vni(u32),
    /// A remote listed twice, or equal to the local address.
    #[error("uplink: remote {0} is listed twice or is the local address")]
    Remote(SocketAddr),
    /// A remote of another address family than the local address, which the
    /// socket cannot reach.
    #[error("uplink: remote {remote} is not of the local address {local}'s family")]
    Family {
        /// The local address.
        local: SocketAddr,
        /// The remote.
        remote: SocketAddr,
    },
    /// A remote node listed twice: a frame to it would have two pairs.
    #[error("uplink: node {0} is listed twice")]
    RemoteNode(Ipv4Addr),
    /// Port 0: a peer could not address it.
    #[error("uplink: {0} has port 0")]
    ZeroPort(SocketAddr),
    /// An uplink namespace that is neither a name nor an absolute path.
    #[error("uplink: {0:?} is not a namespace name under /run/netns or an absolute path")]
    UplinkNetns(String),
}

impl EmulatorSpec {
    /// These ports and impairments, every other setting as a spec file that
    /// leaves it out would have it.
    pub fn new(ports: Vec<PortSpec>, impairments: Vec<LinkSpec>) -> Self {
        EmulatorSpec {
            ports,
            uplink: None,
            impairments,
            default: Impairment::default(),
            reorder: false,
            queue_limit: default_queue_limit(),
            realtime: default_realtime(),
            seed: None,
        }
    }

    /// Parses and validates a spec.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let spec: Self = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything that can be checked without touching the kernel.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.ports.is_empty() {
            return Err(SpecError::NoPorts);
        }
        for (index, port) in self.ports.iter().enumerate() {
            if !netns_ok(&port.netns) {
                return Err(SpecError::Netns {
                    index,
                    netns: port.netns.clone(),
                });
            }
            let ifname_ok = !port.ifname.is_empty()
                && port.ifname.len() <= MAX_IFNAME_LEN
                && port.ifname != "."
                && port.ifname != ".."
                && !port
                    .ifname
                    .chars()
                    .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
            if !ifname_ok {
                return Err(SpecError::Ifname {
                    index,
                    ifname: port.ifname.clone(),
                });
            }
            if let Some(first) = self.ports[..index].iter().position(|other| other == port) {
                return Err(SpecError::DuplicatePort {
                    first,
                    second: index,
                    netns: port.netns.clone(),
                    ifname: port.ifname.clone(),
                });
            }
        }
        if let Some(uplink) = &self.uplink {
            uplink.validate()?;
        }
        check_loss(None, self.default.loss.mean())?;
        let (ports, columns) = (self.port_count(), self.column_count());
        let mut seen = vec![false; ports * columns];
        for link in &self.impairments {
            let (from, to) = (link.from, link.to);
            if from >= ports || to >= columns {
                return Err(SpecError::PortOutOfRange {
                    from,
                    to,
                    ports,
                    columns,
                });
            }
            if from == to {
                return Err(SpecError::SelfLink { port: from });
            }
            let slot = &mut seen[from * columns + to];
            if *slot {
                return Err(SpecError::DuplicateLink { from, to });
            }
            *slot = true;
            check_loss(Some((from, to)), link.impairment.loss.mean())?;
            if let Some(then) = &link.then {
                check_loss(Some((from, to)), then.loss.mean())?;
            }
        }
        if self.queue_limit == 0 {
            return Err(SpecError::QueueLimit);
        }
        Ok(())
    }

    /// Ports of the switch: the TAPs, then the uplink's remotes.
    pub fn port_count(&self) -> usize {
        self.ports.len() + self.uplink.as_ref().map_or(0, |u| u.remotes.len())
    }

    /// Columns of the matrix: the ports, then the uplink's remote nodes.
    pub fn column_count(&self) -> usize {
        self.port_count() + self.remote_nodes().len()
    }

    /// The addresses of the remote nodes' columns.
    pub fn remote_nodes(&self) -> &[Ipv4Addr] {
        self.uplink.as_ref().map_or(&[], |u| u.nodes.as_slice())
    }

    /// The stages of every ordered pair, row `from`, column `to` (a port,
    /// or after the ports a remote node).
    pub fn matrix(&self) -> Vec<Vec<Stages>> {
        let (ports, columns) = (self.port_count(), self.column_count());
        let mut matrix = vec![vec![Stages::from(self.default); columns]; ports];
        for link in &self.impairments {
            if let Some(cell) = matrix
                .get_mut(link.from)
                .and_then(|row| row.get_mut(link.to))
            {
                *cell = link.stages();
            }
        }
        matrix
    }
}

fn check_loss(pair: Option<(usize, usize)>, loss: f64) -> Result<(), SpecError> {
    if (0.0..=1.0).contains(&loss) {
        Ok(())
    } else {
        Err(SpecError::Loss { pair, loss })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TWO_PORTS: &str = r#"{
        "ports": [{"netns": "a", "ifname": "eth0"}, {"netns": "b"}],
        "impairments": [
            {"from": 0, "to": 1, "impairment": {"delay": "25ms", "jitter": "0", "loss": 0.0}}
        ],
        "default": {"delay": "1ms", "jitter": "0", "loss": 0.5}
    }"#;

    #[test]
    fn parses_defaults_and_builds_the_matrix() {
        let spec = EmulatorSpec::from_json(TWO_PORTS).unwrap();
        assert_eq!(spec.ports[1].ifname, "eth0");
        assert_eq!(spec.queue_limit, DEFAULT_QUEUE_LIMIT);
        assert!(!spec.reorder);
        assert!(spec.realtime);
        let matrix = spec.matrix();
        assert_eq!(matrix[0][1].first.delay, Duration::from_millis(25));
        assert_eq!(matrix[1][0].first.delay, Duration::from_millis(1));
        assert_eq!(matrix[1][0].first.loss.mean(), 0.5);
        assert!(matrix.iter().flatten().all(|cell| cell.then.is_none()));
        assert_eq!(spec.ports[0].netns_path(), Path::new("/run/netns/a"));
    }

    #[test]
    fn round_trips_through_json() {
        let spec = EmulatorSpec::from_json(TWO_PORTS).unwrap();
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(EmulatorSpec::from_json(&text).unwrap(), spec);
    }

    #[test]
    fn a_second_stage_round_trips_and_a_spec_without_one_still_parses() {
        let spec = EmulatorSpec::from_json(TWO_PORTS).unwrap();
        assert_eq!(spec.impairments[0].then, None, "an old spec: one stage");
        let text = serde_json::to_string(&spec).unwrap();
        assert!(!text.contains("then"), "{text}");
        let two = TWO_PORTS.replace(
            r#""loss": 0.0}}"#,
            r#""loss": 0.0}, "then": {"delay": "7ms", "jitter": "0", "loss": 0.25}}"#,
        );
        let spec = EmulatorSpec::from_json(&two).unwrap();
        let then = spec.impairments[0].then.expect("a second stage");
        assert_eq!(then.delay, Duration::from_millis(7));
        assert_eq!(then.loss.mean(), 0.25);
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(EmulatorSpec::from_json(&text).unwrap(), spec);
        let matrix = spec.matrix();
        assert_eq!(matrix[0][1].then, Some(then));
        assert_eq!(matrix[1][0].then, None);
        let bad = two.replace("0.25", "1.5");
        assert!(matches!(
            EmulatorSpec::from_json(&bad).unwrap_err(),
            SpecError::Loss { .. }
        ));
    }

    const UPLINK: &str = r#"{
        "ports": [{"netns": "a"}, {"netns": "b"}],
        "uplink": {
            "local": "10.0.0.1:4789",
            "vni": 42,
            "remotes": ["10.0.0.2:4789", "10.0.0.3"],
            "netns": "/proc/123/ns/net",
            "nodes": ["198.18.0.7", "198.18.0.9"]
        },
        "impairments": [
            {"from": 0, "to": 2, "impairment": {"delay": "3ms", "jitter": "0", "loss": 0.0}},
            {"from": 3, "to": 1, "impairment": {"delay": "5ms", "jitter": "0", "loss": 0.0}},
            {"from": 1, "to": 5, "impairment": {"delay": "8ms", "jitter": "0", "loss": 0.0}}
        ]
    }"#;

    #[test]
    fn an_uplinks_remotes_are_ports_after_the_taps() {
        let spec = EmulatorSpec::from_json(UPLINK).unwrap();
        let uplink = spec.uplink.as_ref().unwrap();
        assert_eq!(uplink.vni, 42);
        assert_eq!(uplink.remotes[1], "10.0.0.3:4789".parse().unwrap());
        assert_eq!(uplink.netns_path(), Some(PathBuf::from("/proc/123/ns/net")));
        assert_eq!(spec.port_count(), 4);
        assert_eq!(spec.column_count(), 6, "the ports, then two remote nodes");
        let matrix = spec.matrix();
        assert_eq!(matrix.len(), 4);
        assert!(matrix.iter().all(|row| row.len() == 6));
        assert_eq!(matrix[0][2].first.delay, Duration::from_millis(3));
        assert_eq!(matrix[3][1].first.delay, Duration::from_millis(5));
        assert_eq!(
            matrix[1][5].first.delay,
            Duration::from_millis(8),
            "1 -> .9"
        );
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(EmulatorSpec::from_json(&text).unwrap(), spec);
        // Without an uplink nothing is written, so older readers still parse it.
        let plain = EmulatorSpec::from_json(TWO_PORTS).unwrap();
        assert!(plain.uplink.is_none());
        assert!(!serde_json::to_string(&plain).unwrap().contains("uplink"));
    }

    #[test]
    fn rejects_an_uplink_that_cannot_work() {
        let with = |uplink: &str| {
            EmulatorSpec::from_json(&format!(
                r#"{{"ports": [{{"netns": "a"}}], "uplink": {uplink}}}"#
            ))
            .unwrap_err()
        };
        assert!(matches!(
            with(r#"{"local": "10.0.0.1:4789", "vni": 16777216}"#),
            SpecError::Vni(16_777_216)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1:4789", "vni": 1, "remotes": ["10.0.0.1"]}"#),
            SpecError::Remote(_)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1", "vni": 1, "remotes": ["10.0.0.2", "10.0.0.2:4789"]}"#),
            SpecError::Remote(_)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1", "vni": 1, "remotes": ["[fd00::2]:4789"]}"#),
            SpecError::Family { .. }
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1:0", "vni": 1}"#),
            SpecError::ZeroPort(_)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1", "vni": 1, "netns": "x/y"}"#),
            SpecError::UplinkNetns(_)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1", "vni": 1, "nodes": ["198.18.0.2", "198.18.0.2"]}"#),
            SpecError::RemoteNode(_)
        ));
        assert!(matches!(
            with(r#"{"local": "nowhere", "vni": 1}"#),
            SpecError::Json(_)
        ));
        assert!(matches!(
            with(r#"{"local": "10.0.0.1", "vni": 1, "group": "239.1.1.1"}"#),
            SpecError::Json(_)
        ));
        // One port and one remote: port 1 is the remote, port 2 does not exist.
        let link = |to: usize| {
            format!(
                r#"{{"ports": [{{"netns": "a"}}], "uplink": {{"local": "10.0.0.1", "vni": 1, "remotes": ["10.0.0.2"]}},
                "impairments": [{{"from": 0, "to": {to}, "impairment": {{"delay": "1ms", "jitter": "0", "loss": 0.0}}}}]}}"#
            )
        };
        assert!(EmulatorSpec::from_json(&link(1)).is_ok());
        assert!(matches!(
            EmulatorSpec::from_json(&link(2)).unwrap_err(),
            SpecError::PortOutOfRange { ports: 2, .. }
        ));
        // With a remote node, column 2 is its; column 3 does not exist.
        let to_node =
            |to: usize| link(to).replace(r#""remotes""#, r#""nodes": ["198.18.0.2"], "remotes""#);
        assert!(EmulatorSpec::from_json(&to_node(2)).is_ok());
        assert!(matches!(
            EmulatorSpec::from_json(&to_node(3)).unwrap_err(),
            SpecError::PortOutOfRange { columns: 3, .. }
        ));
    }

    #[test]
    fn rejects_what_would_fail_later() {
        let bad = |text: &str| EmulatorSpec::from_json(text).unwrap_err();
        assert!(matches!(bad(r#"{"ports": []}"#), SpecError::NoPorts));
        assert!(matches!(
            bad(r#"{"ports": [{"netns": "x/y"}]}"#),
            SpecError::Netns { .. }
        ));
        assert!(matches!(
            bad(r#"{"ports": [{"netns": "a", "ifname": "sixteen-chars-xx"}]}"#),
            SpecError::Ifname { .. }
        ));
        assert!(matches!(
            bad(r#"{"ports": [{"netns": "a"}, {"netns": "a"}]}"#),
            SpecError::DuplicatePort { .. }
        ));
        let link = |from: usize, to: usize, loss: f64| {
            format!(
                r#"{{"from": {from}, "to": {to}, "impairment": {{"delay": "1ms", "jitter": "0", "loss": {loss}}}}}"#
            )
        };
        let with = |links: &[String]| {
            format!(
                r#"{{"ports": [{{"netns": "a"}}, {{"netns": "b"}}], "impairments": [{}]}}"#,
                links.join(",")
            )
        };
        assert!(matches!(
            bad(&with(&[link(0, 2, 0.0)])),
            SpecError::PortOutOfRange { .. }
        ));
        assert!(matches!(
            bad(&with(&[link(1, 1, 0.0)])),
            SpecError::SelfLink { port: 1 }
        ));
        assert!(matches!(
            bad(&with(&[link(0, 1, 0.0), link(0, 1, 0.0)])),
            SpecError::DuplicateLink { from: 0, to: 1 }
        ));
        assert!(matches!(
            bad(&with(&[link(0, 1, 1.5)])),
            SpecError::Loss { .. }
        ));
        assert!(matches!(
            bad(r#"{"ports": [{"netns": "a"}], "queue_limit": 0}"#),
            SpecError::QueueLimit
        ));
        assert!(matches!(
            bad(r#"{"ports": [{"netns": "a"}], "colour": "blue"}"#),
            SpecError::Json(_)
        ));
    }
}
