#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    sdss::cli::dispatch(sdss::cli::Cli::parse())
}
