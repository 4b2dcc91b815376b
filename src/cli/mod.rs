//! The command line: clap types and dispatch. Each command lives in a file of its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod completions;
pub mod emulator;
pub mod lab;
pub mod man;
pub mod node;
pub mod sandbox;

/// Simple Delay Sync Service: a node, and network-namespace labs to verify nodes.
#[derive(Debug, Parser)]
#[command(name = "sdss", version, about, propagate_version = true)]
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
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a folder.
    Man(man::ManArgs),
    #[command(hide = true, name = "lab-emulator")]
    LabEmulator(emulator::EmulatorArgs),
    #[command(hide = true, name = "lab-box")]
    LabBox(sandbox::BoxArgs),
}

/// Runs the command the user asked for and turns its outcome into an exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Node(args) => node::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        Command::LabEmulator(args) => emulator::run(args),
        Command::LabBox(args) => sandbox::run(args),
    }
}

/// Prints an error with its chain of causes, the way every command reports failure.
pub fn report_error(error: &anyhow::Error) {
    eprintln!("sdss: {}", chain(error));
}

/// The error and its causes, joined by `: `. A cause that its error's
/// message already ends with is said once: many library errors name their
/// OS error in their message and give it as their source too.
fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Writes `bytes` to stdout. A reader that went away (`sdss man | head`) is no
/// error: it ends sdss as it ends any filter.
pub fn print_bytes(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("starting x: {source}")]
    struct Spawn {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_errors_message_is_said_once() {
        let os = std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Spawn { source: os }).context("running x in lab l");
        assert_eq!(
            chain(&error),
            "running x in lab l: starting x: entity not found"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&plain), "outer: inner");
    }
}
