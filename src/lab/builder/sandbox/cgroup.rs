//! The node's cgroups: memory, task and CPU limits the kernel enforces, and the
//! counters that tell the keeper a limit was hit.
//!
//! The groups sit at the top of each hierarchy, not under the keeper's own
//! group: on cgroup v2 a group that holds processes cannot give controllers to
//! children, and the lab's teardown, which may run in another group than the
//! lab that started the node, must find them by name alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{sys, SandboxError};
use crate::lab::plan::sandbox::Limits;
use crate::lab::procfs::{self, CgroupMembership};

/// Where the hierarchies are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers a box uses, each a hierarchy of its own.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// The CFS period; the quota is a share of it.
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup interface the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory/...`).
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup/...`).
    V2,
}

/// What the counters of a group say so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Processes the kernel killed for the memory limit.
    pub oom_kills: u64,
    /// Forks refused by the task limit.
    pub forks_refused: u64,
    /// CFS periods in which the group ran.
    pub periods: u64,
    /// Time its tasks were held back by the quota, microseconds: about the
    /// CPU time it wanted beyond the quota.
    pub throttled_us: u64,
}

impl Counters {
    /// Wall time of the periods it ran in, microseconds.
    pub fn periods_us(&self) -> u64 {
        self.periods * CPU_PERIOD_US
    }
}

/// A node's group in each controller, made by [`Cgroup::create`].
#[derive(Debug)]
pub struct Cgroup {
    layout: Layout,
    name: String,
    /// The groups the keeper came from.
    origin: Vec<PathBuf>,
}

/// The machine's layout: v2 when the unified hierarchy at `/sys/fs/cgroup` has
/// the controllers, else v1 when each is mounted.
pub fn layout() -> Option<Layout> {
    let root = Path::new(ROOT);
    if let Ok(text) = fs::read_to_string(root.join("cgroup.controllers")) {
        let has: Vec<&str> = text.split_whitespace().collect();
        if V1_CONTROLLERS.iter().all(|c| has.contains(c)) {
            return Some(Layout::V2);
        }
    }
    V1_CONTROLLERS
        .iter()
        .all(|c| root.join(c).join("cgroup.procs").exists())
        .then_some(Layout::V1)
}

/// The group's directories, one per hierarchy.
fn dirs(layout: Layout, name: &str) -> Vec<PathBuf> {
    match layout {
        Layout::V1 => V1_CONTROLLERS
            .iter()
            .map(|c| Path::new(ROOT).join(c).join(name))
            .collect(),
        Layout::V2 => vec![Path::new(ROOT).join(name)],
    }
}

fn check_name(name: &str) -> Result<(), SandboxError> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(SandboxError::Spec(format!("{name:?} is no cgroup name")));
    }
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).map_err(sys(format!("cannot write {value:?} to {}", path.display())))
}

/// The scheduler's weight of a task at `nice` (-20..=19): the kernel's own
/// table (`sched_prio_to_weight`), 1024 at 0, each step about 1.25 times.
fn nice_weight(nice: i32) -> u32 {
    const WEIGHTS: [u32; 40] = [
        88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100,
        4904, 3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172,
        137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
    ];
    WEIGHTS[(nice.clamp(-20, 19) + 20) as usize]
}

impl Cgroup {
    /// Makes the group `name` in each controller with `limits` and the CPU
    /// weight of one task at `nice`; a group of that name left by an earlier
    /// start is emptied and removed first.
    pub fn create(name: &str, limits: &Limits, nice: i32) -> Result<Cgroup, SandboxError> {
        check_name(name)?;
        let layout = layout().ok_or(SandboxError::NoCgroups)?;
        remove_cgroup(name)?;
        if layout == Layout::V2 {
            // Best effort: on a systemd host the root already gives them.
            let _ = fs::write(
                Path::new(ROOT).join("cgroup.subtree_control"),
                "+memory +pids +cpu",
            );
        }
        for dir in dirs(layout, name) {
            fs::create_dir(&dir)
                .map_err(sys(format!("cannot create the cgroup {}", dir.display())))?;
        }
        let group = Cgroup {
            layout,
            name: name.to_owned(),
            origin: origin(layout),
        };
        if let Err(error) = group.limit(limits, nice) {
            group.remove();
            return Err(error);
        }
        Ok(group)
    }

