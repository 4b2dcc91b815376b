//! What a lab will be, computed from its file without touching the kernel.
//!
//! The plan powers `--dry-run`, drives `up`, is stored with the lab's state so
//! that `verify` and `down` work without the file, and fixes the expected delay of
//! every ordered pair. The expected matrix follows netem's egress model
//! (LAB-NOTES.md): a frame from B to A leaves B's `eth0` (B's link delay) and
//! then the bridge port toward A (A's link delay), so B -> A = d_B + d_A unless a
//! `[[pair]]` sets that ordered pair outright.

pub mod backend;
pub mod calibration;
mod compute;

pub use compute::PlanOptions;
pub use impairment::in_series;
mod grading;
pub mod hosts;
pub mod impairment;
pub mod live;
mod node;
pub mod phase_zero;
pub mod probing;
pub mod sandbox;
pub mod segment;
pub mod shape;
pub mod timeline;

pub use grading::GradeSettings;
pub use probing::LinkProbing;
pub use segment::Segment;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::file::Ipv4Net;
use crate::lab::plan::impairment::Impairment;

/// Prefix of every kernel object name sdss creates.
pub const PREFIX: &str = "sdss-";

/// Name of a node's lab interface inside its namespace.
pub const NODE_IFNAME: &str = "eth0";

/// Name of the bridge inside the switch namespace.
pub const BRIDGE_IFNAME: &str = "br0";

/// Defaults for `[defaults]` and `[verify]` (documented in `labs/README.md`).
pub mod defaults {
    use std::time::Duration;

    /// Announcement period of small labs: short, so they converge in seconds.
    pub const INTERVAL: Duration = Duration::from_millis(250);
    /// Ordered pairs a lab may measure per second of interval before its default
    /// interval grows: every node hears and measures every other, so a lab's work
    /// grows with its pairs. Two cores on the emulator (`scripts/bench-scale.sh`)
    /// verify 50 nodes (2450 pairs) at 250 ms and 100 at 1 s, the latter with
    /// a pair of 9900 a little off in some runs; a default must pass every
    /// run, so this budget keeps a margin (36 nodes at 250 ms): 50 nodes get
    /// 486 ms, 70 nodes 958 ms, 100 nodes 1.96 s.
    pub const PAIRS_PER_SECOND: f64 = 36.0 * 35.0 / 0.25;

    /// The default announcement period of a lab of `nodes` nodes.
    pub fn interval_for(nodes: usize) -> Duration {
        let pairs = nodes as f64 * nodes.saturating_sub(1) as f64;
        INTERVAL.max(Duration::from_secs_f64(pairs / PAIRS_PER_SECOND))
    }

    /// Broadcasts between two measurements of a peer: one sample per second.
    pub const REFRESH_EVERY: u32 = 4;
    /// Absolute tolerance floor.
    pub const TOLERANCE: Duration = Duration::from_micros(500);
    /// Relative tolerance, in percent.
    pub const TOLERANCE_PERCENT: f64 = 5.0;
    /// Samples whose median is graded.
    pub const SAMPLES: u32 = 5;
    /// Samples discarded first.
    pub const WARMUP: u32 = 1;
    /// How long `up` waits for convergence, at least.
    pub const TIME_LIMIT: Duration = Duration::from_secs(60);

    /// The default time limit: [`TIME_LIMIT`], or twice what the samples take
    /// when nodes measure each peer only every `refresh_every × interval`.
    pub fn time_limit_for(interval: Duration, refresh_every: u32, samples: u32) -> Duration {
        TIME_LIMIT.max(interval * refresh_every.saturating_mul(samples).saturating_mul(2))
    }
}

