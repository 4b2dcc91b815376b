//! How a lab is named on the command line: by its name, or by its file.

use std::path::Path;

use anyhow::Result;

use crate::lab::file::Topology;
use crate::lab::plan::Plan;

/// A lab as the command line named it, its file read once.
pub(super) enum LabArg {
    /// By name: the lab's state says the rest.
    Name(String),
    /// By file: the plan the file makes, for when no state is left.
    File(Box<Plan>),
}

impl LabArg {
    /// Reads `arg` as a lab file when it is one (ends in `.toml` or is a
    /// file), as a lab's name otherwise.
    pub(super) fn parse(arg: &str) -> Result<LabArg> {
        if is_file(arg) {
            let path = Path::new(arg);
            let topology = Topology::load(path)?;
            return Ok(LabArg::File(Box::new(Plan::new(&topology, path))));
        }
        Ok(LabArg::Name(arg.to_owned()))
    }

    /// The lab's name.
    pub(super) fn name(&self) -> &str {
        match self {
            LabArg::Name(name) => name,
            LabArg::File(plan) => &plan.lab,
        }
    }

    /// The plan of the file, when the lab was named by one.
    pub(super) fn file_plan(&self) -> Option<&Plan> {
        match self {
            LabArg::Name(_) => None,
            LabArg::File(plan) => Some(plan),
        }
    }
}

/// A lab name, or the name inside a lab file (read, not planned: only the
/// name is wanted).
pub(super) fn lab_name(arg: &str) -> Result<String> {
    if is_file(arg) {
        return Ok(Topology::load(Path::new(arg))?.name.get_ref().clone());
    }
    Ok(arg.to_owned())
}

/// Whether the command line names a lab by its file.
fn is_file(arg: &str) -> bool {
    arg.ends_with(".toml") || Path::new(arg).is_file()
}
