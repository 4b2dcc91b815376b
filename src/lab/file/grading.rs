//! Grading in a lab file: the `[grade]` section, the names and bounds it
//! needs, and the built-in lab of `sdss lab grade`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{DurationValue, LabSubnet, Locator, Topology, TopologyError};

/// `[grade]`: the scenario played around graded nodes (see `labs/README.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeSection {
    /// How long graded nodes are watched; the scenario's steps are placed in it.
    pub duration: Option<DurationValue>,
    /// The sdss node killed half-way through (default: the last sdss node, when
    /// there are at least two); `""` kills none.
    pub kill: Option<Spanned<String>>,
    /// The seed of the scenario's random choices (the fake peers' IDs, the
    /// ephemeral port range): the same seed plays the same scenario.
    /// Default: one derived from the lab's name.
    pub seed: Option<u32>,
}

/// What the built-in lab of `sdss lab grade` is made of.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinGrade<'a> {
    /// The lab's name.
    pub name: &'a str,
    /// How long the program is watched.
    pub duration: Duration,
    /// The program and its arguments.
    pub command: &'a [String],
    /// Its folder, when not the first argument's.
    pub dir: Option<&'a Path>,
    /// The scenario's seed.
    pub seed: u32,
    /// The lab's subnet, when not the default (labs graded at once each
    /// get their own).
    pub subnet: Option<super::Ipv4Net>,
}

/// The command line's name for what line `line` of the built-in lab's text came from.
fn builtin_option(text: &str, line: usize) -> &'static str {
    let key = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once(" = "))
        .map(|(key, _)| key);
    match (line, key) {
        (1, Some("name")) => "--name",
        (_, Some("subnet")) => "--subnet",
        (_, Some("duration")) => "--duration",
        (_, Some("seed")) => "--seed",
        (_, Some("command")) => "the command after --",
        (_, Some("dir")) => "--dir",
        _ => "the built-in lab of sdss lab grade",
    }
}

/// Name of the lab's grading probe node, added to labs with graded nodes.
pub const PROBE_NODE: &str = "grader";

/// Shortest `[grade] duration`: the scenario's steps need room.
pub const MIN_GRADE_DURATION: Duration = Duration::from_secs(12);

impl Topology {
    /// The built-in lab of `sdss lab grade`: three sdss nodes (one killed
    /// half-way) beside the program, graded for its duration, with
    /// measurements short enough for the run. A lab file like any other,
    /// so it is checked like one; its path names it in errors.
    pub fn grading(grade: &BuiltinGrade<'_>) -> Result<(Topology, PathBuf), TopologyError> {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let argv: Vec<String> = grade.command.iter().map(|a| quote(a)).collect();
        let text = format!(
            "name = {}\n{}[defaults]\nrefresh_every = 2\n[verify]\nsamples = 2\nwarmup = 1\n\
             [grade]\nduration = {}\nseed = {}\n\
             [[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n\
             [[node]]\nname = \"student\"\ncommand = [{}]\ngrade = true\n{}",
            quote(grade.name),
            grade
                .subnet
                .map(|net| format!("subnet = {}\n", quote(&net.to_string())))
                .unwrap_or_default(),
            quote(&crate::units::format_duration(grade.duration)),
            grade.seed,
            argv.join(", "),
            grade
                .dir
                .map(|d| format!("dir = {}\n", quote(&d.to_string_lossy())))
                .unwrap_or_default()
        );
        // No file: its plan's source is empty (`lab status` shows "built in"),
        // and an error names the option its line came from, not a position.
        let path = PathBuf::new();
        Topology::parse(&path, &text)
            .map(|topology| (topology, path))
            .map_err(|e| match e {
                TopologyError::Invalid { line, message, .. } => TopologyError::Builtin {
                    what: builtin_option(&text, line).to_owned(),
                    message,
                },
                other => other,
            })
    }

    /// Whether some node is graded against the assignment.
    pub fn grades(&self) -> bool {
        self.nodes.iter().any(|n| n.grade)
    }

    pub(super) fn validate_grade(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        if !self.grades() {
            return Ok(());
        }
        if let Some(node) = self.nodes.iter().find(|n| n.name.get_ref() == PROBE_NODE) {
            return Err(at.error(
                Some(node.name.span()),
                format!("the node name {PROBE_NODE:?} is reserved for the grading probe in labs with graded nodes: expected another name"),
            ));
        }
        if self.nodes.len() as u64 + 1 > self.subnet().host_count() {
            return Err(at.error(
                Some(self.name.span()),
                "graded labs need one more host address (for the grading probe): expected a larger subnet",
            ));
        }
        if let Some(duration) = self.grade.duration {
            if duration.0 < MIN_GRADE_DURATION {
                return Err(at.error(
                    Some(duration.1..duration.1),
                    format!(
                        "duration {} is too short: expected at least {} s",
                        crate::units::format_duration(duration.0),
                        MIN_GRADE_DURATION.as_secs()
                    ),
                ));
            }
        }
        if let Some(kill) = &self.grade.kill {
            let name = kill.get_ref();
            let ok = name.is_empty()
                || self
                    .nodes
                    .iter()
                    .any(|n| n.name.get_ref() == name && n.command.is_none() && !n.grade);
            if !ok {
                return Err(at.error(
                    Some(kill.span()),
                    format!("[grade] kill = {name:?}: expected the name of an sdss node that is not graded (or \"\" for none)"),
                ));
            }
        }
        Ok(())
    }
}
