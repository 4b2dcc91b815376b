//! How a lab is named on the command line: by its name, or by its file.

use std::path::Path;

use anyhow::Result;

use crate::lab::file::Topology;

/// A lab name, or the name inside a lab file.
pub(super) fn lab_name(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    if arg.ends_with(".toml") || path.is_file() {
        let topology = Topology::load(path)?;
        return Ok(topology.name.get_ref().clone());
    }
    Ok(arg.to_owned())
}
