//! The lab file: what a person writes, parsed strictly.
//!
//! Every mistake (unknown key, bad duration, duplicate name, overlapping or
//! too small subnet, impossible loss) is reported with the file, line and column
//! and what was expected there, because a lab that silently ignores a typo
//! (`dealy = "5ms"`) would verify the wrong thing. The format is documented in
//! `labs/README.md`.

use std::collections::HashMap;

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use thiserror::Error;
use toml::Spanned;

pub mod backend;
mod copy;
mod grading;
mod hosts;
pub mod link;
pub mod live;
pub mod probing;
mod sandbox;
pub mod subnet;
mod suggest;
pub mod timeline;

pub use grading::{BuiltinGrade, GradeSection, MIN_GRADE_DURATION, PROBE_NODE};
pub use hosts::HostSection;
pub(crate) use link::shaped_section;
pub use link::{LinkShape, MAX_DELAY, SHAPE_KEYS};
pub use sandbox::{SandboxSection, SizeValue};
use subnet::RESERVED;
pub use subnet::{Ipv4Net, LabSubnet, DEFAULT_SUBNET};
use suggest::one_of;
pub use timeline::{Action, EventSection, ExpectSection, Expectation};

/// Longest lab or node name: namespace names stay short and readable.
pub const MAX_NAME_LEN: usize = 24;

/// Why a lab file was rejected.
#[derive(Debug, Error)]
pub enum TopologyError {
    /// The file could not be read at all.
    #[error("cannot read lab file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A command-line option that changes the file (`--name`, `--subnet`)
    /// gives what the file's rules refuse.
    #[error("{option} {given}: {message}")]
    Option {
        /// The option.
        option: &'static str,
        /// Its value.
        given: String,
        /// What is wrong and what is expected instead.
        message: String,
    },
    /// The file was read but says something wrong, at a known place.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong and what is expected instead.
        message: String,
    },
    /// The built-in lab of `sdss lab grade` is wrong: by a value of the
    /// command line (`--name`), named, or by something of its own.
    #[error("{what}: {message}")]
    Builtin {
        /// The option the wrong value came from, or the lab itself.
        what: String,
        /// What is wrong and what is expected instead.
        message: String,
    },
}

/// A duration written as text in the file (`"5ms"`), parsed with [`crate::units`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationValue(pub Duration, pub usize);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Spanned::<String>::deserialize(deserializer)?;
        let at = text.span().start;
        crate::units::parse_duration(text.get_ref())
            .map(|duration| DurationValue(duration, at))
            .map_err(serde::de::Error::custom)
    }
}

/// A lab file as written. Validated by [`Topology::parse`]; see `labs/README.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Lab name: part of every namespace name (`sdss-<lab>-<node>`).
    pub name: Spanned<String>,
    /// The lab's IPv4 subnet; [`DEFAULT_SUBNET`] when absent.
    #[serde(default)]
    pub subnet: Option<Spanned<String>>,
    /// Settings shared by every node.
    #[serde(default)]
    pub defaults: Defaults,
    /// How measurements are graded.
    #[serde(default)]
    pub verify: VerifySection,
    /// The nodes, in order (addresses are assigned in this order).
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSection>,
    /// `[[host]]` tables: the machines the lab spans (none: this one).
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostSection>,
    /// Per ordered pair delays that replace the per-node link model.
    #[serde(default, rename = "pair")]
    pub pairs: Vec<PairSection>,
    /// How nodes marked `grade = true` are graded against the assignment.
    #[serde(default)]
    pub grade: GradeSection,
    /// How programs nobody here wrote are confined.
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// The timeline: what happens to the lab, and when.
    #[serde(default, rename = "event")]
    pub events: Vec<EventSection>,
    /// What must become true, and by when.
    #[serde(default, rename = "expect")]
    pub expects: Vec<ExpectSection>,
}

shaped_section! {
/// `[defaults]`: what every node gets unless it says otherwise (its link's
/// shape, key by key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `sdss node --interval`.
    pub interval: Option<DurationValue>,
    /// `sdss node --refresh-every`.
    pub refresh_every: Option<Spanned<u32>>,
    /// `sdss node --exchange-timeout`.
    pub exchange_timeout: Option<DurationValue>,
    /// Extra arguments for every `sdss node`.
    #[serde(default)]
    pub args: Vec<String>,
}
}

