//! `sdss lab`: bring labs up and down and grade what their nodes measure.

use std::process::ExitCode;

/// Arguments of `sdss lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LabCommand {
    /// Create a lab from a TOML file, start its nodes and verify their delays.
    Up {
        /// The lab file.
        file: std::path::PathBuf,
    },
}

/// Runs a lab subcommand.
pub fn run(args: LabArgs) -> ExitCode {
    let LabCommand::Up { file } = args.command;
    eprintln!("sdss: lab support is not built yet ({})", file.display());
    ExitCode::from(2)
}
