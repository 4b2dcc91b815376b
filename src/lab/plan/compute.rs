//! How a validated topology becomes a plan, one step at a time: the nodes
//! (addresses, links, programs) and their hosts, the grading probe, the
//! pairs and what each is expected to measure, the timeline, the settings.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::probing::{self, LinkProbing};
use super::{
    defaults, hosts, in_series, node_netns, switch_netns, timeline, ExpectedPair, GradeSettings,
    NodePlan, NodeSettings, Plan, Program, VerifySettings,
};
use crate::lab::file::{Ipv4Net, LabSubnet, NodeSection, Topology};
use crate::lab::plan::impairment::{Impairment, LinkValues};
use crate::lab::plan::sandbox::SandboxSettings;

/// Which pair a `[[pair]]` entry sets: (from, to).
type Overrides = HashMap<(String, String), Impairment>;

impl Plan {
    /// A plan from lab-file text: the one way the lab's unit tests build one.
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Plan {
        let source = Path::new("/labs/x.toml");
        let topology = Topology::parse(source, text).expect("a valid test lab");
        Plan::new(&topology, source)
    }

    /// Computes the plan of a validated topology. `source` is where it was read from.
    pub fn new(topology: &Topology, source: &Path) -> Plan {
        Plan::with_options(topology, source, &PlanOptions::default())
    }

    /// Computes the plan of a validated topology with what the command line
    /// asks beyond the file, so that nothing edits the plan afterwards.
    pub fn with_options(topology: &Topology, source: &Path, options: &PlanOptions) -> Plan {
        let lab = topology.name.get_ref().clone();
        let subnet = topology.subnet();
        let defaults = &topology.defaults;
        let default_link = LinkValues::from(defaults.shape()).apply(Impairment::default());
        let mut addresses = FreeAddresses::new(subnet, topology);
        let mut nodes = node_plans(topology, &lab, default_link, &mut addresses);
        let hosts = hosts::place(topology, &mut nodes);
        let grading = grade_settings(topology, &lab, &nodes);
        if let Some(grading) = &grading {
            let mut probe = probe_node(&lab, grading, default_link, addresses.take(), nodes.len());
            // Across hosts, the probe reads the graded nodes' processes: it
            // lives on their host (placed together, `hosts::place`).
            probe.host = nodes.iter().find(|n| n.grade).and_then(|n| n.host.clone());
            nodes.push(probe);
        }
        let overrides = overrides(topology);
        let measured_names: Vec<String> = measured(&nodes).map(|n| n.name.clone()).collect();
        let timeline = timeline::Timeline::new(
            topology,
            nodes.iter().map(|n| (n.name.clone(), n.link)).collect(),
            overrides.clone(),
            &measured_names,
            grading
                .as_ref()
                .map(GradeSettings::timeline)
                .unwrap_or_default(),
        );
        let expected = expected_pairs(&nodes, &overrides);
        let node_settings = node_settings(topology, grading.is_some());
        let verify = verify_settings(topology, &node_settings);
        let plan = Plan {
            switch_netns: switch_netns(&lab),
            lab,
            source: std::path::absolute(source).unwrap_or_else(|_| source.to_owned()),
            subnet,
            nodes,
            // Live link changes need a class per pair to change.
            per_pair: !overrides.is_empty() || timeline.changes_links(),
            expected,
            node_settings,
            verify,
            grading,
            timeline,
            hosts,
            underlay: Vec::new(),
            segment: None,
            remote_nodes: Vec::new(),
            sandbox: SandboxSettings::from_section(&topology.sandbox),
        };
        options.apply(plan, topology.verify.calibrate == Some(true))
    }
}

/// What the command line asks of a lab beyond its file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanOptions {
    /// The absolute floor of every pair's tolerance instead of the file's
    /// `[verify] tolerance` (`--tolerance`); the relative part stays.
    pub tolerance: Option<Duration>,
    /// The relative part instead of the file's `[verify] tolerance_percent`
    /// (`--tolerance-percent`; 0 judges with exactly the floor).
    pub tolerance_percent: Option<f64>,
    /// Calibrate, as `[verify] calibrate = true` does (`--calibrate`).
    pub calibrate: bool,
    /// Confine no program (`--no-sandbox`).
    pub unconfined: bool,
    /// Probe the links, as `[verify] link = true` does (`--link`).
    pub link: bool,
    /// Each probed pair's packets per second (`--link-rate`): probes the links.
    pub link_rate: Option<u32>,
    /// How long each probed pair sends (`--link-duration`): probes the links.
    pub link_duration: Option<Duration>,
}

