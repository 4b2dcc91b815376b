//! The confined program's last steps before its exec, in the process that
//! becomes it: limits, an unprivileged user with no capability left,
//! `no_new_privs`, the seccomp filter, its folder, its environment.

use std::ffi::CString;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{chdir, execvp, setgroups, setresgid, setresuid, setsid, Gid, Uid};
use rustix::io::Errno;
use rustix::thread::{
    clear_ambient_capability_set, remove_capability_from_bounding_set, set_capabilities,
    CapabilitySet, CapabilitySets,
};

use super::spec::BoxSpec;
use super::{seccomp, sys, SandboxError};

/// The `PATH` a program gets when its environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exit status when the program could not be confined (it never ran).
pub const CONFINE_FAILED: i32 = 126;
/// Exit status when its executable could not be started.
pub const EXEC_FAILED: i32 = 127;

/// Confines the calling process (the init's forked child) and execs the
/// program; returns only on a failure, said on stderr, with the status to
/// exit with, the program never having run.
pub fn exec(spec: &BoxSpec) -> i32 {
    match confine(spec) {
        Ok(()) => start(spec),
        Err(error) => {
            eprintln!(
                "sdss lab-box: {}: cannot confine the program: {error}",
                spec.node
            );
            CONFINE_FAILED
        }
    }
}

/// Everything but the exec; the order matters: limits and groups need root,
/// capabilities go with the user, the filter last (it refuses nothing used
/// after it).
fn confine(spec: &BoxSpec) -> Result<(), SandboxError> {
    default_signals()?;
    setsid().map_err(sys("cannot start a session"))?;
    // The init is shielded from the memory limit's killer; the program is not.
    std::fs::write("/proc/self/oom_score_adj", "0").map_err(sys("cannot reset oom_score_adj"))?;
    let limits = &spec.limits;
    for (resource, value) in [
        (Resource::RLIMIT_NOFILE, limits.files),
        (Resource::RLIMIT_FSIZE, limits.file_size),
        (Resource::RLIMIT_CORE, 0),
    ] {
        setrlimit(resource, value, value).map_err(sys(format!("cannot set {resource:?}")))?;
    }
    drop_bounding_set()?;
    let (uid, gid) = (Uid::from_raw(spec.user.uid), Gid::from_raw(spec.user.gid));
    if uid.is_root() || gid.as_raw() == 0 {
        return Err(SandboxError::Spec("the box user is root".to_owned()));
    }
    setgroups(&[]).map_err(sys("cannot drop the supplementary groups"))?;
    setresgid(gid, gid, gid).map_err(sys(format!("cannot become group {gid}")))?;
    setresuid(uid, uid, uid).map_err(sys(format!("cannot become user {uid}")))?;
    clear_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("cannot set no_new_privs"))?;
    seccomp::install()?;
    chdir(&spec.cwd).map_err(sys(format!("cannot enter {}", spec.cwd.display())))?;
    set_environment(&spec.env);
    // Whatever the lab left open is not the program's (the keeper's own
    // descriptors are close-on-exec already).
    let _ = crate::sys::cloexec_from(3);
    Ok(())
}

/// Execs the program; returns only the status for a failure, said on stderr.
fn start(spec: &BoxSpec) -> i32 {
    let argv: Result<Vec<CString>, _> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect();
    let error = match argv {
        Ok(argv) if !argv.is_empty() => match execvp(&argv[0], &argv) {
            Err(errno) => std::io::Error::from(errno).to_string(),
        },
        Ok(_) => "the command line is empty".to_owned(),
        Err(_) => "an argument holds a NUL byte".to_owned(),
    };
    let name = spec.argv.first().map_or("", String::as_str);
    eprintln!(
        "sdss lab-box: {}: cannot start {name:?}: {error}",
        spec.node
    );
    EXEC_FAILED
}

/// The program starts with every signal unblocked and handled by default
/// (the keeper blocked some, and Rust ignores SIGPIPE; both are inherited).
fn default_signals() -> Result<(), SandboxError> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("cannot unblock the signals"))?;
    for signal in Signal::iterator() {
        if !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            let _ = crate::sys::default_action(signal);
        }
    }
    Ok(())
}

/// Drops every capability from the bounding set, so none can come back
/// through an exec.
fn drop_bounding_set() -> Result<(), SandboxError> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(63);
    // A set holds capabilities 0 to 63, the most a kernel has room for.
    for cap in 0..=last.min(63) {
        let one = CapabilitySet::from_bits_retain(1 << cap);
        match remove_capability_from_bounding_set(one) {
            Ok(()) | Err(Errno::INVAL) => {}
            Err(errno) => return Err(sys(format!("cannot drop capability {cap}"))(errno)),
        }
    }
    Ok(())
}

/// Empties the effective, permitted, inheritable and ambient sets (the user
/// change emptied the first two; the inheritable set survives it).
fn clear_capabilities() -> Result<(), SandboxError> {
    let none = CapabilitySet::empty();
    set_capabilities(
        None,
        CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )
    .map_err(sys("cannot clear the capabilities"))?;
    clear_ambient_capability_set().map_err(sys("cannot clear the ambient capabilities"))?;
    Ok(())
}

/// The program's environment: the spec's, with a `PATH` and a `HOME` when it
/// has none. Set on this process, so that `execvp` searches that `PATH`.
fn set_environment(env: &[(String, String)]) {
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    for (key, value) in environment(env) {
        std::env::set_var(key, value);
    }
}

fn environment(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = env
        .iter()
        .filter(|(k, v)| !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0'))
        .cloned()
        .collect();
    for (key, value) in [("PATH", DEFAULT_PATH), ("HOME", "/tmp")] {
        if !all.iter().any(|(k, _)| k == key) {
            all.push((key.to_owned(), value.to_owned()));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_gets_a_path_and_a_home_only_when_missing() {
        let env = environment(&[("PATH".into(), "/bin".into()), ("A".into(), "1".into())]);
        assert_eq!(
            env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("A".into(), "1".into()),
                ("HOME".into(), "/tmp".into())
            ]
        );
        let env = environment(&[("A=B".into(), "1".into())]);
        assert_eq!(env.len(), 2);
        assert_eq!(env[0], ("PATH".to_owned(), DEFAULT_PATH.to_owned()));
    }
}
