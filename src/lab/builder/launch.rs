//! Starting processes inside a lab namespace, and stopping the ones a lab owns.
//!
//! A node is started by a thread that entered its namespace first (a network
//! namespace is a thread's own, and a child is born in its parent thread's):
//! no code runs between fork and exec, so the start is a `posix_spawn`, which
//! does not copy the lab's memory. It runs in a process group of its own (so a
//! Ctrl-C at the terminal reaches `sdss lab up`, which then tears the lab down
//! in order, not the nodes directly; and teardown stops the group), with its
//! output in the lab's state directory. It outlives `lab up`: the lab is left
//! running until `lab down`.

use rustix::process::{getpriority_process, setpriority_pgrp, setpriority_process};
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use thiserror::Error;

use super::pool;
use crate::lab::procfs;

/// Failures to start a process in a namespace.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The program could not be started.
    #[error("starting {program} in namespace {netns}: {source}")]
    Spawn {
        /// argv[0].
        program: String,
        /// The namespace.
        netns: String,
        /// The OS error.
        source: io::Error,
    },
    /// A log file could not be opened.
    #[error("opening log {path}: {source}")]
    Log {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// Nothing to run.
    #[error("empty command line")]
    Empty,
    /// The namespace could not be entered.
    #[error("entering namespace {netns}: {source}")]
    Enter {
        /// The namespace.
        netns: String,
        /// The OS error.
        source: io::Error,
    },
}

/// The command line `argv` with the lab's environment `env`.
fn command(argv: &[String], env: &[(String, String)]) -> Result<Command, LaunchError> {
    let (program, args) = argv.split_first().ok_or(LaunchError::Empty)?;
    let mut command = Command::new(program);
    command.args(args);
    // The caller's own SDSS_* settings (e.g. SDSS_DESTINATIONS) are not the lab's.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SDSS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    Ok(command)
}

/// Builds the command that runs `argv` inside the namespace `ns`, attached to
/// the caller's terminal (`lab exec`).
pub fn command_in(
    ns: File,
    argv: &[String],
    env: &[(String, String)],
) -> Result<Command, LaunchError> {
    let mut command = command(argv, env)?;
    crate::sys::setns_before_exec(&mut command, ns.into(), CloneFlags::CLONE_NEWNET);
    Ok(command)
}

/// Moves the calling thread into the namespace `ns` (named `netns`): what it
/// starts from now on is born there.
fn enter(ns: &File, netns: &str) -> Result<(), LaunchError> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| LaunchError::Enter {
        netns: netns.to_owned(),
        source: e.into(),
    })
}

/// Starts a launch, detached, from the calling thread, which entered its
/// namespace.
fn spawn_here(l: &Launch<'_, File>) -> Result<Child, LaunchError> {
    let mut command = command(&l.argv, &l.env)?;
    command.process_group(0).stdin(Stdio::null());
    let open = |path: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LaunchError::Log {
                path: path.display().to_string(),
                source,
            })
    };
    command.stdout(open(&l.stdout)?);
    command.stderr(open(&l.stderr)?);
    let child = command.spawn().map_err(|source| failed(l, source))?;
    if let Some(nice) = CHILD_NICE.get() {
        // It leads its own process group: every thread it made so far.
        let group = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if group.is_some() {
            let _ = setpriority_pgrp(group, *nice);
        }
    }
    Ok(child)
}

fn failed(l: &Launch<'_, File>, source: io::Error) -> LaunchError {
    LaunchError::Spawn {
        program: l.argv.first().cloned().unwrap_or_default(),
        netns: l.netns.to_owned(),
        source,
    }
}

/// A process to start in a namespace (`ns`, named `netns`), detached, its
/// output appended to two files.
pub struct Launch<'a, N> {
    /// The namespace.
    pub ns: &'a N,
    /// Its name.
    pub netns: &'a str,
    /// The command line.
    pub argv: Vec<String>,
    /// Its environment, beside sdss's own less `SDSS_*`.
    pub env: Vec<(String, String)>,
    /// Where its stdout goes.
    pub stdout: PathBuf,
    /// Where its stderr goes.
    pub stderr: PathBuf,
}

/// How many starts run at once: each waits for its child's `exec`, which
/// waits for a CPU that the nodes already started are using.
const STARTS_AT_ONCE: usize = 8;

/// How much `sdss lab` raises its own threads' priority (lowers their nice
/// value) while it builds and watches a lab: 100 sdss nodes measuring each
/// other as they come up left its threads a fiftieth of the CPU, and a build
/// of 0.2 s took 0.7. A child inherits it until its `exec` is done (a start
/// waits for that), then gets the lab's own value back, with its whole group.
const LAB_BOOST: i32 = 10;