/// `[verify]`: how measured delays are graded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    /// Absolute tolerance floor.
    pub tolerance: Option<DurationValue>,
    /// Relative tolerance in percent of the expected delay.
    pub tolerance_percent: Option<Spanned<f64>>,
    /// Samples whose median is graded.
    pub samples: Option<Spanned<u32>>,
    /// Samples discarded first (ARP and connection setup pay extra).
    pub warmup: Option<u32>,
    /// How long `up` waits for every pair to have enough samples.
    pub time_limit: Option<DurationValue>,
    /// Measure each pair's floor at zero delay first, and subtract it.
    pub calibrate: Option<bool>,
    /// Probe the links themselves (the link probe) once the nodes are graded.
    pub link: Option<bool>,
    /// The link probe's packets per second, each ordered pair.
    pub link_rate: Option<Spanned<u32>>,
    /// How long each pair's probe stream runs.
    pub link_duration: Option<DurationValue>,
    /// The link probe's UDP payload bytes.
    pub link_size: Option<Spanned<u16>>,
}

shaped_section! {
/// One `[[node]]`, its link's shape applied on each of its two egresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Node name: the last part of its namespace name.
    pub name: Spanned<String>,
    /// A fixed address inside the subnet; otherwise one is assigned.
    pub address: Option<Spanned<String>>,
    /// A program to run instead of `sdss node` (argv, with placeholders).
    pub command: Option<Spanned<Vec<String>>>,
    /// Whether the node prints sdss's JSON event stream on stdout (default: only
    /// when it is `sdss node`); only such nodes are graded as observers.
    pub json: Option<bool>,
    /// Extra arguments appended to `sdss node` (or to `command`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Grade this node against the assignment (`lab run` prints its checklist).
    #[serde(default)]
    pub grade: bool,
    /// The `[[host]]` it lives on; unset, nodes are spread evenly.
    pub host: Option<Spanned<String>>,
    /// The folder of its program (the submission's): confined, the program
    /// sees a private copy of it and starts there. Unset: the folder of the
    /// first argument that names a file.
    pub dir: Option<Spanned<String>>,
}
}

shaped_section! {
/// One `[[pair]]`: the shape from one node to another, replacing the link model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSection {
    /// Sender.
    pub from: Spanned<String>,
    /// Receiver.
    pub to: Spanned<String>,
    /// Also set the reverse direction to the same values.
    #[serde(default)]
    pub symmetric: bool,
}
}

/// Turns byte offsets into line and column, and wraps messages into errors.
pub(crate) struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Locator { path, text }
    }

    /// 1-based line and column of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..self.text.floor_char_boundary_compat(offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    pub(crate) fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> TopologyError {
        let (line, column) = span.map_or((1, 1), |s| self.line_column(s.start));
        TopologyError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut index: usize) -> usize {
        while index > 0 && !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}

