//! `sdss node`: run one node until SIGINT or SIGTERM.

use std::process::ExitCode;

/// Arguments of `sdss node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {}

/// Runs a node.
pub fn run(_args: NodeArgs) -> ExitCode {
    ExitCode::from(2)
}
