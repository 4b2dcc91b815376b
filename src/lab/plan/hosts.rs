//! A lab over several hosts: where each node lives, what each host builds of
//! it (its share), and how the hosts' shares join into one segment.
//!
//! The segment is stretched with VXLAN, the design netlab, containerlab and
//! Mininet's cluster edition converged on: one VNI per lab, frames sent by
//! unicast to every other host (head-end replication). With per-node links
//! each host delays its own nodes' links, so the egress model still holds
//! across hosts (B -> A = d_B on B's host + d_A on A's host); in per-pair mode
//! the sender's host applies the whole pair, telling the remote node a frame
//! goes to by its address ([`RemoteNode`]). What the network between the
//! hosts adds is measured at `up` and added to every cross-host pair
//! ([`Plan::with_underlay`]).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::segment::Segment;
use super::timeline::PairState;
use super::{ExpectedPair, NodePlan, Plan};
use crate::lab::file::backend::BackendChoice;
use crate::lab::file::Topology;

/// One machine of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    /// Its name in the file.
    pub name: String,
    /// The destination the remote-exec command is given.
    pub ssh: String,
    /// Its address between the hosts.
    pub underlay: Ipv4Addr,
    /// Its own delay backend, if the file gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendChoice>,
}

/// A node on another host, as one host's share sees it: in per-pair mode a
/// frame from a node here to it gets the pair's whole impairment here, on the
/// sender's host, so the share must tell it by its address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteNode {
    /// Its name in the file.
    pub name: String,
    /// Its address on the lab's segment: what frames to it are told by.
    pub address: Ipv4Addr,
    /// The pair from each of this host's nodes to it, as the lab expects it
    /// before the underlay is added: what per-pair mode injects here. Kept
    /// out of the share's `expected`, which holds what this host's nodes are
    /// judged on (their own pairs) and which is counted and judged as such.
    pub pairs: Vec<ExpectedPair>,
}

/// The one-way delay the network between two hosts adds, measured at `up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnderlayDelay {
    /// Sending host.
    pub from: String,
    /// Receiving host.
    pub to: String,
    /// Half the shortest round trip of its probes.
    #[serde(with = "crate::units::serde_duration")]
    pub delay: Duration,
    /// The receiving host's clock minus the sending host's, seconds: a node
    /// measures with both clocks, so this is in what it measures too.
    pub clock: f64,
}

impl UnderlayDelay {
    /// What a node on `to` measures on top of the links' delays from a node on `from`.
    pub fn added(&self) -> f64 {
        self.delay.as_secs_f64() + self.clock
    }
}

/// The hosts of a topology, and each node's host: its own, or the host with
/// the fewest nodes so far (file order breaks ties), so unplaced nodes spread evenly.
pub(super) fn place(topology: &Topology, nodes: &mut [NodePlan]) -> Vec<HostPlan> {
    let hosts: Vec<HostPlan> = topology
        .hosts
        .iter()
        .filter_map(|h| {
            Some(HostPlan {
                name: h.name.get_ref().clone(),
                ssh: h.ssh.get_ref().clone(),
                underlay: h.underlay.get_ref().parse().ok()?,
                backend: h.backend,
            })
        })
        .collect();
    if hosts.is_empty() {
        return hosts;
    }
    let mut load: HashMap<&str, usize> = hosts.iter().map(|h| (h.name.as_str(), 0)).collect();
    for section in &topology.nodes {
        if let Some(host) = &section.host {
            *load.entry(host.get_ref().as_str()).or_default() += 1;
        }
    }
    // Graded nodes live together, with the grading probe that reads their
    // processes: on the host one of them names, or the least loaded.
    let mut graded_host: Option<String> = topology
        .nodes
        .iter()
        .filter(|n| n.grade)
        .find_map(|n| n.host.as_ref().map(|h| h.get_ref().clone()));
    for (node, section) in nodes.iter_mut().zip(&topology.nodes) {
        let host = match &section.host {
            Some(host) => host.get_ref().clone(),
            None if section.grade && graded_host.is_some() => {
                let host = graded_host.clone().unwrap_or_default();
                *load.entry(hosts_name(&hosts, &host)).or_default() += 1;
                host
            }
            None => {
                let least = hosts
                    .iter()
                    .min_by_key(|h| load.get(h.name.as_str()).copied().unwrap_or(0))
                    .map_or_else(String::new, |h| h.name.clone());
                *load.entry(hosts_name(&hosts, &least)).or_default() += 1;
                if section.grade {
                    graded_host = Some(least.clone());
                }
                least
            }
        };
        node.host = Some(host);
    }
    hosts
}