/// The nice value `sdss lab` had before it raised itself: its children's.
static CHILD_NICE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// The nice value of the lab's programs: what `sdss lab` had before it
/// raised itself, else what it has.
pub fn child_nice() -> i32 {
    CHILD_NICE
        .get()
        .copied()
        .unwrap_or_else(|| getpriority_process(None).unwrap_or(0))
}

/// Raises the priority of every thread of this process by [`LAB_BOOST`]
/// (threads made later inherit it), once. Without CAP_SYS_NICE nothing changes.
pub fn raise_priority() {
    if CHILD_NICE.get().is_some() {
        return; // raised already
    }
    let Ok(base) = getpriority_process(None) else {
        return;
    };
    let mut raised = false;
    for tid in procfs::own_threads()
        .into_iter()
        .filter_map(rustix::process::Pid::from_raw)
    {
        // On Linux, PRIO_PROCESS names one thread.
        raised |= setpriority_process(Some(tid), (base - LAB_BOOST).max(-20)).is_ok();
    }
    if raised {
        let _ = CHILD_NICE.set(base);
    }
}

/// Starts every launch, a few at a time, and returns the results in order;
/// after a failure, no new start begins.
pub fn spawn_all(launches: &[Launch<'_, File>]) -> Vec<Result<Child, LaunchError>> {
    let start = |i: usize| {
        let l = &launches[i];
        enter(l.ns, l.netns).and_then(|()| spawn_here(l))
    };
    pool::each(launches.len(), STARTS_AT_ONCE, start)
        .into_iter()
        .zip(launches)
        .map(|(started, l)| {
            started.unwrap_or_else(|| {
                Err(failed(
                    l,
                    io::Error::other("not started: an earlier start failed"),
                ))
            })
        })
        .collect()
}

/// How long a node that a timeline stops (or restarts) gets to exit after
/// SIGTERM: short, since the event's time is when the node is gone.
pub const EVENT_STOP_GRACE: Duration = Duration::from_secs(1);

/// How long every process of a lab gets at teardown: longer, since a
/// program's own clean shutdown is worth waiting for there.
pub const TEARDOWN_STOP_GRACE: Duration = Duration::from_secs(3);

/// Stops processes: SIGTERM (to the whole process group when the process leads
/// one, so a node's pipeline stops with it), up to `grace` to exit, then SIGKILL.
/// `alive` says whether a PID is still the process that was meant.
pub fn stop(pids: &[i32], grace: Duration, alive: impl Fn(i32) -> bool) {
    let signal = |pid: i32, sig: Signal| {
        let target = Pid::from_raw(pid);
        if nix::unistd::getpgid(Some(target)).is_ok_and(|g| g == target) {
            let _ = killpg(target, sig);
        }
        let _ = kill(target, sig);
    };
    let live: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for pid in &live {
        signal(*pid, Signal::SIGTERM);
    }
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        let remaining: Vec<i32> = live.iter().copied().filter(|p| alive(*p)).collect();
        // Collected after the check, so that a process seen exited there is
        // not left a zombie (one that exits after it is seen next round).
        reap(&live);
        if remaining.is_empty() || (killed && Instant::now() >= deadline) {
            return;
        }
        if !killed && Instant::now() >= deadline {
            for pid in remaining {
                signal(pid, Signal::SIGKILL);
            }
            killed = true;
            deadline = Instant::now() + KILL_WAIT;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a SIGKILLed process is waited for, to be collected: it dies at
/// once unless the kernel holds it (a disk it waits on).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// Collects those of `pids` that are exited children of ours, so they do not
/// linger as zombies. Only these: another child's exit status belongs to
/// whoever waits for it (a graded node's, to its checklist).
fn reap(pids: &[i32]) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    for pid in pids {
        // ECHILD for processes that are not our children: nothing to collect.
        let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_one_child_leaves_another_childs_exit_status_to_its_owner() {
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let mut running = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // Let `true` exit and become a zombie waiting for its owner.
        std::thread::sleep(Duration::from_millis(100));
        let pid = running.id() as i32;
        stop(&[pid], Duration::from_secs(2), |p| {
            procfs::Stat::of(p).is_some_and(|stat| stat.state != 'Z')
        });
        let status = exited.try_wait().expect("its status is still there");
        assert!(status.is_some_and(|s| s.success()));
        // `running` was stopped and collected by `stop`: no zombie left.
        let gone = procfs::Stat::of(pid).is_none();
        let _ = running.kill();
        let _ = running.wait();
        assert!(gone, "sleep {pid} still there after stop");
    }
}
