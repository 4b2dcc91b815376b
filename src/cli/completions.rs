//! `sdss completions SHELL`: the shell's completion script on stdout.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::manual::{self, Shell};

/// Arguments of `sdss completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: sdss completions bash > /etc/bash_completion.d/sdss")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the completion script.
pub fn run(args: CompletionsArgs) -> ExitCode {
    let script = manual::completions(args.shell, super::Cli::command());
    match super::print_bytes(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            super::report_error(&anyhow::Error::new(error).context("writing the script"));
            ExitCode::from(2)
        }
    }
}
