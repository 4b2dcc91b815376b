//! `sdss lab-emulator SPEC.json` (hidden): the userspace link emulator as a daemon
//! of its own, started by `sdss lab up` and stopped by `sdss lab down`.
//!
//! Protocol with the lab: `ready` on stdout once every TAP is up; SIGTERM or SIGINT
//! stops it, and the counters go to stderr; any failure exits non-zero with
//! nothing left behind (the TAPs die with the process).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::lab::emulator;

/// Arguments of `sdss lab-emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// The JSON spec the lab wrote: ports (namespace, interface) and per-pair impairments.
    spec: PathBuf,
}

/// Runs the emulator until SIGTERM or SIGINT.
pub fn run(args: EmulatorArgs) -> ExitCode {
    match serve(&args) {
        Ok(counters) => {
            eprint!("{counters}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            super::report_error(&error);
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &EmulatorArgs) -> anyhow::Result<emulator::Counters> {
    // Blocked before any thread exists, so every thread inherits the mask and the
    // signals wait for `sigwait` below instead of killing the process mid-frame.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .context("cannot block SIGTERM and SIGINT")?;

    let spec = emulator::load_spec(&args.spec)?;
    let handle = emulator::spawn(&spec).context("emulator did not start")?;
    if let emulator::Priority::Normal(Some(reason)) = handle.priority() {
        eprintln!("sdss lab-emulator: no real-time priority ({reason}); a busy machine may make frames late");
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")
        .and_then(|()| stdout.flush())
        .context("cannot tell the lab the emulator is ready")?;
    drop(stdout);
    let signal = signals
        .wait()
        .context("cannot wait for SIGTERM or SIGINT")?;
    eprintln!("sdss lab-emulator: {signal}, stopping");
    Ok(handle.stop())
}
