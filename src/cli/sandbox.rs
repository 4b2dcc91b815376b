//! `sdss lab-box SPEC.json` (hidden): the keeper of one confined node,
//! started by the lab as the node's process. It runs the spec's program boxed
//! and ends as the program did: its exit status, or death by its signal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::lab::builder::sandbox::{keeper, spec::BoxSpec};

/// Arguments of `sdss lab-box`.
#[derive(Debug, clap::Args)]
pub struct BoxArgs {
    /// The JSON spec the lab wrote: program, folder, user, limits, cgroup, hits file.
    spec: PathBuf,
}

/// Reads the spec and keeps the box until the program ends.
pub fn run(args: BoxArgs) -> ExitCode {
    match load(&args.spec) {
        Ok(spec) => ExitCode::from(keeper::run(&spec)),
        Err(error) => {
            eprintln!("sdss lab-box: {error:#}");
            ExitCode::from(crate::lab::builder::sandbox::init::BUILD_FAILED as u8)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<BoxSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the box spec {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("the box spec {} is invalid", path.display()))
}
