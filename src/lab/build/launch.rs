//! Starting processes inside a lab namespace, and stopping the ones a lab owns.
//!
//! A node runs in its namespace (`setns` in `pre_exec`, between fork and exec,
//! where only the child is affected), in a session of its own (so a Ctrl-C at
//! the terminal reaches `sdss lab up`, which then tears the lab down in order,
//! not the nodes directly), with its output in the lab's state directory. It
//! outlives `lab up`: the lab is left running until `lab down`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use thiserror::Error;

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
}

/// Where a started process's output goes.
pub enum Output<'a> {
    /// Into these files (a lab's node logs), appended.
    Files {
        /// stdout.
        stdout: &'a Path,
        /// stderr.
        stderr: &'a Path,
    },
    /// Inherited from sdss (`lab exec`).
    Inherit,
}

/// Builds the command that runs `argv` inside the namespace `ns`.
/// `detach` puts it in a session of its own.
pub fn command_in(
    ns: &File,
    argv: &[String],
    env: &[(String, String)],
    detach: bool,
) -> Result<Command, LaunchError> {
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
    let fd = ns.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls happen:
    // setns(2) and setsid(2) are plain system calls; the fd stays open in the
    // parent until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if detach && libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// Starts `argv` in the namespace `ns` (named `netns`), detached, output to files.
pub fn spawn_node(
    ns: &File,
    netns: &str,
    argv: &[String],
    env: &[(String, String)],
    output: Output<'_>,
) -> Result<Child, LaunchError> {
    let mut command = command_in(ns, argv, env, true)?;
    command.stdin(Stdio::null());
    if let Output::Files { stdout, stderr } = output {
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
        command.stdout(open(stdout)?);
        command.stderr(open(stderr)?);
    }
    command.spawn().map_err(|source| LaunchError::Spawn {
        program: argv.first().cloned().unwrap_or_default(),
        netns: netns.to_owned(),
        source,
    })
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

/// How much the starting threads raise their priority (lower their nice value)
/// while the nodes already started compete for the CPU: 100 sdss nodes
/// measuring each other as they come up made the last starts wait 10-25 ms
/// each. A child inherits it until its `exec` is done (the start waits for
/// that), then gets the lab's own back, with every thread of its group.
const STARTER_BOOST: i32 = 10;

/// Starts every launch, a few at a time, and returns the results in order.
pub fn spawn_all(launches: &[Launch<'_, File>]) -> Vec<Result<Child, LaunchError>> {
    let next = AtomicUsize::new(0);
    // SAFETY: getpriority has no preconditions; -1 is also a valid nice value,
    // and an error leaves the children at the starters' own priority.
    let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let started: Vec<(usize, Result<Child, LaunchError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..STARTS_AT_ONCE.min(launches.len()))
            .map(|_| {
                scope.spawn(|| {
                    // Per thread on Linux (`who` 0 is the calling thread); without
                    // CAP_SYS_NICE it fails and the starts go on unboosted.
                    // SAFETY: plain system calls on the calling thread.
                    let boosted = unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, 0, (base - STARTER_BOOST).max(-20))
                    } == 0;
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(l) = launches.get(i) else {
                            return mine;
                        };
                        let output = Output::Files {
                            stdout: &l.stdout,
                            stderr: &l.stderr,
                        };
                        let started = spawn_node(l.ns, l.netns, &l.argv, &l.env, output);
                        if let (true, Ok(child)) = (boosted, &started) {
                            // A node leads its own process group (setsid).
                            // SAFETY: a plain system call on our own child's group.
                            unsafe {
                                libc::setpriority(libc::PRIO_PGRP, child.id(), base);
                            }
                        }
                        mine.push((i, started));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut results: Vec<Option<Result<Child, LaunchError>>> =
        (0..launches.len()).map(|_| None).collect();
    for (i, result) in started {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .zip(launches)
        .map(|(r, l)| {
            r.unwrap_or_else(|| {
                Err(LaunchError::Spawn {
                    program: l.argv.first().cloned().unwrap_or_default(),
                    netns: l.netns.to_owned(),
                    source: io::Error::other("the starting thread panicked"),
                })
            })
        })
        .collect()
}

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
    let deadline = Instant::now() + grace;
    loop {
        reap(&live);
        let remaining: Vec<i32> = live.iter().copied().filter(|p| alive(*p)).collect();
        if remaining.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for pid in remaining {
                signal(pid, Signal::SIGKILL);
            }
            reap(&live);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        });
        let status = exited.try_wait().expect("its status is still there");
        assert!(status.is_some_and(|s| s.success()));
        // `running` was stopped and collected by `stop`: no zombie left.
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        let _ = running.kill();
        let _ = running.wait();
        assert!(gone, "sleep {pid} still there after stop");
    }
}
