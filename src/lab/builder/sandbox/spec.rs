//! What the box keeper (`sdss lab-box SPEC`) is told, and what it reports:
//! plain data, written by the lab as JSON before the start.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::lab::plan::sandbox::Limits;

/// One confined start: the program, its folder, who it runs as, its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxSpec {
    /// The node it is, for messages.
    pub node: String,
    /// The command line; `argv[0]` is looked up in the box's own `PATH`.
    pub argv: Vec<String>,
    /// The program's whole environment (the keeper's own is not passed on).
    pub env: Vec<(String, String)>,
    /// The submission's folder (absolute): a private, writable copy of it is
    /// all the program sees of it, at the same path.
    pub folder: PathBuf,
    /// Where the program starts (absolute, inside the box).
    pub cwd: PathBuf,
    /// Further files or folders it sees read-only at their own path (the sdss
    /// executable, for a graded sdss node).
    #[serde(default)]
    pub visible: Vec<PathBuf>,
    /// Who it runs as.
    pub user: Identity,
    /// What it may use.
    pub limits: Limits,
    /// Its cgroup's name in each controller, `sdss-<lab>-<node>`.
    pub cgroup: String,
    /// The nice value of the lab's own programs. The box's CPU weight is that
    /// of one task at it: a group's weight ignores its tasks' nice values, so
    /// at the default weight a busy box under `nice sdss lab ...` took ten
    /// times the CPU of each niced node beside it.
    #[serde(default)]
    pub nice: i32,
    /// Where each limit it hits is appended, one JSON [`LimitHit`] a line.
    pub hits: PathBuf,
}

/// An unprivileged user and group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// The account's name, when one was asked for (`[sandbox] user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The memory cgroup's limit: the kernel killed a process.
    Memory,
    /// The pids cgroup's limit: a fork failed.
    Tasks,
    /// The CPU quota: it was made to wait.
    Cpu,
    /// `RLIMIT_NOFILE`: a process had all the files it may open.
    Files,
    /// `RLIMIT_FSIZE`: a write went past the size a file may have.
    FileSize,
    /// A private tmpfs (its folder or `/tmp`) was full.
    Disk,
}

/// A limit a confined program hit, as its keeper saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitHit {
    /// Which.
    pub limit: LimitKind,
    /// Seconds after the program started.
    pub at: f64,
    /// What happened, for people: "killed by the memory limit of 512 MiB".
    pub text: String,
}

impl LimitHit {
    /// Reads a hits file: one JSON object a line; lines that are not one
    /// (a line cut by a kill) are skipped.
    pub fn parse_all(text: &str) -> Vec<LimitHit> {
        text.lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hits_file_reads_back_and_skips_a_cut_line() {
        let hit = LimitHit {
            limit: LimitKind::Memory,
            at: 9.3,
            text: "killed by the memory limit of 512 MiB".to_owned(),
        };
        let text = format!(
            "{}\n{{\"limit\":\"tas",
            serde_json::to_string(&hit).unwrap()
        );
        assert_eq!(LimitHit::parse_all(&text), vec![hit]);
    }
}
