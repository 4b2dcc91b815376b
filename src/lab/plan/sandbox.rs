//! How the programs nobody here wrote are confined: whether, as whom, and
//! within which limits (the file's `[sandbox]` table, `--no-sandbox`).
//!
//! Every program a lab starts that is not sdss itself (a `command` node, and
//! any graded node, sdss included) runs boxed by default: an unprivileged user,
//! a mount and PID namespace of its own, limits, a seccomp filter
//! (`builder::sandbox` sets it up). The defaults are far above what a correct
//! solution of the assignment uses, in Python, C or Java.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{NodePlan, Plan, Program};
use crate::lab::file::SandboxSection;

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

impl SandboxSettings {
    /// The file's `[sandbox]`, each key left out at its default.
    pub fn from_section(section: &SandboxSection) -> SandboxSettings {
        let d = Limits::default();
        SandboxSettings {
            enabled: section.enabled.unwrap_or(true),
            user: section.user.as_ref().map(|u| u.get_ref().clone()),
            limits: Limits {
                memory: section.memory.map_or(d.memory, |s| s.0),
                tasks: section.tasks.as_ref().map_or(d.tasks, |t| *t.get_ref()),
                cpu: section.cpu.as_ref().map_or(d.cpu, |c| *c.get_ref()),
                files: section.files.as_ref().map_or(d.files, |f| *f.get_ref()),
                file_size: section.file_size.map_or(d.file_size, |s| s.0),
                disk: section.disk.map_or(d.disk, |s| s.0),
            },
        }
    }
}

impl Limits {
    /// One line for people: `512 MiB memory, 256 tasks, 1 CPU, ...`.
    pub fn describe(&self) -> String {
        use crate::units::format_size;
        format!(
            "{} memory, {} tasks, {} CPU, {} open files, {} a file, {} disk",
            format_size(self.memory),
            self.tasks,
            self.cpu,
            self.files,
            format_size(self.file_size),
            format_size(self.disk)
        )
    }
}

impl Plan {
    /// The same lab with nothing confined (`--no-sandbox`).
    pub fn unconfined(mut self) -> Plan {
        self.sandbox.enabled = false;
        self
    }
}

impl NodePlan {
    /// Whether its program runs confined: any graded node (sdss included,
    /// graded as a submission is), and every command that does not run the
    /// sdss executable `sdss` itself, unless the lab turned confinement off.
    pub fn confined(&self, plan: &Plan, sdss: &Path) -> bool {
        plan.sandbox.enabled
            && (self.grade
                || match &self.program {
                    Program::Command { .. } => self
                        .argv(plan, sdss)
                        .first()
                        .is_none_or(|program| Path::new(program) != sdss),
                    Program::Sdss { .. } | Program::Probe => false,
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "name = \"s\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"py\"\ncommand = [\"python3\", \"x.py\"]\n[[node]]\nname = \"own\"\ncommand = [\"{sdss}\", \"node\"]\n[[node]]\nname = \"g\"\ngrade = true\n";

    #[test]
    fn commands_and_graded_nodes_are_confined_and_sdss_nodes_are_not() {
        let sdss = Path::new("/opt/sdss");
        let plan = Plan::from_text(LAB);
        let confined: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| n.confined(&plan, sdss))
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(confined, ["py", "g"]);
        let plan = plan.unconfined();
        assert!(plan.nodes.iter().all(|n| !n.confined(&plan, sdss)));
    }

    #[test]
    fn the_section_changes_only_what_it_names() {
        let plan = Plan::from_text(&format!(
            "{LAB}[sandbox]\nmemory = \"1GiB\"\ncpu = 0.5\nuser = \"nobody\"\n"
        ));
        let limits = plan.sandbox.limits;
        assert_eq!(limits.memory, 1 << 30);
        assert_eq!(limits.cpu, 0.5);
        assert_eq!(limits.tasks, Limits::default().tasks);
        assert_eq!(plan.sandbox.user.as_deref(), Some("nobody"));
        assert!(plan.sandbox.enabled);
    }
}
