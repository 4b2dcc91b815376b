//! The crate's only `unsafe` code: system calls that neither nix, rustix nor
//! socket2 wraps safely, each behind a safe function whose comment says what
//! makes it sound. Everything else is `#![deny(unsafe_code)]`.
//!
//! Process calls are here, socket and device ones in [`net`]; this process's
//! own readings for its metrics (no unsafe: the `procfs` crate) in [`process`].

mod net;
pub mod process;

use std::collections::BTreeSet;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

pub use net::{
    bind_packet, ethtool_set, interface_flags, set_interface_flags, tcp_info, tun_set_iff,
};

/// Exit status of a forked child whose work panicked, as a panicking `main`.
const CHILD_PANICKED: i32 = 101;

/// Forks. The child runs `child` with `parent_part` and `_exit`s with the
/// status it returns, never coming back here; the parent gets the child's
/// pid and `parent_part` back, and drops `child` (so what it captured, e.g.
/// the child's ends of pipes, is closed in the parent). `parent_part` is what
/// only the parent keeps: the child gets it to drop.
///
/// Sound under this contract, which the caller keeps: the process is
/// single-threaded (the box's keeper and init), or `child` makes only
/// async-signal-safe calls (no allocation, no lock), since the child has only
/// the calling thread and any lock another thread held stays held. `_exit`
/// keeps the child out of the parent's destructors, exit handlers and stdio
/// buffers; a panic in `child` ends it with 101 instead of unwinding into the
/// caller's frames.
pub fn fork_with<P>(parent_part: P, child: impl FnOnce(P) -> i32) -> nix::Result<(Pid, P)> {
    // SAFETY: as the contract above; the child's branch never returns.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let code = catch_unwind(AssertUnwindSafe(|| child(parent_part)));
            // SAFETY: _exit(2) ends this process at once; nothing of the
            // parent's runs in it afterwards.
            unsafe { libc::_exit(code.unwrap_or(CHILD_PANICKED)) }
        }
        ForkResult::Parent { child: pid } => Ok((pid, parent_part)),
    }
}

/// Restores the default action of `signal`. Sound: the default action is no
/// handler, so no code of ours can run in a signal's context.
pub fn default_action(signal: Signal) -> nix::Result<()> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no handler.
    unsafe { nix::sys::signal::sigaction(signal, &default) }.map(drop)
}

/// Waits up to `timeout` for one of the blocked `signals` (sigtimedwait(2)):
/// `EAGAIN` when none came, `EINTR` when another signal's handler ran. Sound:
/// the set and the timeout are live for the call and no info is asked for.
pub fn sigtimedwait(signals: &SigSet, timeout: Duration) -> nix::Result<Signal> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: a valid set, a null info pointer and a valid timeout.
    let number = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &timeout) };
    Errno::result(number).and_then(Signal::try_from)
}

/// Puts the calling thread under SCHED_FIFO at `priority`. Sound:
/// sched_setscheduler(2) only reads the param, which is live for the call.
pub fn set_fifo_scheduler(priority: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` is valid.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every descriptor from `first` on close-on-exec (close_range(2) with
/// `CLOSE_RANGE_CLOEXEC`). Sound: it only sets a flag, so no `OwnedFd` of the
/// process is closed under it.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: a plain system call on integer arguments.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(done).map(drop)
}

/// Has `command`'s child enter the namespace `ns` of type `nstype` between
/// its fork and its exec. Sound: the hook makes only setns(2), which is
/// async-signal-safe, and builds its error without allocating; it owns `ns`,
/// so the descriptor is open in the child for as long as `command` may spawn.
pub fn setns_before_exec(command: &mut Command, ns: OwnedFd, nstype: CloneFlags) {
    let hook = move || nix::sched::setns(&ns, nstype).map_err(io::Error::from);
    // SAFETY: as above.
    unsafe { command.pre_exec(hook) };
}

/// The uids and gids of every account, and the gids of every group, of the
/// system's databases (NSS). Sound: the get*ent family keeps one process-wide
/// enumeration, used only under the lock here, and each entry is read before
/// the next call overwrites it.
pub fn account_and_group_ids() -> BTreeSet<u32> {
    static ENUMERATION: Mutex<()> = Mutex::new(());
    let _guard = ENUMERATION.lock().unwrap_or_else(|e| e.into_inner());
    let mut ids = BTreeSet::new();
    // SAFETY: as above; a null entry ends each enumeration.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            ids.insert((*entry).pw_uid);
            ids.insert((*entry).pw_gid);
        }
        libc::endpwent();
        libc::setgrent();
        loop {
            let entry = libc::getgrent();
            if entry.is_null() {
                break;
            }
            ids.insert((*entry).gr_gid);
        }
        libc::endgrent();
    }
    ids
}

/// Calls clone3(2) with no arguments, which the kernel refuses (`EINVAL`) and
/// a seccomp filter that forbids it refuses with its own error.
/// Sound: without arguments nothing is cloned.
#[cfg(test)]
pub fn clone3_without_arguments() -> nix::Result<()> {
    // SAFETY: as above.
    let done = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
    Errno::result(done).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_exits_with_its_status_and_the_parent_keeps_its_part() {
        let (child, kept) = fork_with(7u8, |part| i32::from(part) + 1).unwrap();
        assert_eq!(kept, 7);
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 8));
    }

    #[test]
    fn a_wait_for_no_signal_times_out() {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGUSR2);
        let waited = sigtimedwait(&signals, Duration::from_millis(1));
        assert!(matches!(waited, Err(Errno::EAGAIN)), "{waited:?}");
    }
}
