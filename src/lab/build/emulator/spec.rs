//! What the lab tells the emulator: which namespaces to join and what each ordered
//! pair of ports does to its frames. Written by the lab as JSON into its state dir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
        if self.netns.starts_with('/') {
            PathBuf::from(&self.netns)
        } else {
            Path::new("/run/netns").join(&self.netns)
        }
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
    /// The one-way delay, jitter and loss the lab computed for this pair.
    pub impairment: Impairment,
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
    /// A pair naming a port that does not exist.
    #[error("impairment {from}->{to}: there are only {ports} ports")]
    PortOutOfRange {
        /// Sending port.
        from: usize,
        /// Receiving port.
        to: usize,
        /// Number of ports.
        ports: usize,
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
}

impl EmulatorSpec {
    /// These ports and impairments, every other setting as a spec file that
    /// leaves it out would have it.
    pub fn new(ports: Vec<PortSpec>, impairments: Vec<LinkSpec>) -> Self {
        EmulatorSpec {
            ports,
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
            let netns_ok = if port.netns.starts_with('/') {
                port.netns.len() > 1
            } else {
                !port.netns.is_empty()
                    && !port.netns.contains('/')
                    && port.netns != "."
                    && port.netns != ".."
            };
            if !netns_ok {
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
        check_loss(None, self.default.loss)?;
        let ports = self.ports.len();
        let mut seen = vec![false; ports * ports];
        for link in &self.impairments {
            let (from, to) = (link.from, link.to);
            if from >= ports || to >= ports {
                return Err(SpecError::PortOutOfRange { from, to, ports });
            }
            if from == to {
                return Err(SpecError::SelfLink { port: from });
            }
            let slot = &mut seen[from * ports + to];
            if *slot {
                return Err(SpecError::DuplicateLink { from, to });
            }
            *slot = true;
            check_loss(Some((from, to)), link.impairment.loss)?;
        }
        if self.queue_limit == 0 {
            return Err(SpecError::QueueLimit);
        }
        Ok(())
    }

    /// The impairment of every ordered pair, row `from`, column `to`.
    pub fn matrix(&self) -> Vec<Vec<Impairment>> {
        let ports = self.ports.len();
        let mut matrix = vec![vec![self.default; ports]; ports];
        for link in &self.impairments {
            if let Some(cell) = matrix
                .get_mut(link.from)
                .and_then(|row| row.get_mut(link.to))
            {
                *cell = link.impairment;
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
        assert_eq!(matrix[0][1].delay, Duration::from_millis(25));
        assert_eq!(matrix[1][0].delay, Duration::from_millis(1));
        assert_eq!(matrix[1][0].loss, 0.5);
        assert_eq!(spec.ports[0].netns_path(), Path::new("/run/netns/a"));
    }

    #[test]
    fn round_trips_through_json() {
        let spec = EmulatorSpec::from_json(TWO_PORTS).unwrap();
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(EmulatorSpec::from_json(&text).unwrap(), spec);
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
