//! Teardown, build's exact inverse: it works from the lab's recorded state
//! alone, so it undoes exactly what was made, after a failure, a panic,
//! Ctrl-C or a `kill -9` of the `up` that made it, and leaves alone anything
//! that only looks like it.

use std::time::Duration;

use super::super::plan::PREFIX;
use super::error::BuildError;
use super::kernel::{Host, Kernel};
use super::netns::{NetnsError, Presence};
use super::state::{Phase, ProcessRecord, StateError, StateRoot};

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownOutcome {
    /// Whether there was a lab to take down.
    pub found: bool,
    /// Namespaces removed.
    pub removed: Vec<String>,
    /// Names that look like the lab's but were not made by it: left alone.
    pub foreign: Vec<String>,
    /// Processes stopped.
    pub stopped: usize,
}

/// Takes a lab down: stops its processes, removes its namespaces (which takes
/// their links with them) and its state. Idempotent; never touches an object
/// whose identity differs from the recorded one.
pub fn teardown(root: &StateRoot, lab: &str) -> Result<DownOutcome, BuildError> {
    // Its nodes may be busy measuring each other: stopping them waits for the CPU.
    super::launch::raise_priority();
    teardown_with(&mut Host, root, lab)
}

/// [`teardown`] against `kernel`: the host's, or a test's fake.
pub fn teardown_with(
    kernel: &mut impl Kernel,
    root: &StateRoot,
    lab: &str,
) -> Result<DownOutcome, BuildError> {
    let mut outcome = DownOutcome::default();
    let mut dir = match root.open(lab) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            // `up` died before writing anything: nothing was created.
            outcome.found = true;
            root.remove(lab)?;
            return Ok(outcome);
        }
        Err(StateError::NotUp(_)) => {
            outcome.foreign = lookalikes(kernel, lab);
            return Ok(outcome);
        }
        Err(e) => return Err(e.into()),
    };
    outcome.found = true;
    dir.record(|s| s.phase = Phase::Removing)?;
    let state = dir.state.clone();
    let me = std::process::id() as i32;

    // An `up` still building this lab would race us: it is ours, stop it first.
    if let Some(owner) = state
        .owner
        .as_ref()
        .filter(|o| o.pid != me && kernel.alive(o))
    {
        let owner = owner.clone();
        kernel.stop(&[owner.pid], Duration::ZERO, &[owner]);
    }

    let mut pids: Vec<i32> = state
        .processes
        .iter()
        .filter(|p| kernel.alive(p))
        .map(|p| p.pid)
        .collect();
    let ours: Vec<u64> = state
        .namespaces
        .iter()
        .filter(|ns| kernel.presence(&ns.name).ok() == Some(Presence::Mounted(ns.id)))
        .map(|ns| ns.id.ino)
        .collect();
    pids.extend(kernel.processes_in(&ours).into_iter().filter(|p| *p != me));
    pids.sort_unstable();
    pids.dedup();
    // Each as it is now: a PID reused before the stop is not signalled.
    let records: Vec<ProcessRecord> = pids.iter().filter_map(|p| kernel.process(*p)).collect();
    outcome.stopped = pids.len();
    kernel.stop(&pids, super::launch::TEARDOWN_STOP_GRACE, &records);
    // After the stop: what a killed keeper left in its box goes with it. One
    // that stays keeps the state, so that `down` can be run again.
    for name in &state.cgroups {
        kernel.remove_cgroup(name)?;
    }

    for ns in state.namespaces.iter().rev() {
        match kernel.presence(&ns.name) {
            Ok(Presence::Absent) => {}
            Ok(Presence::Mounted(id)) if id == ns.id => {
                kernel.remove_netns(&ns.name)?;
                outcome.removed.push(ns.name.clone());
            }
            Ok(Presence::Unmounted { ctime }) if ctime >= ns.recorded_at => {
                // An `up` killed between creating the name and mounting on it.
                kernel.remove_netns(&ns.name)?;
                outcome.removed.push(ns.name.clone());
            }
            Ok(_) => outcome.foreign.push(ns.name.clone()),
            Err(source) => {
                return Err(NetnsError::Sys {
                    action: "checking",
                    name: ns.name.clone(),
                    source,
                }
                .into())
            }
        }
    }
    for name in lookalikes(kernel, lab) {
        if !outcome.removed.contains(&name) && !outcome.foreign.contains(&name) {
            outcome.foreign.push(name);
        }
    }
    root.remove(lab)?;
    Ok(outcome)
}

