//! What can go wrong in a lab operation, by stage.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::builder::delay::DelayError;
use super::builder::error::BuildError;
use super::builder::launch::LaunchError;
use super::builder::links::LinkError;
use super::builder::netns::NetnsError;
use super::builder::sandbox::SandboxError;
use super::builder::state::StateError;
use super::builder::vxlan::SegmentError;
use super::plan::backend::BackendRefusal;
use super::plan::calibration::CalibrationRefusal;
use super::plan::phase_zero::TooEarly;
use super::plan::probing::ProbingRefusal;
use super::scenario::link_probe::ProbeError;

/// Failures of lab operations.
#[derive(Debug, Error)]
pub enum LabError {
    /// State directory trouble (including "already up").
    #[error(transparent)]
    State(#[from] StateError),
    /// Namespace trouble.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Link trouble.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Joining the other hosts failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Delay backend trouble.
    #[error(transparent)]
    Delay(#[from] DelayError),
    /// No delay backend fits the lab.
    #[error(transparent)]
    Backend(#[from] BackendRefusal),
    /// The lab cannot be calibrated.
    #[error(transparent)]
    Calibration(#[from] CalibrationRefusal),
    /// The lab's links cannot be probed as asked.
    #[error(transparent)]
    Probing(#[from] ProbingRefusal),
    /// The first event comes before the pairs can have their samples.
    #[error(transparent)]
    TooEarly(#[from] TooEarly),
    /// The link probe could not measure.
    #[error(transparent)]
    LinkProbe(#[from] ProbeError),
    /// A node could not be started.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A box's cgroup could not be removed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A live `set` the file's rules refuse.
    #[error(transparent)]
    SetInvalid(#[from] crate::lab::file::live::SetError),
    /// A live `set` the running lab cannot take.
    #[error(transparent)]
    Live(#[from] crate::lab::plan::live::LiveError),
    /// A lab `lab set` leaves alone.
    #[error(transparent)]
    SetRefused(#[from] crate::lab::plan::live::SetRefusal),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: the lab was torn down")]
    Cancelled,
    /// The metrics server (`--metrics`) could not listen.
    #[error(transparent)]
    Metrics(crate::output::endpoint::EndpointError),
    /// A step that needs the lab built was asked of sites that are not.
    #[error("the lab is not built here")]
    NotBuilt,
    /// No such node in the lab.
    #[error("lab {lab} has no node {node}: its nodes are {known}")]
    NoNode {
        /// The lab.
        lab: String,
        /// The name asked for.
        node: String,
        /// The names it has.
        known: String,
    },
    /// The grading probe failed.
    #[error("grading probe: {0}")]
    Probe(String),
    /// The terminal (or stdout) of `lab watch` failed.
    #[error("terminal: {0}")]
    Terminal(#[source] io::Error),
    /// A graded namespace's port range, an unknown node to start, a state
    /// file to write: the build's own failures.
    #[error(transparent)]
    Build(BuildError),
    /// A log could not be read.
    #[error("reading {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl From<BuildError> for LabError {
    /// The build's failures as every stage's: one variant per cause, so that
    /// a caller matches `LabError::Cancelled` whichever stage saw Ctrl-C.
    fn from(error: BuildError) -> LabError {
        match error {
            BuildError::State(e) => LabError::State(e),
            BuildError::Netns(e) => LabError::Netns(e),
            BuildError::Link(e) => LabError::Link(e),
            BuildError::Segment(e) => LabError::Segment(e),
            BuildError::Delay(e) => LabError::Delay(e),
            BuildError::Launch(e) => LabError::Launch(e),
            BuildError::Sandbox(e) => LabError::Sandbox(e),
            BuildError::Cancelled => LabError::Cancelled,
            other => LabError::Build(other),
        }
    }
}
