//! The system calls a confined program is refused: those that would reach
//! past its namespaces (mounts, other namespaces, other processes' memory),
//! load code into the kernel, or change the machine (clock, swap, reboot).
//! Everything else is allowed, so any ordinary program runs unchanged.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::SandboxError;

/// Refused with `EPERM` whatever their arguments.
const REFUSED: &[libc::c_long] = &[
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_bpf,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
];

/// `clone` flags that make a namespace: a `clone` with any is refused.
/// (`CLONE_NEWTIME` shares its bit with the exit signal in `clone`'s flags,
/// so only `unshare` and `clone3` could ask for it, and both are refused.)
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The filters, in the order they are installed: the refusals with `EPERM`,
/// then `clone3` with `ENOSYS`. Its flags are behind a pointer a filter cannot
/// read; with `ENOSYS` the C library falls back to `clone`, which is checked.
pub fn filters() -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| SandboxError::Seccomp(format!("{e}")))?;
    let error = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> =
        REFUSED.iter().map(|&nr| (nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            let condition = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    refused.insert(libc::SYS_clone, clone_rules);
    let eperm = SeccompFilter::new(
        refused,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(error)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(error)?;
    [eperm, clone3]
        .into_iter()
        .map(|filter| {
            BpfProgram::try_from(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))
        })
        .collect()
}

/// Installs the filters on the calling thread (and what it execs). Sets
/// `no_new_privs`, which an unprivileged process needs for it.
pub fn install() -> Result<(), SandboxError> {
    for filter in filters()? {
        seccompiler::apply_filter(&filter).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        let filters = filters().unwrap();
        assert_eq!(filters.len(), 2);
        assert!(filters.iter().all(|f| !f.is_empty() && f.len() < 4096));
    }

    /// In a child process, so the filter stays off the test runner.
    #[test]
    fn a_filtered_process_is_refused_mount_and_namespaces_but_forks() {
        // Built before the fork: the child of a threaded test runner should not allocate.
        let filters = filters().unwrap();
        // The child only makes system calls and exits.
        let (child, ()) = crate::sys::fork_with((), |()| {
            (|| {
                for filter in &filters {
                    seccompiler::apply_filter(filter).ok()?;
                }
                let unshare = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS);
                if unshare != Err(nix::errno::Errno::EPERM) {
                    return Some(2);
                }
                let clone3 = crate::sys::clone3_without_arguments();
                if clone3 != Err(nix::errno::Errno::ENOSYS) {
                    return Some(3);
                }
                // The grandchild exits at once.
                let (grandchild, ()) = crate::sys::fork_with((), |()| 0).ok()?;
                nix::sys::wait::waitpid(grandchild, None).ok()?;
                Some(0)
            })()
            .unwrap_or(1)
        })
        .unwrap();
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }
}
