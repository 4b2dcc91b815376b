//! How the programs nobody here wrote are confined: whether, as whom, and
//! within which limits (the file's `[sandbox]` table, `--no-sandbox`).
//!
//! Every program a lab starts that is not sdss itself (a `command` node, and
//! any graded node, sdss included) runs boxed by default: an unprivileged user,
//! a mount and PID namespace of its own, limits, a seccomp filter
//! (`build::sandbox` sets it up). The defaults are far above what a correct
//! solution of the assignment uses, in Python, C or Java.

use serde::{Deserialize, Serialize};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// What a confined program may use. Each limit a program hits is reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of memory its processes may hold together, the pages of its
    /// private `/tmp` and folder included (memory cgroup); over it, the kernel
    /// kills one of its processes.
    pub memory: u64,
    /// Processes and threads it may have at once (pids cgroup); over it, a
    /// fork fails.
    pub tasks: u64,
    /// CPU cores' worth of time it may use (CFS quota); over it, it waits.
    pub cpu: f64,
    /// Files each of its processes may have open (`RLIMIT_NOFILE`).
    pub files: u64,
    /// Bytes one file it writes may grow to (`RLIMIT_FSIZE`).
    pub file_size: u64,
    /// Bytes its private `/tmp` may hold, and its folder beyond the copy
    /// it starts with (each a tmpfs of that size).
    pub disk: u64,
}

impl Default for Limits {
    /// Far above what the assignment needs: a JVM with its threads fits in
    /// a tenth of this memory, and no solution needs a second core.
    fn default() -> Limits {
        Limits {
            memory: 512 * MIB,
            tasks: 256,
            cpu: 1.0,
            files: 1024,
            file_size: 64 * MIB,
            disk: 64 * MIB,
        }
    }
}

/// The lab's `[sandbox]` settings, settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSettings {
    /// Whether programs are confined (`enabled = false`, `--no-sandbox`: no).
    pub enabled: bool,
    /// The account they run as; `None`: a uid and gid no account uses, one
    /// per node, as systemd's `DynamicUser=` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Their limits.
    pub limits: Limits,
}

impl Default for SandboxSettings {
    fn default() -> SandboxSettings {
        SandboxSettings {
            enabled: true,
            user: None,
            limits: Limits::default(),
        }
    }
}
