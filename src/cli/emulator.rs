//! `sdss lab-emulator SPEC.json` (hidden): the userspace link emulator as a daemon
//! of its own, started by `sdss lab up` and stopped by `sdss lab down`.
//!
//! Protocol with the lab: `ready` on stdout once every TAP is up (and the
//! uplink to other hosts bound, if the spec has one); SIGTERM or SIGINT
//! stops it, and the counters go to stderr; with `--counters FILE` they are also
//! kept in FILE, rewritten every second, for the lab's report; with `--late
//! FILE`, the frames with a TCP payload it delivered late (or that reached it
//! well after the time they carry) are appended to FILE every second, one line
//! each, for the lab's judge. With `--control
//! SOCKET`, it takes live link changes on that Unix socket: one JSON line per
//! connection, the whole matrix of impairments (row: sender port; column:
//! receiving port, then each of the uplink's remote nodes; a cell is one
//! impairment, or `{"first": .., "then": ..}` for two stages in series),
//! answered `ok` once frames follow it. Any failure exits non-zero with nothing left
//! behind (the TAPs die with the process).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::lab::builder::emulator;

/// Arguments of `sdss lab-emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// The JSON spec the lab wrote: ports (namespace, interface), per-pair impairments,
    /// and optionally an uplink to the lab's other hosts.
    spec: PathBuf,
    /// Where to keep the counters (JSON, rewritten every second and at the end),
    /// for the lab's report.
    #[arg(long)]
    counters: Option<PathBuf>,
    /// Where to append the frames with a TCP payload delivered late or held by
    /// their sender (one line each: wall-clock microseconds, from port, to port,
    /// TCP source port, microseconds late, microseconds held), every second, for
    /// the lab's judge.
    #[arg(long)]
    late: Option<PathBuf>,
    /// A Unix socket to create for live link changes.
    #[arg(long)]
    control: Option<PathBuf>,
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
    let handle = std::sync::Arc::new(handle);
    if let Some(path) = &args.control {
        let listener = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("cannot create the control socket {}", path.display()))?;
        let control = handle.clone();
        std::thread::Builder::new()
            .name("sdss-emu-control".to_owned())
            .spawn(move || serve_control(&listener, &control))
            .context("cannot start the control thread")?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")
        .and_then(|()| stdout.flush())
        .context("cannot tell the lab the emulator is ready")?;
    drop(stdout);
    let mut late = LateLog::default();
    let signal = loop {
        if let Some(path) = &args.counters {
            // Best effort: the counters are a diagnostic, forwarding goes on without them.
            let _ = handle.counters().write_to(path);
        }
        if let Some(path) = &args.late {
            late.append(&handle, path);
        }
        match wait_for(&signals, COUNTERS_PERIOD) {
            Ok(Some(signal)) => break signal,
            Ok(None) => {}
            Err(errno) => {
                return Err(errno).context("cannot wait for SIGTERM or SIGINT");
            }
        }
    };
    eprintln!("sdss lab-emulator: {signal}, stopping");
    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
    }
    let counters = handle.counters();
    if let Some(path) = &args.late {
        late.append(&handle, path);
    }
    drop(handle); // The control thread's clone dies with the process.
    if let Some(path) = &args.counters {
        let _ = counters.write_to(path);
    }
    Ok(counters)
}

/// The late deliveries appended so far, drained from the emulator's ring.
#[derive(Default)]
struct LateLog {
    cursor: u64,
    entries: Vec<emulator::LateDelivery>,
}

impl LateLog {
    /// Appends what the ring holds since the last call to `path`, and a `missed
    /// N` line for entries overwritten before they were drained. Best effort,
    /// like the counters: the judge then sets aside fewer samples.
    fn append(&mut self, handle: &emulator::EmulatorHandle, path: &std::path::Path) {
        self.entries.clear();
        let missed = handle.drain_late(&mut self.cursor, &mut self.entries);
        if self.entries.is_empty() && missed == 0 {
            return;
        }
        let mut text: String = self.entries.iter().map(|e| e.line()).collect();
        if missed > 0 {
            text.push_str(&format!("missed {missed}\n"));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        let _ = file.and_then(|mut f| f.write_all(text.as_bytes()));
    }
}

/// Takes live link changes, one connection each, until the process ends.
fn serve_control(listener: &std::os::unix::net::UnixListener, handle: &emulator::EmulatorHandle) {
    use std::io::{BufRead, BufReader};
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let answer = match serde_json::from_str::<Vec<Vec<emulator::Stages>>>(&line) {
            Ok(matrix) => match handle.set_matrix(matrix, Duration::from_secs(2)) {
                Ok(()) => "ok\n".to_owned(),
                Err(error) => format!("error: {error}\n"),
            },
            Err(error) => format!("error: not a matrix: {error}\n"),
        };
        let _ = (&stream).write_all(answer.as_bytes());
    }
}

/// How often the counters file is rewritten.
const COUNTERS_PERIOD: Duration = Duration::from_secs(1);

/// Waits up to `timeout` for one of the blocked `signals`.
fn wait_for(signals: &SigSet, timeout: Duration) -> Result<Option<Signal>, Errno> {
    match crate::sys::sigtimedwait(signals, timeout) {
        Ok(signal) => Ok(Some(signal)),
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(None),
        Err(errno) => Err(errno),
    }
}