/// `name` borrowed from `hosts` (the load table's keys borrow from there).
fn hosts_name<'a>(hosts: &'a [HostPlan], name: &str) -> &'a str {
    hosts
        .iter()
        .find(|h| h.name == name)
        .map_or("", |h| h.name.as_str())
}

impl Plan {
    /// Whether the lab spans hosts (then it is built by agents, not here).
    pub fn spans_hosts(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// The lab's VXLAN network identifier: derived from its name (FNV-1a), so
    /// every host and every run agree on it, never 0.
    pub fn vni(&self) -> u32 {
        let hash = self.lab.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        hash % 0x00ff_fffe + 1
    }

    /// The host a node lives on.
    pub fn host_of(&self, node: &str) -> Option<&HostPlan> {
        let name = self.node(node)?.host.as_deref()?;
        self.hosts.iter().find(|h| h.name == name)
    }

    /// What `host` builds: its nodes, the pairs between them, its segment,
    /// and the nodes on the other hosts with the pairs from its nodes to them.
    /// Its nodes keep their addresses and everything else the whole lab gave
    /// them, the timeline included (whose phases hold every pair of the lab).
    ///
    /// Cut from the plan as made, before [`Plan::with_underlay`]: the remote
    /// pairs are what this host injects, which the underlay is not part of.
    pub fn share(&self, host: &str) -> Option<Plan> {
        let me = self.hosts.iter().find(|h| h.name == host)?;
        let nodes: Vec<NodePlan> = self
            .nodes
            .iter()
            .filter(|n| n.host.as_deref() == Some(host))
            .cloned()
            .collect();
        let local = |name: &str| nodes.iter().any(|n| n.name == name);
        let expected = self
            .expected
            .iter()
            .filter(|p| local(&p.from) && local(&p.to))
            .cloned()
            .collect();
        let remote_nodes = self
            .nodes
            .iter()
            .filter(|n| !local(&n.name))
            .map(|to| RemoteNode {
                name: to.name.clone(),
                address: to.address,
                pairs: self
                    .expected
                    .iter()
                    .filter(|p| p.to == to.name && local(&p.from))
                    .cloned()
                    .collect(),
            })
            .collect();
        Some(Plan {
            nodes,
            expected,
            remote_nodes,
            hosts: Vec::new(),
            underlay: Vec::new(),
            segment: Some(Segment {
                vni: self.vni(),
                local: me.underlay,
                remotes: self
                    .hosts
                    .iter()
                    .filter(|h| h.name != host)
                    .map(|h| h.underlay)
                    .collect(),
                // Over an Ethernet underlay.
                mtu: Segment::mtu_over(1500),
            }),
            ..self.clone()
        })
    }

    /// The plan as its pairs are judged when the hosts' underlay is
    /// `measured`: its delay and the hosts' clock difference added to every
    /// cross-host pair's expected delay, in the delay table and in each
    /// phase of the timeline, and kept for the report. The plan as made is
    /// what is built and recorded; this is computed where it is judged.
    pub fn with_underlay(&self, measured: &[UnderlayDelay]) -> Plan {
        let mut plan = self.clone();
        let host = |node: &str| self.node(node).and_then(|n| n.host.clone());
        let across = |from: &str, to: &str| {
            let (from, to) = (host(from)?, host(to)?);
            (from != to)
                .then(|| measured.iter().find(|u| u.from == from && u.to == to))
                .flatten()
        };
        let added = |delay: Duration, u: &UnderlayDelay| {
            Duration::from_secs_f64((delay.as_secs_f64() + u.added()).max(0.0))
        };
        for pair in &mut plan.expected {
            if let Some(u) = across(&pair.from, &pair.to) {
                pair.impairment.delay = added(pair.impairment.delay, u);
                // NTP's bound: a clock difference read from one probe is off by
                // at most half its round trip (how the way out and back split).
                pair.slack = u.delay;
            }
        }
        for phase in &mut plan.timeline.phases {
            for pair in &mut phase.pairs {
                if let (Some(u), PairState::Linked(impairment)) =
                    (across(&pair.from, &pair.to), &mut pair.state)
                {
                    impairment.delay = added(impairment.delay, u);
                }
            }
        }
        plan.underlay = measured.to_vec();
        plan
    }

    /// The expected pair from `from`, a node here, to `to`, here or (in a
    /// share) a remote node: what per-pair mode injects on `from`'s side.
    pub fn pair_from_here(&self, from: &str, to: &str) -> Option<&ExpectedPair> {
        self.expected(from, to).or_else(|| {
            self.remote_nodes
                .iter()
                .find(|r| r.name == to)?
                .pairs
                .iter()
                .find(|p| p.from == from)
        })
    }

    /// Every node a frame from this host's nodes may be addressed to, by
    /// name and address: its own nodes, then (in a share) the remote ones.
    pub fn destinations(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        let here = self.nodes.iter().map(|n| (n.name.as_str(), n.address));
        here.chain(
            self.remote_nodes
                .iter()
                .map(|r| (r.name.as_str(), r.address)),
        )
    }

    /// The underlay delay a pair crosses, when its ends live on different hosts.
    pub fn underlay_of(&self, from: &str, to: &str) -> Option<Duration> {
        let (from, to) = (self.host_of(from)?, self.host_of(to)?);
        self.underlay
            .iter()
            .find(|u| u.from == from.name && u.to == to.name)
            .map(|u| u.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"name = "spread"
[defaults]
delay = "1ms"
[[host]]
name = "a"
ssh = "root@10.0.0.1"
underlay = "10.0.0.1"
[[host]]
name = "b"
ssh = "root@10.0.0.2"
underlay = "10.0.0.2"
[[host]]
name = "c"
ssh = "root@10.0.0.3"
underlay = "10.0.0.3"
[[node]]
name = "n1"
host = "c"
[[node]]
name = "n2"
[[node]]
name = "n3"
[[node]]
name = "n4"
[[node]]
name = "n5"
"#;

    fn hosts_of(plan: &Plan) -> Vec<&str> {
        plan.nodes
            .iter()
            .map(|n| n.host.as_deref().unwrap_or("?"))
            .collect()
    }

    #[test]
    fn unplaced_nodes_spread_evenly_around_placed_ones() {
        let plan = Plan::from_text(LAB);
        assert!(plan.spans_hosts());
        assert_eq!(hosts_of(&plan), ["c", "a", "b", "a", "b"]);
    }

    #[test]
    fn graded_nodes_and_their_probe_live_on_one_host() {
        let grade = "command = [\"python3\", \"s.py\"]\ngrade = true\n";
        let text = format!(
            "{LAB}[[node]]\nname = \"g1\"\n{grade}[[node]]\nname = \"g2\"\nhost = \"b\"\n{grade}"
        );
        let plan = Plan::from_text(&text);
        let host = |name: &str| plan.node(name).and_then(|n| n.host.clone());
        assert_eq!(
            host("g1").as_deref(),
            Some("b"),
            "with the one that names it"
        );
        assert_eq!(host("g2").as_deref(), Some("b"));
        let probe = plan.grading.as_ref().expect("graded").probe.clone();
        assert_eq!(host(&probe).as_deref(), Some("b"), "beside what it reads");
        let share = plan.share("b").expect("host b");
        assert!(share.node(&probe).is_some() && share.grading.is_some());
    }

    #[test]
    fn a_lab_without_hosts_is_unchanged() {
        let plan =
            Plan::from_text("name = \"here\"\n[[node]]\nname = \"n1\"\n[[node]]\nname = \"n2\"\n");
        assert!(!plan.spans_hosts());
        assert!(plan.nodes.iter().all(|n| n.host.is_none()));
        assert!(plan.share("a").is_none());
    }

    #[test]
    fn a_share_holds_its_nodes_their_pairs_and_a_segment_to_the_others() {
        let plan = Plan::from_text(LAB);
        let share = plan.share("a").expect("host a");
        let names: Vec<&str> = share.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n2", "n4"]);
        assert_eq!(share.expected.len(), 2);
        assert!(!share.spans_hosts());
        let segment = share.segment.expect("a segment");
        assert_eq!(segment.local, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            segment.remotes,
            [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]
        );
        assert_eq!(segment.vni, plan.vni());
        assert_eq!(segment.mtu, 1450);
        // Addresses are the whole lab's: unique across hosts.
        assert_eq!(share.nodes[0].address, plan.nodes[1].address);
    }

    #[test]
    fn a_share_knows_the_remote_nodes_and_the_pairs_its_nodes_send_on() {
        let plan = Plan::from_text(LAB);
        let share = plan.share("a").expect("host a");
        let remote: Vec<(&str, Ipv4Addr)> = share
            .remote_nodes
            .iter()
            .map(|r| (r.name.as_str(), r.address))
            .collect();
        let whole = |name: &str| plan.node(name).expect("node").address;
        assert_eq!(
            remote,
            [
                ("n1", whole("n1")),
                ("n3", whole("n3")),
                ("n5", whole("n5"))
            ],
            "in the whole lab's order"
        );
        for node in &share.remote_nodes {
            let senders: Vec<&str> = node.pairs.iter().map(|p| p.from.as_str()).collect();
            assert_eq!(senders, ["n2", "n4"], "from this host's nodes only");
        }
        let destinations: Vec<&str> = share.destinations().map(|(name, _)| name).collect();
        assert_eq!(destinations, ["n2", "n4", "n1", "n3", "n5"]);
        assert_eq!(
            share.pair_from_here("n2", "n5"),
            plan.expected("n2", "n5"),
            "a remote pair"
        );
        assert_eq!(share.pair_from_here("n2", "n4"), plan.expected("n2", "n4"));
        assert_eq!(share.pair_from_here("n3", "n2"), None, "not sent from here");
        // What this host's nodes are judged on is unchanged: their own pairs.
        assert!(share.expected.iter().all(|p| share.node(&p.to).is_some()));
        // A whole plan has none, and a share stored before them still reads.
        assert!(plan.remote_nodes.is_empty());
        let mut json: serde_json::Value = serde_json::to_value(&share).unwrap();
        json.as_object_mut().unwrap().remove("remote_nodes");
        let old: Plan = serde_json::from_value(json).unwrap();
        assert!(old.remote_nodes.is_empty());
    }

    #[test]
    fn a_shares_remote_pairs_count_as_impairment_only_in_per_pair_mode() {
        // Host a's nodes have no delay: per node, it injects nothing.
        let flat = LAB.replace("delay = \"1ms\"", "delay = \"0ms\"")
            + "[[node]]\nname = \"n6\"\nhost = \"b\"\ndelay = \"4ms\"\n";
        let share = Plan::from_text(&flat).share("a").expect("host a");
        assert!(share.is_unimpaired(), "b's link is delayed on b");
        let share = Plan::from_text(&flat)
            .calibrated()
            .share("a")
            .expect("host a");
        assert!(share.per_pair && !share.is_unimpaired());
        assert!(share.zero_delay().is_unimpaired());
    }

    #[test]
    fn the_vni_is_stable_nonzero_and_24_bits() {
        let plan = Plan::from_text(LAB);
        assert_eq!(plan.vni(), Plan::from_text(LAB).vni());
        assert!((1..1 << 24).contains(&plan.vni()));
        let other = Plan::from_text(&LAB.replace("spread", "other"));
        assert_ne!(plan.vni(), other.vni());
    }

    #[test]
    fn the_underlay_is_added_to_cross_host_pairs_only() {
        let plan = Plan::from_text(LAB);
        let us = |n| Duration::from_micros(n);
        let plan = plan.with_underlay(&[UnderlayDelay {
            from: "a".into(),
            to: "b".into(),
            delay: us(300),
            clock: -0.0001,
        }]);
        // n2 (a) -> n3 (b): 1 ms + 1 ms + 0.3 ms, read 0.1 ms early by b's clock.
        let cross = plan.expected("n2", "n3").expect("pair");
        assert_eq!(cross.impairment.delay, us(2200));
        assert_eq!(
            cross.slack,
            us(300),
            "the clocks are known to half a round trip"
        );
        assert_eq!(plan.underlay_of("n2", "n3"), Some(us(300)));
        // n2 (a) -> n4 (a): same host, nothing added.
        assert_eq!(
            plan.expected("n2", "n4").expect("pair").impairment.delay,
            us(2000)
        );
        // b -> a was not measured: nothing added, nothing claimed.
        assert_eq!(
            plan.expected("n3", "n2").expect("pair").impairment.delay,
            us(2000)
        );
        assert_eq!(plan.underlay_of("n3", "n2"), None);
    }

    #[test]
    fn the_timelines_phases_are_judged_with_the_underlay_too() {
        let plan = Plan::from_text(&format!(
            "{LAB}[[event]]\nat = \"5s\"\naction = \"set\"\nnode = \"n2\"\ndelay = \"4ms\"\n"
        ));
        let us = Duration::from_micros;
        let judged = plan.with_underlay(&[UnderlayDelay {
            from: "a".into(),
            to: "b".into(),
            delay: us(300),
            clock: 0.0,
        }]);
        let delay = |plan: &Plan, phase: usize, from: &str, to: &str| {
            plan.timeline.phases[phase]
                .expected(from, to)
                .map(|i| i.delay)
        };
        // n2 (a) -> n3 (b), after n2's link became 4 ms: 4 + 1 + 0.3 ms.
        assert_eq!(delay(&judged, 1, "n2", "n3"), Some(us(5300)));
        assert_eq!(delay(&judged, 0, "n2", "n3"), Some(us(2300)));
        // Same host: as made. The plan as made is unchanged.
        assert_eq!(delay(&judged, 1, "n2", "n4"), Some(us(5000)));
        assert_eq!(delay(&plan, 1, "n2", "n3"), Some(us(5000)));
        assert!(plan.underlay.is_empty());
    }

    #[test]
    fn the_underlay_is_added_to_a_pair_set_across_hosts_too() {
        let plan = Plan::from_text(&format!(
            "{LAB}[[pair]]\nfrom = \"n2\"\nto = \"n3\"\ndelay = \"7ms\"\n"
        ));
        let share = plan.share("a").expect("host a");
        let us = Duration::from_micros;
        let plan = plan.with_underlay(&[UnderlayDelay {
            from: "a".into(),
            to: "b".into(),
            delay: us(300),
            clock: 0.0,
        }]);
        // Host a injects the pair's 7 ms; n3 measures that and the underlay.
        let cross = plan.expected("n2", "n3").expect("pair");
        assert!(cross.overridden);
        assert_eq!(cross.impairment.delay, us(7300));
        let injected = share.pair_from_here("n2", "n3").expect("pair");
        assert_eq!(injected.impairment.delay, us(7000));
    }
}