impl Topology {
    /// Reads and validates a lab file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let bytes = std::fs::read(path).map_err(|source| TopologyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let byte = e.as_bytes()[valid];
            Locator::new(path, &prefix).error(
                Some(valid..valid),
                format!("byte 0x{byte:02x} is not UTF-8 text: expected a TOML lab file (see labs/README.md)"),
            )
        })?;
        Topology::parse(path, &text)
    }

    /// Parses and validates a lab file's text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Topology, TopologyError> {
        let at = Locator::new(path, text);
        let topology: Topology = toml::from_str(text).map_err(|e| {
            let message = match (e.message(), e.span()) {
                // toml names no key here; the span starts at it.
                ("duplicate key", Some(span)) => format!(
                    "duplicate key `{}`: expected each key once per table",
                    key_at(text, span.start)
                ),
                (message, _) => message.to_owned(),
            };
            at.error(e.span(), message)
        })?;
        topology.validate(&at)?;
        Ok(topology)
    }

    /// The subnet, parsed (validated by [`Topology::parse`]).
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
            .as_ref()
            .and_then(|s| subnet::parse(s.get_ref()).ok())
            .unwrap_or(DEFAULT_SUBNET)
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        check_name(at, &self.name, "lab")?;
        let subnet = match &self.subnet {
            None => DEFAULT_SUBNET,
            Some(text) => {
                let net = subnet::parse(text.get_ref())
                    .map_err(|message| at.error(Some(text.span()), message))?;
                if let Some((_, what)) = RESERVED.iter().find(|(r, _)| r.overlaps(&net)) {
                    return Err(at.error(
                        Some(text.span()),
                        format!(
                            "subnet {net} overlaps {what}: expected a private or benchmarking range such as {DEFAULT_SUBNET}"
                        ),
                    ));
                }
                net
            }
        };
        if self.nodes.is_empty() {
            return Err(at.error(
                Some(self.name.span()),
                "a lab needs nodes: expected at least one [[node]] table with a name",
            ));
        }
        if self.nodes.len() as u64 > subnet.host_count() {
            let span = self.subnet.as_ref().map_or(self.name.span(), |s| s.span());
            return Err(at.error(
                Some(span),
                format!(
                    "subnet {subnet} has {} host addresses for {} nodes: expected a larger subnet (smaller prefix)",
                    subnet.host_count(),
                    self.nodes.len()
                ),
            ));
        }
        self.defaults.shape().check(at)?;
        for (value, what) in [
            (&self.defaults.interval, "interval"),
            (&self.defaults.exchange_timeout, "exchange_timeout"),
        ] {
            if let Some(DurationValue(duration, start)) = value {
                if duration.is_zero() {
                    return Err(at.error(
                        Some(*start..*start),
                        format!("{what} must be more than zero: sdss node refuses 0"),
                    ));
                }
            }
        }
        if let Some(every) = &self.defaults.refresh_every {
            if *every.get_ref() == 0 {
                return Err(at.error(Some(every.span()), "refresh_every must be at least 1"));
            }
        }
        if let Some(percent) = &self.verify.tolerance_percent {
            let p = *percent.get_ref();
            if !(0.0..=100.0).contains(&p) {
                return Err(at.error(
                    Some(percent.span()),
                    format!("tolerance_percent {p} is out of range: expected a percentage between 0 and 100"),
                ));
            }
        }
        if let Some(samples) = &self.verify.samples {
            if *samples.get_ref() == 0 {
                return Err(at.error(Some(samples.span()), "samples must be at least 1"));
            }
        }
        self.check_link_probe(at)?;

        let mut names: HashMap<&str, Range<usize>> = HashMap::new();
        let mut addresses: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        for node in &self.nodes {
            check_name(at, &node.name, "node")?;
            if let Some(first) = names.insert(node.name.get_ref(), node.name.span()) {
                let (line, _) = at.line_column(first.start);
                return Err(at.error(
                    Some(node.name.span()),
                    format!(
                        "duplicate node name {:?} (first defined on line {line}): expected every node name to be unique",
                        node.name.get_ref()
                    ),
                ));
            }
            node.shape().check(at)?;
            if let Some(command) = &node.command {
                if command.get_ref().is_empty() {
                    return Err(at.error(
                        Some(command.span()),
                        "command is empty: expected a program and its arguments, e.g. [\"python3\", \"node.py\"]",
                    ));
                }
            }
            if let Some(text) = &node.address {
                let ip: Ipv4Addr = text.get_ref().parse().map_err(|_| {
                    at.error(
                        Some(text.span()),
                        format!(
                            "{:?} is not an IPv4 address: expected e.g. {}",
                            text.get_ref(),
                            subnet.host(1).unwrap_or(subnet.network())
                        ),
                    )
                })?;
                if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
                    return Err(at.error(
                        Some(text.span()),
                        format!("address {ip} is not a host address of the lab subnet {subnet}"),
                    ));
                }
                if let Some(first) = addresses.insert(ip, text.span()) {
                    let (line, _) = at.line_column(first.start);
                    return Err(at.error(
                        Some(text.span()),
                        format!("address {ip} is already used on line {line}: expected a unique address per node"),
                    ));
                }
            }
        }

        self.validate_grade(at)?;
        self.validate_sandbox(at)?;
        self.validate_timeline(at)?;
        self.validate_hosts(at)?;

        let mut pairs: HashMap<(&str, &str), Range<usize>> = HashMap::new();
        for pair in &self.pairs {
            for end in [&pair.from, &pair.to] {
                if !names.contains_key(end.get_ref().as_str()) {
                    return Err(at.error(
                        Some(end.span()),
                        format!(
                            "no node is named {:?}: {}",
                            end.get_ref(),
                            one_of(
                                end.get_ref(),
                                self.nodes.iter().map(|n| n.name.get_ref().as_str())
                            )
                        ),
                    ));
                }
            }
            if pair.from.get_ref() == pair.to.get_ref() {
                return Err(at.error(
                    Some(pair.to.span()),
                    "a pair needs two different nodes: expected `to` to differ from `from`",
                ));
            }
            pair.shape().check(at)?;
            let mut directions = vec![(pair.from.get_ref().as_str(), pair.to.get_ref().as_str())];
            if pair.symmetric {
                directions.push((pair.to.get_ref().as_str(), pair.from.get_ref().as_str()));
            }
            for direction in directions {
                if let Some(first) = pairs.insert(direction, pair.from.span()) {
                    let (line, _) = at.line_column(first.start);
                    return Err(at.error(
                        Some(pair.from.span()),
                        format!(
                            "the pair {} -> {} is already set on line {line}: expected each ordered pair at most once",
                            direction.0, direction.1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_name(at: &Locator<'_>, name: &Spanned<String>, what: &str) -> Result<(), TopologyError> {
    match name_problem(name.get_ref(), what) {
        Some(message) => Err(at.error(Some(name.span()), message)),
        None => Ok(()),
    }
}

/// What is wrong with `text` as a `what` (lab, node) name, if anything.
pub(super) fn name_problem(text: &str, what: &str) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    (!ok).then(|| {
        format!(
            "{text:?} is not a valid {what} name: expected 1 to {MAX_NAME_LEN} ASCII letters (a-z, A-Z), digits or '_', starting with a letter or digit (no '-': it separates the parts of namespace names)"
        )
    })
}

/// The key that starts at `offset` of `text` (bare or quoted).
fn key_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset..).unwrap_or_default();
    let end = rest.find(['=', '\n', ']']).unwrap_or(rest.len());
    rest[..end].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, TopologyError> {
        Topology::parse(Path::new("lab.toml"), text)
    }

    fn error(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(TopologyError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const TWO: &str = r#"
name = "two"
[[node]]
name = "a"
delay = "5ms"
[[node]]
name = "b"
"#;

    #[test]
    fn graded_labs_reserve_the_probe_name_and_check_the_killed_node() {
        let graded = "name = \"g\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"s\"\ncommand = [\"python3\", \"s.py\"]\ngrade = true\n";
        let topology = parse(graded).unwrap();
        assert!(topology.grades());
        let (line, _, message) = error(&format!("{graded}[[node]]\nname = \"grader\"\n"));
        assert_eq!(line, 9, "{message}");
        assert!(message.contains("reserved"), "{message}");
        let (_, _, message) = error(&format!("{graded}[grade]\nkill = \"s\"\n"));
        assert!(
            message.contains("an sdss node that is not graded"),
            "{message}"
        );
        let (_, _, message) = error(&format!("{graded}[grade]\nduration = \"5s\"\n"));
        assert!(message.contains("too short"), "{message}");
        let (_, _, message) = error(&format!("{graded}[grade]\nlength = \"30s\"\n"));
        assert!(message.contains("unknown field `length`"), "{message}");
        assert!(parse(&format!(
            "{graded}[grade]\nkill = \"a\"\nduration = \"30s\"\n"
        ))
        .is_ok());
    }

    #[test]
    fn parses_a_minimal_lab_with_defaults() {
        let topology = parse(TWO).unwrap();
        assert_eq!(topology.name.get_ref(), "two");
        assert_eq!(topology.subnet(), DEFAULT_SUBNET);
        assert_eq!(topology.nodes.len(), 2);
        assert_eq!(
            topology.nodes[0].delay.map(|d| d.0),
            Some(Duration::from_millis(5))
        );
    }

    #[test]
    fn unknown_keys_name_line_column_and_what_is_expected() {
        let (line, column, message) =
            error("name = \"x\"\n[[node]]\nname = \"a\"\ndealy = \"5ms\"\n");
        assert_eq!((line, column), (4, 1), "{message}");
        assert!(message.contains("unknown field `dealy`"), "{message}");
        assert!(message.contains("delay"), "{message}");
    }

    #[test]
    fn a_zero_interval_or_timeout_and_an_unschedulable_delay_are_located() {
        let (line, column, message) =
            error("name = \"t\"\n[defaults]\ninterval = \"0\"\n[[node]]\nname = \"a\"\n");
        assert_eq!((line, column), (3, 12));
        assert!(
            message.contains("interval must be more than zero"),
            "{message}"
        );
        let (line, _, message) =
            error("name = \"t\"\n[defaults]\nexchange_timeout = \"0s\"\n[[node]]\nname = \"a\"\n");
        assert_eq!(line, 3);
        assert!(message.contains("exchange_timeout"), "{message}");
        let (line, _, message) = error("name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"100m\"\n");
        assert_eq!(line, 4);
        assert!(message.contains("at most 60 s"), "{message}");
    }

    #[test]
    fn a_duplicate_key_is_named() {
        let (line, column, message) =
            error("name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"5ms\"\ndelay = \"6ms\"\n");
        assert_eq!((line, column), (5, 1));
        assert!(message.starts_with("duplicate key `delay`"), "{message}");
    }

    #[test]
    fn a_binary_file_says_where_it_stops_being_text_once() {
        let dir = std::env::temp_dir().join(format!("sdss-topology-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("binary.toml");
        std::fs::write(&path, b"name = \"t\"\n\x7fELF\xff\xfe").unwrap();
        let error = Topology::load(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        let text = error.to_string();
        assert!(
            text.contains("binary.toml:2:5: byte 0xff is not UTF-8"),
            "{text}"
        );
        assert!(std::error::Error::source(&error).is_none(), "said once");
    }

    #[test]
    fn bad_durations_are_located() {
        let (line, column, message) =
            error("name = \"x\"\n[[node]]\nname = \"a\"\ndelay = \"5 parsecs\"\n");
        assert_eq!((line, column), (4, 9), "{message}");
        assert!(message.contains("not a unit"), "{message}");
        let (line, _, message) = error("name = \"x\"\n[[node]]\nname = \"a\"\ndelay = \"5\"\n");
        assert_eq!(line, 4);
        assert!(message.contains("number with a unit"), "{message}");
    }

    #[test]
    fn duplicate_names_point_at_the_second_and_mention_the_first() {
        let (line, column, message) =
            error("name = \"x\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n");
        assert_eq!((line, column), (5, 8));
        assert!(message.contains("first defined on line 3"), "{message}");
    }

    #[test]
    fn subnets_must_be_networks_large_enough_and_not_reserved() {
        let (line, _, message) =
            error("name = \"x\"\nsubnet = \"127.0.0.0/24\"\n[[node]]\nname = \"a\"\n");
        assert_eq!(line, 2);
        assert!(message.contains("overlaps loopback"), "{message}");
        let (_, _, message) =
            error("name = \"x\"\nsubnet = \"10.0.0.1/24\"\n[[node]]\nname = \"a\"\n");
        assert!(
            message.contains("expected the network address, 10.0.0.0/24"),
            "{message}"
        );
        let (_, _, message) = error(
            "name = \"x\"\nsubnet = \"10.0.0.0/30\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n",
        );
        assert!(
            message.contains("2 host addresses for 3 nodes"),
            "{message}"
        );
        let (_, _, message) =
            error("name = \"x\"\nsubnet = \"10.0.0.0\"\n[[node]]\nname = \"a\"\n");
        assert!(message.contains("expected an IPv4 network"), "{message}");
    }

    #[test]
    fn every_netem_shape_is_read_and_each_mistake_is_located() {
        let node = "name = \"x\"\n[[node]]\nname = \"a\"\n";
        let ok = format!(
            "{node}delay = \"40ms\"\njitter = \"5ms\"\ndistribution = \"pareto\"\n\
             loss = 0.01\nloss_correlation = 0.25\nduplicate = 0.01\nreorder = 0.1\n\
             reorder_gap = 3\ncorrupt = 0.001\nrate = \"10mbit\"\nlimit = 100\n\
             slot = {{ distribution = \"normal\", delay = \"1ms\", jitter = \"100us\", bytes = 1500 }}\n"
        );
        assert!(parse(&ok).is_ok(), "{:?}", parse(&ok));
        for (text, line, wanted) in [
            ("duplicate = 1.5\n", 4, "duplicate 1.5 is out of range"),
            (
                "loss_correlation = 0.5\n",
                4,
                "`loss_correlation` needs `loss`",
            ),
            ("reorder = 0.5\n", 4, "`reorder` needs a `delay`"),
            (
                "delay = \"1ms\"\ndistribution = \"normal\"\n",
                5,
                "`distribution` needs a `delay` and a `jitter`",
            ),
            (
                "distribution = \"gaussian\"\n",
                4,
                "unknown variant `gaussian`",
            ),
            ("rate = \"fast\"\n", 4, "\"fast\" is not a rate"),
            ("rate_cell_size = 48\n", 4, "`rate_cell_size` needs `rate`"),
            ("loss_model = { gemodel = [] }\n", 4, "gemodel takes 1 to 4"),
            (
                "loss_model = { markov = [0.1] }\n",
                4,
                "unknown variant `markov`",
            ),
            (
                "loss = 0.1\nloss_model = { state = [0.1] }\n",
                4,
                "not both",
            ),
            (
                "slot = { min = \"2ms\", max = \"1ms\" }\n",
                4,
                "max is shorter than min",
            ),
            ("slot = { delay = \"2ms\" }\n", 4, "slot takes { min, max }"),
            ("limit = 0\n", 4, "limit 0 holds no frame"),
        ] {
            let (at, _, message) = error(&format!("{node}{text}"));
            assert_eq!(at, line, "{text}: {message}");
            assert!(message.contains(wanted), "{text}: {message}");
        }
    }

    #[test]
    fn loss_must_be_a_probability() {
        let (line, column, message) = error("name = \"x\"\n[[node]]\nname = \"a\"\nloss = 5.0\n");
        assert_eq!((line, column), (4, 8));
        assert!(message.contains("probability"), "{message}");
    }

    #[test]
    fn pairs_name_existing_distinct_nodes_once() {
        let base = "name = \"x\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";
        let (line, _, message) = error(&format!(
            "{base}[[pair]]\nfrom = \"a\"\nto = \"c\"\ndelay = \"1ms\"\n"
        ));
        assert_eq!(line, 8);
        assert!(message.contains("expected one of a, b"), "{message}");
        let (_, _, message) = error(&format!(
            "{base}[[pair]]\nfrom = \"a\"\nto = \"b\"\nsymmetric = true\n[[pair]]\nfrom = \"b\"\nto = \"a\"\n"
        ));
        assert!(message.contains("already set on line 7"), "{message}");
    }

    #[test]
    fn names_cannot_contain_dashes_or_be_empty() {
        let (_, _, message) = error("name = \"my-lab\"\n[[node]]\nname = \"a\"\n");
        assert!(message.contains("not a valid lab name"), "{message}");
        let (_, _, message) = error("name = \"x\"\n[[node]]\nname = \"\"\n");
        assert!(message.contains("not a valid node name"), "{message}");
    }

    #[test]
    fn addresses_must_be_unique_hosts_of_the_subnet() {
        let (_, _, message) = error(
            "name = \"x\"\nsubnet = \"10.1.0.0/24\"\n[[node]]\nname = \"a\"\naddress = \"10.2.0.1\"\n",
        );
        assert!(message.contains("not a host address"), "{message}");
        let (line, _, message) = error(
            "name = \"x\"\nsubnet = \"10.1.0.0/24\"\n[[node]]\nname = \"a\"\naddress = \"10.1.0.9\"\n[[node]]\nname = \"b\"\naddress = \"10.1.0.9\"\n",
        );
        assert_eq!(line, 8);
        assert!(message.contains("already used on line 5"), "{message}");
    }

    #[test]
    fn ipv4_net_arithmetic() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert_eq!(net.host_count(), 254);
        assert_eq!(net.host(1), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(net.host(255), None);
        assert!(net.overlaps(&"10.0.0.128/25".parse().unwrap()));
        assert!(net.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!net.overlaps(&"10.0.1.0/24".parse().unwrap()));
    }
}
