//! The command line: clap types and dispatch. Each command lives in a file of its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod emulator;
pub mod lab;
pub mod node;

/// Simple Delay Sync Service: a node, and network-namespace labs to verify nodes.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one SDSS node: announce, discover peers, measure the delay to each.
    Node(node::NodeArgs),
    /// Network-namespace labs that inject delays and verify what nodes measure.
    Lab(lab::LabArgs),
    #[command(hide = true, name = "lab-emulator")]
    LabEmulator(emulator::EmulatorArgs),
}

/// Runs the command the user asked for and turns its outcome into an exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Node(args) => node::run(args),
        Command::Lab(args) => lab::run(args),
        Command::LabEmulator(args) => emulator::run(args),
    }
}

/// Prints an error with its chain of causes, the way every command reports failure.
pub fn report_error(error: &anyhow::Error) {
    eprintln!("sdss: {error:#}");
}
