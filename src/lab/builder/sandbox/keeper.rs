//! The box keeper: the process the lab starts for a confined node (`sdss
//! lab-box SPEC`), root, in the node's network namespace. It makes the node's
//! cgroups, starts the box's init in new namespaces, forwards the lab's
//! signals, watches the limits, removes the cgroups when the box has ended,
//! and ends as the program did, so the lab sees the program's own death.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, raise, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::pipe2;

use super::cgroup::Cgroup;
use super::hits::Hits;
use super::init::{self, Outcome};
use super::spec::BoxSpec;
use super::{sys, SandboxError};

/// How often, in milliseconds, the keeper looks at the limits while it waits.
const POLL_MS: u16 = 100;
/// The signals the keeper hands on to the box.
const FORWARDED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Runs the box to its end. Returns the exit status to end with: the
/// program's, or [`init::BUILD_FAILED`] when the box could not be made (said
/// on stderr); a program killed by a signal makes the keeper die of it and
/// this never returns.
pub fn run(spec: &BoxSpec) -> u8 {
    // Blocked first: a SIGTERM while the groups are made must not leave them.
    let mut signals = SigSet::empty();
    for signal in FORWARDED.into_iter().chain([Signal::SIGCHLD]) {
        signals.add(signal);
    }
    let result = signals
        .thread_block()
        .map_err(sys("cannot block signals"))
        .and_then(|()| check(spec))
        .and_then(|()| Cgroup::create(&spec.cgroup, &spec.limits, spec.nice));
    let group = match result {
        Ok(group) => group,
        Err(error) => {
            eprintln!("sdss lab-box: {}: {error}", spec.node);
            return init::BUILD_FAILED as u8;
        }
    };
    let outcome = match keep(spec, &group, &signals) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("sdss lab-box: {}: {error}", spec.node);
            None
        }
    };
    group.remove();
    match outcome {
        Some(Outcome::Exited(code)) => code.clamp(0, 255) as u8,
        Some(Outcome::Killed(signal)) => die_of(signal),
        None => init::BUILD_FAILED as u8,
    }
}

/// Refuses a spec that would run the program unconfined or nowhere.
fn check(spec: &BoxSpec) -> Result<(), SandboxError> {
    let refuse = |why: &str| Err(SandboxError::Spec(why.to_owned()));
    if spec.argv.is_empty() {
        return refuse("the command line is empty");
    }
    if spec.user.uid == 0 || spec.user.gid == 0 {
        return refuse("the user is root");
    }
    if !spec.folder.is_absolute() || !spec.cwd.is_absolute() {
        return refuse("the folder and the working directory must be absolute paths");
    }
    if spec.visible.iter().any(|p| !p.is_absolute()) {
        return refuse("a visible path is not absolute");
    }
    Ok(())
}

/// Starts the init in the group and waits for it; the program's outcome.
fn keep(spec: &BoxSpec, group: &Cgroup, signals: &SigSet) -> Result<Option<Outcome>, SandboxError> {
    let (status_in, status_out) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(sys("cannot make a pipe"))?;
    let (alive_in, alive_out) = pipe2(OFlag::O_CLOEXEC).map_err(sys("cannot make a pipe"))?;
    // The status pipe's end the init writes is blocking.
    nix::fcntl::fcntl(&status_out, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
        .map_err(sys("cannot make a pipe"))?;

    group.enter()?;
    let started = unshare(CloneFlags::CLONE_NEWPID)
        .map_err(sys("cannot make the box's PID namespace"))
        .and_then(|()| {
            // The keeper is single-threaded. The child closes the keeper's
            // ends and runs the init; the keeper closes the init's ends.
            crate::sys::fork_with((status_in, alive_out), move |keepers| {
                drop(keepers);
                init::run(spec, status_out, alive_in, signals)
            })
            .map_err(sys("cannot start the box"))
        });
    let (init, (status_in, alive_out)) = match started {
        Ok(started) => started,
        Err(error) => {
            group.leave();
            return Err(error);
        }
    };
    group.leave();
    let signal_fd = SignalFd::with_flags(signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("cannot watch for signals"))?;
    let start = Instant::now();
    let mut hits = Hits::new(spec, start);
    let mut lines = Lines::default();
    let ended = loop {
        let mut fds = [
            PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(status_in.as_fd(), PollFlags::POLLIN),
        ];
        let watched = if lines.closed { 1 } else { 2 };
        match poll(&mut fds[..watched], PollTimeout::from(POLL_MS)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(sys("cannot wait for the box")(errno)),
        }
        while let Ok(Some(info)) = signal_fd.read_signal() {
            let forward = Signal::try_from(info.ssi_signo as i32)
                .ok()
                .filter(|s| FORWARDED.contains(s));
            if let Some(signal) = forward {
                let _ = kill(init, signal);
            }
        }
        if lines.read(&status_in) {
            // The program starts once the keeper holds its disks: even one
            // that ends at once is looked at.
            hits.attach(init, spec);
            let _ = nix::unistd::write(&alive_out, b"g");
        }
        hits.poll(group);
        match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => break Outcome::of(status),
            Err(errno) => return Err(sys("cannot wait for the box")(errno)),
        }
    };
    lines.read(&status_in);
    let outcome = lines.outcome.or(ended);
    hits.finish(group, outcome);
    drop(alive_out);
    Ok(outcome)
}

/// What the init said so far.
#[derive(Default)]
struct Lines {
    text: String,
    ready: bool,
    outcome: Option<Outcome>,
    /// Whether the init closed its end (it is ending): not waited on again.
    closed: bool,
}

impl Lines {
    /// Reads what is there; whether the init has just said `ready`.
    fn read(&mut self, pipe: &OwnedFd) -> bool {
        let mut buffer = [0u8; 256];
        while !self.closed {
            match nix::unistd::read(pipe, &mut buffer) {
                Ok(0) => self.closed = true,
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buffer[..n])),
                Err(_) => break,
            }
        }
        let was_ready = self.ready;
        while let Some((line, rest)) = self.text.split_once('\n') {
            if line == "ready" {
                self.ready = true;
            } else if let Some(outcome) = Outcome::parse(line) {
                self.outcome = Some(outcome);
            }
            self.text = rest.to_owned();
        }
        self.ready && !was_ready
    }
}

/// Dies of `signal` as the program did (without a core file); returns the
/// shell's status for it only if the signal does not kill.
fn die_of(signal: Signal) -> u8 {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = crate::sys::default_action(signal);
    let mut only = SigSet::empty();
    only.add(signal);
    let _ = only.thread_unblock();
    let _ = raise(signal);
    (128 + signal as i32) as u8
}
