//! Confinement of the programs nobody here wrote (see `plan::sandbox`).
//!
//! `sdss lab-box SPEC` is the node's process: its [`keeper`] makes the
//! node's cgroups, starts the box's [`init`] in new namespaces, watches the
//! limits and hands the program's death on. The init builds the box's root
//! ([`mounts`]) and starts the program, which drops every privilege
//! ([`program`], [`seccomp`]) before its exec. [`identity`] picks who it runs
//! as; [`cgroup::remove_cgroup`] is what the lab's teardown calls on what a
//! killed keeper left.

pub mod cgroup;
mod hits;
pub mod identity;
pub mod init;
pub mod keeper;
pub mod mounts;
pub mod outcome;
pub mod program;
pub mod seccomp;
pub mod spec;
pub mod start;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a node's box could not be prepared.
#[derive(Debug, Error)]
#[error("confining node {node}: {source}")]
pub struct ConfineError {
    /// The node.
    pub node: String,
    /// Why.
    #[source]
    pub source: SandboxError,
}

/// Why a box could not be made, or a user not picked.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// A system call failed.
    #[error("{action}: {source}")]
    Sys {
        /// What was being done, with its object.
        action: String,
        /// The OS error.
        source: io::Error,
    },
    /// `[sandbox] user` names no account.
    #[error("no account named {0:?}")]
    NoSuchUser(String),
    /// `[sandbox] user` is root, or of root's group.
    #[error("account {0:?} has uid or gid 0: a confined program must run unprivileged")]
    Privileged(String),
    /// Every uid of the dynamic range is taken.
    #[error(
        "no uid and gid in {}..={} is free of accounts and groups",
        identity::FIRST,
        identity::LAST
    )]
    NoFreeId,
    /// The submission's folder cannot be copied into the box.
    #[error("the folder {path}: {why}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The spec asks for something the keeper will not do.
    #[error("invalid box spec: {0}")]
    Spec(String),
    /// No cgroup hierarchy has the controllers the limits need.
    #[error("no cgroup hierarchy with the memory, pids and cpu controllers under /sys/fs/cgroup")]
    NoCgroups,
    /// The seccomp filter could not be built or installed.
    #[error("seccomp filter: {0}")]
    Seccomp(String),
}

/// Maps an OS error to [`SandboxError::Sys`] with what was being done.
fn sys<E: Into<io::Error>>(action: impl Into<String>) -> impl FnOnce(E) -> SandboxError {
    let action = action.into();
    move |error| SandboxError::Sys {
        action,
        source: error.into(),
    }
}
