//! `[[host]]`: the machines a lab spans. Without any, a lab lives on the
//! machine where `sdss lab` runs (today's behaviour); with some, every node
//! lives on one of them and the lab's segment is stretched between them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use toml::Spanned;

use super::{check_name, Locator, Topology, TopologyError};
use crate::lab::file::backend::BackendChoice;

/// One machine of a lab that spans several.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Its name in the lab (nodes name it in `host = "..."`).
    pub name: Spanned<String>,
    /// Where the remote-exec command reaches it (`ssh` destination, `user@host`).
    pub ssh: Spanned<String>,
    /// Its address on the network between the hosts: the other hosts send the
    /// lab's frames there (VXLAN, UDP 4789).
    pub underlay: Spanned<String>,
    /// Its delay backend, when not the one `up` is given (`emulator` on a
    /// host without netem: its uplink speaks VXLAN with the others' devices).
    pub backend: Option<BackendChoice>,
}

impl Topology {
    /// Checks `[[host]]` and every node's `host`; what a lab over several
    /// hosts cannot carry yet (grading) is refused here, before anything is made.
    pub(super) fn validate_hosts(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        let mut names = HashMap::new();
        let mut underlays = HashMap::new();
        for host in &self.hosts {
            check_name(at, &host.name, "host")?;
            if let Some(first) = names.insert(host.name.get_ref().as_str(), host.name.span()) {
                let (line, _) = at.line_column(first.start);
                return Err(at.error(
                    Some(host.name.span()),
                    format!(
                        "duplicate host name {:?} (first defined on line {line}): expected every host name to be unique",
                        host.name.get_ref()
                    ),
                ));
            }
            if host.ssh.get_ref().trim().is_empty() {
                return Err(at.error(
                    Some(host.ssh.span()),
                    "ssh is empty: expected how to reach the host, e.g. \"root@10.0.0.2\"",
                ));
            }
            let ip: Ipv4Addr = host.underlay.get_ref().parse().map_err(|_| {
                at.error(
                    Some(host.underlay.span()),
                    format!(
                        "{:?} is not an IPv4 address: expected the host's address on the network between the hosts, e.g. \"10.0.0.2\"",
                        host.underlay.get_ref()
                    ),
                )
            })?;
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                return Err(at.error(
                    Some(host.underlay.span()),
                    format!(
                        "underlay {ip} is not a unicast address: expected the host's own address"
                    ),
                ));
            }
            if let Some(first) = underlays.insert(ip, host.underlay.span()) {
                let (line, _) = at.line_column(first.start);
                return Err(at.error(
                    Some(host.underlay.span()),
                    format!("underlay {ip} is already used on line {line}: expected one address per host"),
                ));
            }
        }
        if let Some(host) = self
            .hosts
            .iter()
            .find(|h| h.backend == Some(BackendChoice::None))
        {
            return Err(at.error(
                Some(host.name.span()),
                "backend \"none\" on one host would leave its links undelayed while the lab expects their delays: expected auto, netem or emulator (a zero-delay run of the whole lab: --delay-backend none)",
            ));
        }
        for node in &self.nodes {
            let Some(host) = &node.host else { continue };
            if !names.contains_key(host.get_ref().as_str()) {
                let expected = if self.hosts.is_empty() {
                    "a [[host]] table of that name (a lab without [[host]] runs here)".to_owned()
                } else {
                    format!(
                        "one of {}",
                        self.hosts
                            .iter()
                            .map(|h| h.name.get_ref().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(at.error(
                    Some(host.span()),
                    format!("no host is named {:?}: expected {expected}", host.get_ref()),
                ));
            }
        }
        if self.hosts.is_empty() {
            return Ok(());
        }
        // Link events and `[[pair]]` the hosts carry: per-pair mode applies
        // each ordered pair whole on its sender's host.
        // The grading probe reads its graded nodes' processes: they share a host.
        let mut graded = self.nodes.iter().filter(|n| n.grade);
        if let Some(first) = graded.clone().find_map(|n| n.host.as_ref()) {
            if let Some(other) =
                graded.find_map(|n| n.host.as_ref().filter(|h| h.get_ref() != first.get_ref()))
            {
                return Err(at.error(
                    Some(other.span()),
                    format!(
                        "graded nodes live on one host, with the grading probe that reads their processes: expected host {:?} here too (another graded node is there), or no host",
                        first.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(text: &str) -> String {
        match Topology::parse(Path::new("x.toml"), text) {
            Err(TopologyError::Invalid { line, message, .. }) => format!("{line}: {message}"),
            other => panic!("expected an invalid lab, got {other:?}"),
        }
    }

    const TWO: &str = r#"name = "t"
[[host]]
name = "a"
ssh = "root@10.0.0.1"
underlay = "10.0.0.1"
[[host]]
name = "b"
ssh = "root@10.0.0.2"
underlay = "10.0.0.2"
"#;

    #[test]
    fn hosts_and_placements_parse() {
        let text = format!("{TWO}[[node]]\nname = \"n1\"\nhost = \"b\"\n[[node]]\nname = \"n2\"\n");
        let lab = Topology::parse(Path::new("x.toml"), &text).expect("valid");
        assert_eq!(lab.hosts.len(), 2);
        assert_eq!(
            lab.nodes[0].host.as_ref().map(|h| h.get_ref().as_str()),
            Some("b")
        );
        assert!(lab.nodes[1].host.is_none());
    }

    #[test]
    fn an_unknown_host_is_named_with_the_known_ones() {
        let text = format!("{TWO}[[node]]\nname = \"n1\"\nhost = \"c\"\n");
        let message = error(&text);
        assert!(
            message.contains("no host is named \"c\": expected one of a, b"),
            "{message}"
        );
        let message = error("name = \"t\"\n[[node]]\nname = \"n1\"\nhost = \"a\"\n");
        assert!(
            message.contains("a lab without [[host]] runs here"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_hosts_and_bad_underlays_are_located() {
        let text = TWO.replace("name = \"b\"", "name = \"a\"") + "[[node]]\nname = \"n\"\n";
        assert!(
            error(&text).starts_with("7: duplicate host name \"a\" (first defined on line 3)"),
            "{}",
            error(&text)
        );
        let text = TWO.replace("underlay = \"10.0.0.2\"", "underlay = \"10.0.0.1\"")
            + "[[node]]\nname = \"n\"\n";
        assert!(error(&text).contains("underlay 10.0.0.1 is already used on line 5"));
        let text = TWO.replace("underlay = \"10.0.0.2\"", "underlay = \"hostb\"")
            + "[[node]]\nname = \"n\"\n";
        assert!(error(&text).contains("\"hostb\" is not an IPv4 address"));
    }

    #[test]
    fn a_timeline_pairs_and_grading_over_hosts_are_accepted() {
        let nodes = "[[node]]\nname = \"n1\"\n[[node]]\nname = \"n2\"\n";
        let events = [
            "action = \"kill\"\nnode = \"n2\"\n",
            "action = \"cut\"\nnode = \"n2\"\n",
            "action = \"set\"\nnode = \"n2\"\ndelay = \"3ms\"\n",
            "action = \"partition\"\ngroups = [[\"n1\"], [\"n2\"]]\n",
            "action = \"heal\"\n",
        ];
        for event in events {
            let text = format!("{TWO}{nodes}[[event]]\nat = \"5s\"\n{event}");
            let parsed = Topology::parse(Path::new("x.toml"), &text);
            assert!(parsed.is_ok(), "{event}: {parsed:?}");
        }
        let pair = "[[pair]]\nfrom = \"n1\"\nto = \"n2\"\ndelay = \"1ms\"\n";
        assert!(Topology::parse(Path::new("x.toml"), &format!("{TWO}{nodes}{pair}")).is_ok());
        let graded = format!(
            "{TWO}{nodes}[[node]]\nname = \"s\"\ncommand = [\"python3\", \"s.py\"]\ngrade = true\n"
        );
        assert!(Topology::parse(Path::new("x.toml"), &graded).is_ok());
    }

    #[test]
    fn graded_nodes_on_two_hosts_are_refused_with_the_reason() {
        let grade = "command = [\"python3\", \"s.py\"]\ngrade = true\n";
        let text = format!(
            "{TWO}[[node]]\nname = \"g1\"\nhost = \"a\"\n{grade}[[node]]\nname = \"g2\"\nhost = \"b\"\n{grade}"
        );
        let message = error(&text);
        assert!(
            message.contains("graded nodes live on one host"),
            "{message}"
        );
        assert!(message.contains("expected host \"a\""), "{message}");
        // One graded node, on any host, is a lab the hosts carry.
        let one =
            format!("{TWO}[[node]]\nname = \"n\"\n[[node]]\nname = \"g\"\nhost = \"b\"\n{grade}");
        assert!(Topology::parse(Path::new("x.toml"), &one).is_ok());
    }
}