    fn limit(&self, limits: &Limits, nice: i32) -> Result<(), SandboxError> {
        let quota = ((limits.cpu * CPU_PERIOD_US as f64) as u64).max(1000);
        let nice = nice.clamp(-20, 19);
        match self.layout {
            Layout::V1 => {
                write(
                    &self.file("memory", "memory.limit_in_bytes"),
                    &limits.memory.to_string(),
                )?;
                // Without swap in the limit, a program over it swaps instead of dying.
                let memsw = self.file("memory", "memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory.to_string())?;
                }
                write(&self.file("pids", "pids.max"), &limits.tasks.to_string())?;
                write(
                    &self.file("cpu", "cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                )?;
                write(&self.file("cpu", "cpu.cfs_quota_us"), &quota.to_string())?;
                write(
                    &self.file("cpu", "cpu.shares"),
                    &nice_weight(nice).to_string(),
                )
            }
            Layout::V2 => {
                write(
                    &self.file("memory", "memory.max"),
                    &limits.memory.to_string(),
                )?;
                let swap = self.file("memory", "memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                write(&self.file("pids", "pids.max"), &limits.tasks.to_string())?;
                write(
                    &self.file("cpu", "cpu.max"),
                    &format!("{quota} {CPU_PERIOD_US}"),
                )?;
                write(&self.file("cpu", "cpu.weight.nice"), &nice.to_string())
            }
        }
    }

    /// A file of the group in `controller`'s hierarchy.
    fn file(&self, controller: &str, file: &str) -> PathBuf {
        match self.layout {
            Layout::V1 => Path::new(ROOT).join(controller).join(&self.name).join(file),
            Layout::V2 => Path::new(ROOT).join(&self.name).join(file),
        }
    }

    /// Moves the calling process, which must be single-threaded, into the
    /// group, so what it forks is born there.
    pub fn enter(&self) -> Result<(), SandboxError> {
        let file = join_file(self.layout);
        for dir in dirs(self.layout, &self.name) {
            write(&dir.join(file), "0")?;
        }
        Ok(())
    }

    /// Moves the calling process back where it came from (the root when that
    /// group is gone), so the group holds only the box and can be removed.
    pub fn leave(&self) {
        let file = join_file(self.layout);
        for (origin, root) in self.origin.iter().zip(dirs(self.layout, "")) {
            if fs::write(origin.join(file), "0").is_err() {
                let _ = fs::write(root.join(file), "0");
            }
        }
    }

    /// The counters so far; a counter that cannot be read stays 0.
    pub fn counters(&self) -> Counters {
        let oom = match self.layout {
            Layout::V1 => self.file("memory", "memory.oom_control"),
            Layout::V2 => self.file("memory", "memory.events"),
        };
        let cpu = self.file("cpu", "cpu.stat");
        Counters {
            oom_kills: field(&oom, "oom_kill"),
            forks_refused: field(&self.file("pids", "pids.events"), "max"),
            periods: field(&cpu, "nr_periods"),
            // v2 counts microseconds; v1 nanoseconds.
            throttled_us: match self.layout {
                Layout::V1 => field(&cpu, "throttled_time") / 1000,
                Layout::V2 => field(&cpu, "throttled_usec"),
            },
        }
    }

    /// The processes in the group (host PIDs).
    pub fn processes(&self) -> Vec<Pid> {
        processes(&self.file("pids", "cgroup.procs"))
    }

    /// Kills what is left in the group and removes it.
    pub fn remove(self) {
        let _ = remove_cgroup(&self.name);
    }
}

/// The file a process joins a group through. On v1, the calling thread alone
/// through `tasks`: moving a whole process through `cgroup.procs` takes a
/// lock that may wait for an RCU grace period (milliseconds, on a busy machine);
/// one thread moving itself does not, and the keeper has no other thread.
fn join_file(layout: Layout) -> &'static str {
    match layout {
        Layout::V1 => "tasks",
        Layout::V2 => "cgroup.procs",
    }
}

/// The value of `key` in a flat keyed file (`key value` lines); 0 when absent.
fn field(path: &Path, key: &str) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    parse_field(&text, key)
}

fn parse_field(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn processes(procs: &Path) -> Vec<Pid> {
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// The calling process's groups, one per hierarchy of [`dirs`].
fn origin(layout: Layout) -> Vec<PathBuf> {
    origin_of(layout, &procfs::own_cgroups())
}

fn origin_of(layout: Layout, memberships: &[CgroupMembership]) -> Vec<PathBuf> {
    let path_of = |wanted: &str| {
        memberships.iter().find_map(|membership| {
            let controllers = &membership.controllers;
            let matches = match layout {
                Layout::V1 => controllers.iter().any(|c| c == wanted),
                Layout::V2 => controllers.is_empty(),
            };
            matches.then(|| membership.path.trim_start_matches('/').to_owned())
        })
    };
    let procs = |base: PathBuf, path: Option<String>| base.join(path.unwrap_or_default());
    match layout {
        Layout::V1 => V1_CONTROLLERS
            .iter()
            .map(|c| procs(Path::new(ROOT).join(c), path_of(c)))
            .collect(),
        Layout::V2 => vec![procs(PathBuf::from(ROOT), path_of(""))],
    }
}

/// Kills every process in the group `name` and removes its directory in each
/// hierarchy; a group that does not exist is already removed. For the lab's
/// teardown, on what a keeper killed before its own cleanup left.
pub fn remove_cgroup(name: &str) -> Result<(), SandboxError> {
    check_name(name)?;
    let Some(layout) = layout() else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    for dir in dirs(layout, name) {
        if !dir.exists() {
            continue;
        }
        // The v2 way kills even what forks while it is killed.
        let _ = fs::write(dir.join("cgroup.kill"), "1");
        loop {
            for pid in processes(&dir.join("cgroup.procs")) {
                let _ = kill(pid, Signal::SIGKILL);
            }
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                Err(error) if Instant::now() >= deadline => {
                    return Err(sys(format!("cannot remove the cgroup {}", dir.display()))(
                        error,
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nice_value_weighs_as_the_kernel_weighs_a_task() {
        assert_eq!(nice_weight(0), 1024);
        assert_eq!(nice_weight(10), 110);
        assert_eq!(nice_weight(-20), 88761);
        assert_eq!(nice_weight(19), 15);
        assert_eq!(nice_weight(40), 15);
    }

    #[test]
    fn counters_read_from_keyed_files() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_field(oom, "oom_kill"), 3);
        assert_eq!(parse_field(oom, "oom_kill_disable"), 0);
        assert_eq!(parse_field("max 12\n", "max"), 12);
        assert_eq!(parse_field("", "max"), 0);
    }

    #[test]
    fn the_keeper_goes_back_to_the_groups_it_came_from() {
        let of = |controllers: &[&str], path: &str| CgroupMembership {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            path: path.to_owned(),
        };
        let v1 = [
            of(&["name=systemd"], "/"),
            of(&["memory"], "/api/45d8"),
            of(&["cpu", "cpuacct"], "/"),
            of(&["pids"], "/"),
            of(&[], "/"),
        ];
        let v1 = origin_of(Layout::V1, &v1);
        assert_eq!(
            v1,
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/api/45d8"),
                PathBuf::from("/sys/fs/cgroup/pids"),
                PathBuf::from("/sys/fs/cgroup/cpu"),
            ]
        );
        let v2 = origin_of(Layout::V2, &[of(&[], "/user.slice/session-2.scope")]);
        assert_eq!(
            v2,
            vec![PathBuf::from("/sys/fs/cgroup/user.slice/session-2.scope")]
        );
    }

    #[test]
    fn names_that_would_leave_the_hierarchy_are_refused() {
        for name in ["", "..", "a/b", ".hidden"] {
            assert!(check_name(name).is_err(), "{name}");
        }
        assert!(check_name("sdss-lab-a").is_ok());
    }
}