impl PlanOptions {
    fn apply(&self, mut plan: Plan, file_calibrates: bool) -> Plan {
        if let Some(tolerance) = self.tolerance {
            plan.verify.tolerance = tolerance;
        }
        if let Some(percent) = self.tolerance_percent {
            plan.verify.tolerance_percent = percent;
        }
        if file_calibrates || self.calibrate {
            plan = plan.calibrated();
        }
        if self.unconfined {
            plan = plan.unconfined();
        }
        if self.link || self.link_rate.is_some() || self.link_duration.is_some() {
            let mut probing = plan.verify.link.unwrap_or_default();
            probing.rate = self.link_rate.unwrap_or(probing.rate);
            probing.duration = self.link_duration.unwrap_or(probing.duration);
            plan.verify.link = Some(probing);
        }
        plan
    }
}

/// Host addresses not fixed by the file, lowest first.
struct FreeAddresses {
    subnet: Ipv4Net,
    next: u64,
    taken: Vec<Ipv4Addr>,
}

impl FreeAddresses {
    /// The subnet's, less the addresses the file fixes.
    fn new(subnet: Ipv4Net, topology: &Topology) -> FreeAddresses {
        let taken = topology.nodes.iter().filter_map(fixed_address).collect();
        FreeAddresses {
            subnet,
            next: 1,
            taken,
        }
    }

    /// The lowest free one, taken from now on.
    fn take(&mut self) -> Ipv4Addr {
        while let Some(ip) = self.subnet.host(self.next) {
            self.next += 1;
            if !self.taken.contains(&ip) {
                self.taken.push(ip);
                return ip;
            }
        }
        // Not reached: the file's validation leaves a host address for every
        // node and the grading probe.
        self.subnet.network()
    }
}

fn fixed_address(node: &NodeSection) -> Option<Ipv4Addr> {
    node.address.as_ref().and_then(|a| a.get_ref().parse().ok())
}

/// The file's nodes, in its order: fixed addresses first, then the lowest
/// free ones.
fn node_plans(
    topology: &Topology,
    lab: &str,
    default_link: Impairment,
    addresses: &mut FreeAddresses,
) -> Vec<NodePlan> {
    let mut nodes = Vec::with_capacity(topology.nodes.len() + 1);
    for (index, node) in topology.nodes.iter().enumerate() {
        let address = fixed_address(node).unwrap_or_else(|| addresses.take());
        let (program, graded) = match &node.command {
            None => (
                Program::Sdss {
                    args: node.args.clone(),
                },
                node.json.unwrap_or(true),
            ),
            Some(command) => {
                let mut argv = command.get_ref().clone();
                argv.extend(node.args.iter().cloned());
                (Program::Command { argv }, node.json.unwrap_or(false))
            }
        };
        let name = node.name.get_ref().clone();
        nodes.push(NodePlan {
            netns: node_netns(lab, &name),
            name,
            address,
            link: LinkValues::from(node.shape()).apply(default_link),
            bridge_port: format!("p{index}"),
            program,
            graded,
            grade: node.grade,
            host: None,
            // Relative to where sdss runs, as a command's own paths are.
            dir: node.dir.as_ref().map(|d| {
                let dir = Path::new(d.get_ref());
                std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
            }),
        });
    }
    nodes
}

/// A graded lab's settings: by default the last of at least two sdss nodes
/// is killed while the graded one is watched.
fn grade_settings(topology: &Topology, lab: &str, nodes: &[NodePlan]) -> Option<GradeSettings> {
    topology.grades().then(|| {
        let sdss_nodes: Vec<&NodePlan> = nodes
            .iter()
            .filter(|n| matches!(n.program, Program::Sdss { .. }) && !n.grade)
            .collect();
        let kill = match topology.grade.kill.as_ref().map(|k| k.get_ref().clone()) {
            Some(name) if name.is_empty() => None,
            Some(name) => Some(name),
            None if sdss_nodes.len() >= 2 => sdss_nodes.last().map(|n| n.name.clone()),
            None => None,
        };
        let duration = topology
            .grade
            .duration
            .map_or(GradeSettings::DEFAULT_DURATION, |d| d.0);
        let seed = topology
            .grade
            .seed
            .unwrap_or_else(|| GradeSettings::seed_of(lab));
        GradeSettings::new(duration, kill, seed)
    })
}

