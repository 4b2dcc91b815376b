//! What can go wrong while a lab's kernel objects are made, changed or
//! removed: the build's own error, which `LabError` takes in whole.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::delay::DelayError;
use super::launch::LaunchError;
use super::links::LinkError;
use super::netns::NetnsError;
use super::sandbox::{ConfineError, SandboxError};
use super::state::StateError;
use super::vxlan::SegmentError;

/// Failures of the build, its live changes and its teardown.
#[derive(Debug, Error)]
pub enum BuildError {
    /// State directory trouble (including "already up").
    #[error(transparent)]
    State(#[from] StateError),
    /// Namespace trouble.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Link trouble.
    #[error(transparent)]
    Link(LinkError),
    /// Joining the other hosts failed.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// Delay backend trouble.
    #[error(transparent)]
    Delay(#[from] DelayError),
    /// A node could not be started.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// A box's cgroup could not be removed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A node's box could not be prepared.
    #[error(transparent)]
    Confine(#[from] ConfineError),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: the lab was torn down")]
    Cancelled,
    /// The plan has no node of this name (a timeline's `start`).
    #[error("no node {0} in the lab's plan")]
    UnknownNode(String),
    /// A graded namespace's ephemeral port range could not be set.
    #[error("setting the port range of {netns}: {message}")]
    PortRange {
        /// The namespace.
        netns: String,
        /// What failed.
        message: String,
    },
    /// A file of the lab's state could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl From<LinkError> for BuildError {
    /// A cancelled wiring is the build's cancellation, one variant for it.
    fn from(error: LinkError) -> BuildError {
        match error {
            LinkError::Cancelled => BuildError::Cancelled,
            other => BuildError::Link(other),
        }
    }
}
