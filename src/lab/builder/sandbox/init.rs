//! The box's init: PID 1 of the box's PID namespace. It builds the box's root,
//! starts the program, hands it the keeper's signals, reaps every process that
//! ends up with it, and tells the keeper how the program ended. When it exits,
//! the kernel kills whatever is left in the box.
//!
//! It speaks to the keeper on a pipe, one line each: `ready` once the root is
//! built, then `exit N` or `signal N` when the program ended. The keeper
//! answers `ready` with a byte on a pipe of its own, whose end also tells the
//! init that the keeper died.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::spec::BoxSpec;
use super::{mounts, program, sys, SandboxError};

/// Exit status of an init that could not build the box (it said why).
pub const BUILD_FAILED: i32 = 125;

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Killed(Signal),
}

impl Outcome {
    /// The status line that tells the keeper.
    pub fn line(self) -> String {
        match self {
            Outcome::Exited(code) => format!("exit {code}\n"),
            Outcome::Killed(signal) => format!("signal {}\n", signal as i32),
        }
    }

    /// Reads a status line back; `None` for any other line.
    pub fn parse(line: &str) -> Option<Outcome> {
        let (word, number) = line.trim().split_once(' ')?;
        let number: i32 = number.parse().ok()?;
        match word {
            "exit" => Some(Outcome::Exited(number)),
            "signal" => Signal::try_from(number).ok().map(Outcome::Killed),
            _ => None,
        }
    }

    /// What an exit status says, for an init that wrote no line.
    pub fn of(status: WaitStatus) -> Option<Outcome> {
        match status {
            WaitStatus::Exited(_, code) => Some(Outcome::Exited(code)),
            WaitStatus::Signaled(_, signal, _) => Some(Outcome::Killed(signal)),
            _ => None,
        }
    }
}

/// Runs the init, in the keeper's forked child; returns its exit status.
/// `status` is the pipe to the keeper; `alive` brings the keeper's go and
/// hangs up when the keeper dies. `signals` are blocked already.
pub fn run(spec: &BoxSpec, status: OwnedFd, alive: OwnedFd, signals: &SigSet) -> i32 {
    match serve(spec, status, &alive, signals) {
        Ok(Outcome::Exited(code)) => code,
        Ok(Outcome::Killed(signal)) => 128 + signal as i32,
        Err(error) => {
            eprintln!("sdss lab-box: {}: cannot build the box: {error}", spec.node);
            BUILD_FAILED
        }
    }
}

fn serve(
    spec: &BoxSpec,
    status: OwnedFd,
    alive: &OwnedFd,
    signals: &SigSet,
) -> Result<Outcome, SandboxError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("cannot set the death signal"))?;
    // A keeper that died before the line above would leave the box unwatched.
    let mut fds = [PollFd::new(alive.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::ZERO).map_err(sys("cannot check the keeper"))? > 0 {
        return Err(SandboxError::Spec("the keeper died".to_owned()));
    }
    // The memory limit's killer should take the program, not the box.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("cannot make the box's namespaces"))?;
    mounts::build(spec)?;
    let mut status = std::fs::File::from(status);
    status
        .write_all(b"ready\n")
        .map_err(sys("cannot tell the keeper"))?;
    // The keeper's go, once it holds the box's disks; nothing: it died.
    let mut go = [0u8; 1];
    if nix::unistd::read(alive, &mut go) != Ok(1) {
        return Err(SandboxError::Spec("the keeper died".to_owned()));
    }

    // The init is single-threaded; the child only confines itself and execs.
    let (program, ()) = crate::sys::fork_with((), |()| program::exec(spec))
        .map_err(sys("cannot start the program"))?;
    let outcome = supervise(program, signals)?;
    let _ = status.write_all(outcome.line().as_bytes());
    Ok(outcome)
}

/// Hands the keeper's signals to the program's process group and reaps
/// every child until the program has ended.
fn supervise(program: Pid, signals: &SigSet) -> Result<Outcome, SandboxError> {
    loop {
        let signal = signals.wait().map_err(sys("cannot wait for signals"))?;
        if signal != Signal::SIGCHLD {
            // The program leads its own group; before its setsid, only it.
            if kill(Pid::from_raw(-program.as_raw()), signal).is_err() {
                let _ = kill(program, signal);
            }
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(program) => {
                    if let Some(outcome) = Outcome::of(status) {
                        return Ok(outcome);
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_read_back() {
        for outcome in [
            Outcome::Exited(0),
            Outcome::Exited(7),
            Outcome::Killed(Signal::SIGKILL),
            Outcome::Killed(Signal::SIGXFSZ),
        ] {
            assert_eq!(Outcome::parse(&outcome.line()), Some(outcome));
        }
        assert_eq!(Outcome::parse("ready\n"), None);
        assert_eq!(Outcome::parse("signal 999\n"), None);
    }
}