/// A lab, ready to be created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The lab's name.
    pub lab: String,
    /// The file it came from (absolute when it could be resolved).
    pub source: PathBuf,
    /// The lab's subnet.
    #[serde(deserialize_with = "crate::lab::file::subnet::deserialize_either")]
    pub subnet: Ipv4Net,
    /// The namespace holding the bridge (or, later, the emulator).
    pub switch_netns: String,
    /// Nodes in file order.
    pub nodes: Vec<NodePlan>,
    /// Whether some `[[pair]]` overrides the link model (netem then needs
    /// per-destination classes instead of one qdisc per link end).
    pub per_pair: bool,
    /// Expected impairment of every ordered pair of distinct nodes.
    pub expected: Vec<ExpectedPair>,
    /// How the nodes run.
    pub node_settings: NodeSettings,
    /// How measurements are graded.
    pub verify: VerifySettings,
    /// The scenario played around graded nodes, when the lab has some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grading: Option<GradeSettings>,
    /// What happens to the lab while it runs, and what must follow.
    #[serde(default)]
    pub timeline: timeline::Timeline,
    /// The hosts the lab spans; empty: the machine `sdss lab` runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<hosts::HostPlan>,
    /// What the network between the hosts adds, measured at `up`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub underlay: Vec<hosts::UnderlayDelay>,
    /// In one host's share of a lab over several: how it joins the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// In one host's share of a lab over several: the nodes on the other
    /// hosts, which this host's nodes send to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_nodes: Vec<hosts::RemoteNode>,
    /// How programs nobody here wrote are confined.
    #[serde(default)]
    pub sandbox: sandbox::SandboxSettings,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Its name in the file.
    pub name: String,
    /// Its namespace, `sdss-<lab>-<node>`.
    pub netns: String,
    /// Its address on the lab link.
    pub address: Ipv4Addr,
    /// Its link's impairment (each of the link's two egresses gets it).
    pub link: Impairment,
    /// Its port on the bridge, in the switch namespace.
    pub bridge_port: String,
    /// What runs in its namespace.
    pub program: Program,
    /// Whether its stdout is sdss's JSON event stream, so it can be graded as observer.
    pub graded: bool,
    /// Whether it is graded against the assignment (`grade = true`).
    #[serde(default)]
    pub grade: bool,
    /// The host it lives on, in a lab over several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its program's folder, absolute (`dir`), when the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// What a node namespace runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Program {
    /// `sdss node --json ...` plus these arguments.
    Sdss {
        /// Extra arguments.
        args: Vec<String>,
    },
    /// A third-party implementation: argv with placeholders (see [`NodePlan::argv`]).
    Command {
        /// Program and arguments, placeholders unexpanded.
        argv: Vec<String>,
    },
    /// The grading probe: no process; `lab run` works in this namespace itself.
    Probe,
}

/// The expected impairment of one ordered pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedPair {
    /// Sender of the timestamp (the measured peer).
    pub from: String,
    /// Receiver (the node whose measurement is graded).
    pub to: String,
    /// What the path does to frames from `from` to `to`.
    pub impairment: Impairment,
    /// Whether a `[[pair]]` set it (otherwise it is the sum of the two links).
    pub overridden: bool,
    /// Added to its tolerance: what is known of the path only within a
    /// bound (across hosts, the clocks' difference, known to half a round trip).
    #[serde(
        default,
        skip_serializing_if = "Duration::is_zero",
        with = "crate::units::serde_duration"
    )]
    pub slack: Duration,
}

/// Settings passed to every `sdss node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSettings {
    /// `--interval`.
    #[serde(with = "crate::units::serde_duration")]
    pub interval: Duration,
    /// `--refresh-every`.
    pub refresh_every: u32,
    /// `--exchange-timeout`, when set.
    pub exchange_timeout: Option<String>,
    /// Extra arguments for every sdss node.
    pub args: Vec<String>,
}

/// How a measured delay is graded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerifySettings {
    /// Absolute tolerance floor.
    #[serde(with = "crate::units::serde_duration")]
    pub tolerance: Duration,
    /// Relative tolerance in percent of the expected delay.
    pub tolerance_percent: f64,
    /// Samples whose median is graded.
    pub samples: u32,
    /// Samples discarded first.
    pub warmup: u32,
    /// How long to wait for enough samples.
    #[serde(with = "crate::units::serde_duration")]
    pub time_limit: Duration,
    /// Measure every pair's floor first and subtract it (`calibration`).
    #[serde(default)]
    pub calibrate: bool,
    /// Probe the links themselves after the nodes are graded (`[verify]
    /// link`), sending as this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkProbing>,
}

impl VerifySettings {
    /// The tolerance for a given expected delay: `max(floor, percent of expected)`.
    pub fn tolerance_for(&self, expected: Duration) -> Duration {
        // Rounded to the nanosecond, so 5% of 41ms is 2.05ms exactly.
        let nanos = (expected.as_nanos() as f64 * self.tolerance_percent / 100.0).round();
        let relative = Duration::from_nanos(nanos as u64);
        relative.max(self.tolerance)
    }
}

/// The namespace name of a lab's switch.
pub fn switch_netns(lab: &str) -> String {
    format!("{PREFIX}{lab}")
}