/// Namespaces named like the lab's (`sdss-<lab>` and `sdss-<lab>-*`) that exist now.
fn lookalikes(kernel: &impl Kernel, lab: &str) -> Vec<String> {
    let switch = format!("{PREFIX}{lab}");
    let node_prefix = format!("{switch}-");
    let mut names: Vec<String> = kernel
        .netns_names()
        .into_iter()
        .filter(|n| *n == switch || n.starts_with(&node_prefix))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::super::kernel::fake::{FakeKernel, TempDir};
    use super::*;
    use crate::lab::builder::state::{LabState, NamespaceRecord};
    use crate::lab::plan::Plan;

    /// A state root of its own, removed when dropped.
    struct TempRoot(TempDir);

    impl TempRoot {
        fn new() -> TempRoot {
            TempRoot(TempDir::new("teardown"))
        }

        fn root(&self) -> StateRoot {
            StateRoot::at(&self.0 .0)
        }
    }

    const NAMES: [&str; 3] = ["sdss-td", "sdss-td-a", "sdss-td-b"];

    /// A lab `td` as build leaves it: its three namespaces and node a's process
    /// (PID 4001) recorded, all of them present in `kernel`.
    fn built(kernel: &mut FakeKernel, root: &StateRoot) {
        let plan =
            Plan::from_text("name = \"td\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let mut dir = root.create(LabState::creating(plan)).unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            let id = kernel.mount(name, 100 + i as u64);
            dir.record(|s| {
                s.namespaces.push(NamespaceRecord {
                    name: (*name).to_owned(),
                    id,
                    recorded_at: 0,
                })
            })
            .unwrap();
        }
        let node = kernel.start_process(4001, 77, 101);
        dir.record(|s| s.processes.push(node)).unwrap();
        dir.record(|s| s.cgroups.push("sdss-td-b".to_owned()))
            .unwrap();
    }

    #[test]
    fn teardown_removes_what_was_recorded_in_reverse_and_leaves_lookalikes() {
        let (temp, mut kernel) = (TempRoot::new(), FakeKernel::default());
        let root = temp.root();
        built(&mut kernel, &root);
        kernel.mount("sdss-td-zz", 900); // named like the lab's, not made by it
        kernel.start_process(4002, 5, 102); // a process someone started in b's namespace
        kernel.start_process(4003, 5, 1); // and one elsewhere
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(kernel.removed, ["sdss-td-b", "sdss-td-a", "sdss-td"]);
        assert_eq!(kernel.cgroups_removed, ["sdss-td-b"]);
        assert_eq!(outcome.foreign, ["sdss-td-zz"]);
        assert_eq!(
            kernel.stopped.iter().copied().collect::<Vec<_>>(),
            [4001, 4002]
        );
        assert!(kernel.processes.contains_key(&4003));
        assert!(
            matches!(root.open("td"), Err(StateError::NotUp(_))),
            "state removed"
        );
        // Idempotent: nothing more to do, the lookalike still left alone.
        let again = teardown_with(&mut kernel, &root, "td").unwrap();
        assert!(!again.found);
        assert_eq!(again.foreign, ["sdss-td-zz"]);
        assert_eq!(kernel.removed.len(), 3);
    }

    #[test]
    fn a_name_now_held_by_another_namespace_and_a_reused_pid_are_left_alone() {
        let (temp, mut kernel) = (TempRoot::new(), FakeKernel::default());
        let root = temp.root();
        built(&mut kernel, &root);
        // Someone removed a's namespace and made another under its name, and
        // PID 4001 now belongs to another process (another start time).
        kernel.mount("sdss-td-a", 555);
        kernel.processes.insert(4001, (99, 1));
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(kernel.removed, ["sdss-td-b", "sdss-td"]);
        assert_eq!(outcome.foreign, ["sdss-td-a"]);
        assert!(kernel.stopped.is_empty(), "{:?}", kernel.stopped);
    }

    #[test]
    fn a_name_created_but_never_mounted_by_a_killed_up_is_removed_only_if_newer() {
        let (temp, mut kernel) = (TempRoot::new(), FakeKernel::default());
        let root = temp.root();
        built(&mut kernel, &root);
        kernel
            .netns
            .insert("sdss-td-a".to_owned(), Presence::Unmounted { ctime: 10 });
        kernel
            .netns
            .insert("sdss-td-b".to_owned(), Presence::Unmounted { ctime: 0 });
        let mut dir = root.open("td").unwrap().unwrap();
        dir.record(|s| {
            for ns in &mut s.namespaces {
                ns.recorded_at = 5;
            }
        })
        .unwrap();
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(kernel.removed, ["sdss-td-a", "sdss-td"]);
        assert_eq!(
            outcome.foreign,
            ["sdss-td-b"],
            "older than the record: not ours"
        );
    }
}