/// The grading probe's namespace, the `index`th on the bridge: the next free
/// address, the lab's default link.
fn probe_node(
    lab: &str,
    grading: &GradeSettings,
    default_link: Impairment,
    address: Ipv4Addr,
    index: usize,
) -> NodePlan {
    NodePlan {
        netns: node_netns(lab, &grading.probe),
        name: grading.probe.clone(),
        address,
        link: default_link,
        bridge_port: format!("p{index}"),
        program: Program::Probe,
        graded: false,
        grade: false,
        host: None,
        dir: None,
    }
}

/// The pairs `[[pair]]` sets outright, both ways when symmetric.
fn overrides(topology: &Topology) -> Overrides {
    let mut overrides = Overrides::new();
    for pair in &topology.pairs {
        let impairment = LinkValues::from(pair.shape()).apply(Impairment::default());
        let (from, to) = (pair.from.get_ref(), pair.to.get_ref());
        overrides.insert((from.clone(), to.clone()), impairment);
        if pair.symmetric {
            overrides.insert((to.clone(), from.clone()), impairment);
        }
    }
    overrides
}

/// The nodes whose delays are measured (all but the grading probe).
fn measured(nodes: &[NodePlan]) -> impl Iterator<Item = &NodePlan> {
    nodes.iter().filter(|n| n.program != Program::Probe)
}

/// Every ordered pair of measured nodes: set outright, or the egress model.
fn expected_pairs(nodes: &[NodePlan], overrides: &Overrides) -> Vec<ExpectedPair> {
    let mut expected = Vec::new();
    for from in measured(nodes) {
        for to in measured(nodes).filter(|to| to.name != from.name) {
            let key = (from.name.clone(), to.name.clone());
            let (impairment, overridden) = match overrides.get(&key) {
                Some(i) => (*i, true),
                None => (in_series(&from.link, &to.link), false),
            };
            expected.push(ExpectedPair {
                from: from.name.clone(),
                to: to.name.clone(),
                impairment,
                overridden,
                slack: Duration::ZERO,
            });
        }
    }
    expected
}

fn node_settings(topology: &Topology, graded: bool) -> NodeSettings {
    let defaults = &topology.defaults;
    let mut args = defaults.args.clone();
    if graded {
        // The observers report every datagram heard and client served.
        args.push("--verbose".to_owned());
    }
    NodeSettings {
        interval: defaults
            .interval
            .map_or_else(|| defaults::interval_for(topology.nodes.len()), |d| d.0),
        refresh_every: defaults
            .refresh_every
            .as_ref()
            .map_or(defaults::REFRESH_EVERY, |r| *r.get_ref()),
        exchange_timeout: defaults
            .exchange_timeout
            .map(|d| crate::units::format_duration(d.0)),
        args,
    }
}

fn verify_settings(topology: &Topology, nodes: &NodeSettings) -> VerifySettings {
    let verify = &topology.verify;
    let samples = verify
        .samples
        .as_ref()
        .map_or(defaults::SAMPLES, |s| *s.get_ref());
    let warmup = verify.warmup.unwrap_or(defaults::WARMUP);
    let time_limit = verify.time_limit.map_or_else(
        || defaults::time_limit_for(nodes.interval, nodes.refresh_every, warmup + samples),
        |d| d.0,
    );
    VerifySettings {
        tolerance: verify.tolerance.map_or(defaults::TOLERANCE, |d| d.0),
        tolerance_percent: verify
            .tolerance_percent
            .as_ref()
            .map_or(defaults::TOLERANCE_PERCENT, |p| *p.get_ref()),
        samples,
        warmup,
        time_limit,
        calibrate: false,
        link: (verify.link == Some(true)).then(|| LinkProbing {
            rate: verify
                .link_rate
                .as_ref()
                .map_or(probing::RATE, |r| *r.get_ref()),
            duration: verify.link_duration.map_or(probing::DURATION, |d| d.0),
            size: verify
                .link_size
                .as_ref()
                .map_or(probing::SIZE, |s| *s.get_ref()),
        }),
    }
}