/// The namespace name of a lab's node.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("{PREFIX}{lab}-{node}")
}

impl Plan {
    /// The same lab verified with `[verify] calibrate` (`--calibrate`): its
    /// links then change live, from the calibration phase to their own, so
    /// each pair gets a class of its own.
    pub fn calibrated(mut self) -> Plan {
        self.verify.calibrate = true;
        self.per_pair = true;
        self
    }

    /// The same lab with every impairment removed: what the zero-delay backend
    /// injects, and therefore what it expects.
    pub fn zero_delay(&self) -> Plan {
        let mut plan = self.clone();
        for node in &mut plan.nodes {
            node.link = Impairment::default();
        }
        let remote = plan.remote_nodes.iter_mut().flat_map(|r| &mut r.pairs);
        for pair in plan.expected.iter_mut().chain(remote) {
            pair.impairment = Impairment::default();
        }
        plan
    }

    /// This lab's nodes with another lab file's impairments: what a backend is
    /// told to inject when a test (`--inject-from`) checks that verification
    /// catches a link that does not do what the lab file claims.
    pub fn with_impairments_of(&self, other: &Plan) -> Result<Plan, String> {
        let names = |plan: &Plan| {
            plan.nodes
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        };
        if names(self) != names(other) {
            return Err(format!(
                "{} has nodes [{}], {} has [{}]: the injected lab must have the same nodes in the same order",
                self.source.display(),
                names(self).join(", "),
                other.source.display(),
                names(other).join(", ")
            ));
        }
        let mut told = self.clone();
        for (node, theirs) in told.nodes.iter_mut().zip(&other.nodes) {
            node.link = theirs.link;
        }
        told.per_pair = self.per_pair || other.per_pair;
        told.expected.clone_from(&other.expected);
        told.timeline.clone_from(&other.timeline);
        Ok(told)
    }

