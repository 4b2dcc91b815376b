//! A copy of a lab beside another (`--name`, `--subnet` on `up` and `run`):
//! the file's lab under another name and subnet, checked by the file's rules
//! before anything is planned.

use std::net::Ipv4Addr;

use toml::Spanned;

use super::subnet::RESERVED;
use super::{name_problem, Ipv4Net, LabSubnet, Topology, TopologyError, DEFAULT_SUBNET};

impl Topology {
    /// The same lab under another name and subnet (`--name`, `--subnet`),
    /// checked by the file's rules: a copy of a lab can run beside it.
    pub fn renamed(
        mut self,
        name: Option<&str>,
        subnet: Option<Ipv4Net>,
    ) -> Result<Topology, TopologyError> {
        let refuse = |option: &'static str, given: String, message: String| {
            Err(TopologyError::Option {
                option,
                given,
                message,
            })
        };
        if let Some(name) = name {
            if let Some(message) = name_problem(name, "lab") {
                return refuse("--name", name.to_owned(), message);
            }
            self.name = Spanned::new(self.name.span(), name.to_owned());
        }
        let Some(net) = subnet else {
            return Ok(self);
        };
        let given = net.to_string();
        if let Some((_, what)) = RESERVED.iter().find(|(r, _)| r.overlaps(&net)) {
            return refuse(
                "--subnet",
                given,
                format!("it overlaps {what}: expected a private or benchmarking range such as {DEFAULT_SUBNET}"),
            );
        }
        if self.nodes.len() as u64 > net.host_count() {
            return refuse(
                "--subnet",
                given,
                format!(
                    "it has {} host addresses for {} nodes: expected a larger subnet (smaller prefix)",
                    net.host_count(),
                    self.nodes.len()
                ),
            );
        }
        for node in &self.nodes {
            let Some(ip) = node
                .address
                .as_ref()
                .and_then(|a| a.get_ref().parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
                return refuse(
                    "--subnet",
                    given,
                    format!(
                        "node {} has the fixed address {ip}, no host address of it: expected a subnet that holds it, or a file without `address`",
                        node.name.get_ref()
                    ),
                );
            }
        }
        let span = self.subnet.as_ref().map_or(0..0, Spanned::span);
        self.subnet = Some(Spanned::new(span, given));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn lab(extra: &str) -> Topology {
        let text =
            format!("name = \"five\"\n[[node]]\nname = \"a\"\n{extra}[[node]]\nname = \"b\"\n");
        Topology::parse(Path::new("five.toml"), &text).unwrap()
    }

    #[test]
    fn a_copy_takes_another_name_and_subnet_by_the_files_rules() {
        let net: Ipv4Net = "198.18.9.0/24".parse().unwrap();
        let copy = lab("").renamed(Some("five2"), Some(net)).unwrap();
        assert_eq!(copy.name.get_ref(), "five2");
        assert_eq!(copy.subnet(), net);
        let kept = lab("").renamed(None, None).unwrap();
        assert_eq!(
            (kept.name.get_ref().as_str(), kept.subnet()),
            ("five", DEFAULT_SUBNET)
        );
        let error = lab("").renamed(Some("five-2"), None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--name five-2: \"five-2\" is not a valid lab name"),
            "{error}"
        );
        let tiny = lab("").renamed(None, Some("198.18.9.0/31".parse().unwrap()));
        assert!(tiny
            .unwrap_err()
            .to_string()
            .contains("host addresses for 2 nodes"));
        let fixed = lab("address = \"198.18.0.7\"\n").renamed(None, Some(net));
        assert!(fixed
            .unwrap_err()
            .to_string()
            .contains("node a has the fixed address 198.18.0.7"));
        let reserved = lab("").renamed(None, Some("127.0.0.0/24".parse().unwrap()));
        assert!(reserved.unwrap_err().to_string().contains("overlaps"));
    }
}