    /// Whether nothing in the lab is impaired (in a share: nothing this host
    /// injects; toward remote nodes that is more than the senders' links only
    /// in per-pair mode).
    pub fn is_unimpaired(&self) -> bool {
        let mut remote = self.remote_nodes.iter().flat_map(|r| &r.pairs);
        self.nodes.iter().all(|n| n.link.is_none())
            && self.expected.iter().all(|p| p.impairment.is_none())
            && (!self.per_pair || remote.all(|p| p.impairment.is_none()))
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The expected impairment from one node to another.
    pub fn expected(&self, from: &str, to: &str) -> Option<&ExpectedPair> {
        self.expected.iter().find(|p| p.from == from && p.to == to)
    }

    /// Every namespace of the lab, switch first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.switch_netns.clone())
            .chain(self.nodes.iter().map(|n| n.netns.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const THREE: &str = r#"
name = "t"
subnet = "10.9.0.0/24"
[defaults]
delay = "1ms"
[[node]]
name = "a"
delay = "5ms"
loss = 0.1
[[node]]
name = "b"
delay = "10ms"
jitter = "1ms"
loss = 0.2
[[node]]
name = "c"
address = "10.9.0.1"
"#;

    #[test]
    fn the_command_lines_options_are_in_the_plan_as_it_is_made() {
        let source = Path::new("/labs/t.toml");
        let topology = crate::lab::file::Topology::parse(source, THREE).unwrap();
        let plain = Plan::new(&topology, source);
        assert!(!plain.verify.calibrate && plain.sandbox.enabled);
        assert_eq!(plain.verify.link, None);
        let probed = format!("{THREE}[verify]\nlink = true\n");
        let probed = crate::lab::file::Topology::parse(source, &probed).unwrap();
        assert!(Plan::new(&probed, source).verify.link.is_some());
        let options = PlanOptions {
            tolerance: Some(Duration::from_micros(700)),
            tolerance_percent: None,
            calibrate: true,
            unconfined: true,
            link: true,
            link_rate: Some(40),
            link_duration: Some(Duration::from_secs(3)),
        };
        let asked = Plan::with_options(&topology, source, &options);
        assert_eq!(asked.verify.tolerance, Duration::from_micros(700));
        assert!(asked.verify.calibrate && asked.per_pair);
        assert!(!asked.sandbox.enabled);
        assert_eq!(
            asked.verify.link,
            Some(LinkProbing {
                rate: 40,
                duration: Duration::from_secs(3),
                ..LinkProbing::default()
            })
        );
        assert_eq!(
            asked.verify.tolerance_percent,
            plain.verify.tolerance_percent
        );
        let exact = PlanOptions {
            tolerance: Some(Duration::from_micros(50)),
            tolerance_percent: Some(0.0),
            ..PlanOptions::default()
        };
        let exact = Plan::with_options(&topology, source, &exact);
        assert_eq!(
            exact.verify.tolerance_for(Duration::from_millis(40)),
            Duration::from_micros(50),
            "--tolerance 50us --tolerance-percent 0 judges with exactly 50us"
        );
    }

    #[test]
    fn injected_impairments_come_from_the_other_file_and_nodes_stay() {
        let claimed = Plan::from_text(THREE);
        let other = Plan::from_text(
            &THREE
                .replace("\"5ms\"", "\"30ms\"")
                .replace("name = \"t\"", "name = \"u\""),
        );
        let told = claimed.with_impairments_of(&other).unwrap();
        assert_eq!(told.nodes[0].netns, "sdss-t-a");
        assert_eq!(told.nodes[0].link.delay, Duration::from_millis(30));
        assert_eq!(
            told.expected("b", "a").unwrap().impairment.delay,
            Duration::from_millis(40)
        );
        assert_eq!(
            claimed.expected("b", "a").unwrap().impairment.delay,
            Duration::from_millis(15)
        );
    }

    #[test]
    fn injected_impairments_need_the_same_nodes() {
        let error = Plan::from_text(THREE)
            .with_impairments_of(&Plan::from_text("name = \"t\"\n[[node]]\nname = \"a\"\n"))
            .unwrap_err();
        assert!(error.contains("same nodes"), "{error}");
    }

    #[test]
    fn names_addresses_and_ports() {
        let plan = Plan::from_text(THREE);
        assert_eq!(plan.switch_netns, "sdss-t");
        let names: Vec<_> = plan.nodes.iter().map(|n| n.netns.as_str()).collect();
        assert_eq!(names, ["sdss-t-a", "sdss-t-b", "sdss-t-c"]);
        let addresses: Vec<_> = plan.nodes.iter().map(|n| n.address.to_string()).collect();
        // c asked for .1, so a and b take the next free ones.
        assert_eq!(addresses, ["10.9.0.2", "10.9.0.3", "10.9.0.1"]);
        assert_eq!(plan.nodes[2].bridge_port, "p2");
        assert_eq!(
            plan.namespaces(),
            ["sdss-t", "sdss-t-a", "sdss-t-b", "sdss-t-c"]
        );
    }

    #[test]
    fn expected_delay_is_the_sum_of_both_egresses() {
        let plan = Plan::from_text(THREE);
        assert_eq!(plan.expected.len(), 6);
        let ab = &plan.expected("a", "b").unwrap().impairment;
        assert_eq!(ab.delay, Duration::from_millis(15));
        assert_eq!(ab.jitter, Duration::from_millis(1));
        assert!((ab.loss.mean() - (1.0 - 0.9 * 0.8)).abs() < 1e-12);
        // c inherits the default 1ms link.
        assert_eq!(
            plan.expected("c", "a").unwrap().impairment.delay,
            Duration::from_millis(6)
        );
        assert_eq!(
            plan.expected("b", "a").unwrap().impairment.delay,
            Duration::from_millis(15)
        );
        assert!(!plan.per_pair);
    }

    #[test]
    fn pairs_override_one_direction_or_both() {
        let plan = Plan::from_text(&format!(
            "{THREE}[[pair]]\nfrom = \"a\"\nto = \"b\"\ndelay = \"30ms\"\n[[pair]]\nfrom = \"a\"\nto = \"c\"\ndelay = \"2ms\"\nsymmetric = true\n"
        ));
        assert!(plan.per_pair);
        let ab = plan.expected("a", "b").unwrap();
        assert_eq!(ab.impairment.delay, Duration::from_millis(30));
        assert!(ab.overridden);
        assert_eq!(ab.impairment.loss.mean(), 0.0);
        assert_eq!(
            plan.expected("b", "a").unwrap().impairment.delay,
            Duration::from_millis(15)
        );
        assert_eq!(
            plan.expected("c", "a").unwrap().impairment.delay,
            Duration::from_millis(2)
        );
        assert_eq!(
            plan.expected("a", "c").unwrap().impairment.delay,
            Duration::from_millis(2)
        );
    }

    #[test]
    fn the_default_interval_and_time_limit_grow_with_the_lab_and_explicit_ones_win() {
        let lab_of = |nodes: usize, sections: &str| {
            let mut text = format!("name = \"t\"\n{sections}");
            for i in 0..nodes {
                text.push_str(&format!("[[node]]\nname = \"n{i}\"\n"));
            }
            let plan = Plan::from_text(&text);
            (plan.node_settings.interval, plan.verify.time_limit)
        };
        let ms = Duration::from_millis;
        assert_eq!(lab_of(2, ""), (ms(250), Duration::from_secs(60)));
        assert_eq!(lab_of(36, ""), (ms(250), Duration::from_secs(60)));
        assert_eq!(lab_of(50, "").0.as_millis(), 486);
        assert_eq!(lab_of(70, "").0.as_millis(), 958);
        let (interval, time_limit) = lab_of(100, "");
        assert_eq!(interval.as_millis(), 1964);
        // Six samples, one every four broadcasts, twice over.
        assert_eq!(time_limit, interval * 48);
        let explicit = "[defaults]\ninterval = \"100ms\"\n[verify]\ntime_limit = \"10s\"\n";
        assert_eq!(lab_of(100, explicit), (ms(100), Duration::from_secs(10)));
    }

    #[test]
    fn zero_delay_clears_every_impairment() {
        let plan = Plan::from_text(THREE).zero_delay();
        assert!(plan.is_unimpaired());
    }

    #[test]
    fn argv_of_sdss_and_custom_nodes() {
        let plan = Plan::from_text(
            "name = \"t\"\n[defaults]\ninterval = \"200ms\"\nrefresh_every = 3\n[[node]]\nname = \"a\"\nargs = [\"--verbose\"]\n[[node]]\nname = \"b\"\ncommand = [\"peer\", \"--ns\", \"{netns}\", \"--addr={address}/{prefix}\"]\n",
        );
        let sdss = Path::new("/bin/sdss");
        assert_eq!(
            plan.nodes[0].argv(&plan, sdss),
            [
                "/bin/sdss",
                "node",
                "--json",
                "--interval",
                "200ms",
                "--refresh-every",
                "3",
                "--verbose"
            ]
        );
        assert_eq!(
            plan.nodes[1].argv(&plan, sdss),
            ["peer", "--ns", "sdss-t-b", "--addr=198.18.0.2/24"]
        );
        assert!(plan.nodes[0].graded);
        assert!(!plan.nodes[1].graded);
    }

    #[test]
    fn graded_labs_get_a_probe_node_a_scenario_and_verbose_observers() {
        let plan = Plan::from_text(
            "name = \"g\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"s\"\ncommand = [\"python3\", \"s.py\"]\ngrade = true\n",
        );
        let grading = plan.grading.as_ref().expect("a grading scenario");
        assert_eq!(grading.duration, GradeSettings::DEFAULT_DURATION);
        assert_eq!(grading.kill.as_deref(), Some("b"));
        assert!(grading.silent_at < grading.joined_at && grading.burst_at < grading.kill_at);
        assert!(grading.kill_at < grading.risky_from && grading.risky_from < grading.duration);
        let (low, high) = grading.port_range;
        assert!(low >= 33_000 && high == low + 999 && high < 60_000);
        let probe = plan.node("grader").expect("the probe node");
        assert_eq!(probe.program, Program::Probe);
        assert_eq!(probe.address.to_string(), "198.18.0.4");
        assert!(probe.argv(&plan, Path::new("/bin/sdss")).is_empty());
        assert!(plan.node("s").unwrap().grade);
        // The probe is no party to the delay matrix.
        assert_eq!(plan.expected.len(), 6);
        assert!(plan
            .expected
            .iter()
            .all(|p| p.from != "grader" && p.to != "grader"));
        assert!(plan.nodes[0]
            .argv(&plan, Path::new("/bin/sdss"))
            .contains(&"--verbose".to_owned()));
        // Labs without graded nodes are unchanged.
        assert!(plan_of_three().grading.is_none());
    }

    fn plan_of_three() -> Plan {
        Plan::from_text(THREE)
    }

    #[test]
    fn tolerance_is_the_larger_of_floor_and_percentage() {
        let verify = Plan::from_text(THREE).verify;
        assert_eq!(
            verify.tolerance_for(Duration::ZERO),
            Duration::from_micros(500)
        );
        assert_eq!(
            verify.tolerance_for(Duration::from_millis(40)),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn plans_round_trip_through_json_for_the_state_file() {
        let plan = Plan::from_text(THREE);
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
