//! Kernel objects of a lab: namespaces, links, delays, processes, and the
//! state that records each before it is made.
//!
//! [`build`] records every object before creating it; [`teardown`] works from
//! that record alone, so it undoes exactly what was made, after a failure, a
//! panic, Ctrl-C or a `kill -9` of the `up` that made it, and leaves alone
//! anything that only looks like it.

pub mod delay;
pub mod emulator;
pub mod kernel;
pub mod launch;
pub mod links;
pub mod netns;
pub mod state;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::lifecycle::UpOptions;
use super::plan::backend::BackendKind;
use super::plan::{Plan, Program, PREFIX};
use super::report::progress::Progress;
use super::scenario::grading::set_port_range;
use super::LabError;
use delay::{emulator_spec, DelayBackend, DelayError, Emulator, Netem, NoDelay};
use emulator::{Counters, PortCounters};
use kernel::{Host, Kernel};
use launch::Output;
use links::Netlink;
use netns::{NetnsError, Presence};
use state::{LabDir, LinkRecord, NamespaceRecord, Phase, ProcessRecord, StateError, StateRoot};

/// How long nodes get to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

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

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Tears a lab down when dropped while armed: the path every failure, panic and
/// cancellation of `up` takes.
pub struct TeardownGuard<'a> {
    /// Where the lab's state lives.
    pub root: &'a StateRoot,
    /// The lab.
    pub lab: String,
    /// Whether dropping tears the lab down.
    pub armed: bool,
}

impl Drop for TeardownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = teardown(self.root, &self.lab) {
                eprintln!("sdss: cleaning up lab {} failed: {e}", self.lab);
            }
        }
    }
}

/// A lab whose objects exist and whose nodes run.
pub struct Built {
    /// The lab's state.
    pub dir: LabDir,
    /// The nodes' processes, by node name.
    pub children: HashMap<String, Child>,
    /// When the first node was started.
    pub launched_at: Instant,
    /// The grading probe's namespace, in labs with graded nodes.
    pub probe_ns: Option<File>,
    /// The executable nodes run (`sdss node`), to start them again.
    pub sdss: std::path::PathBuf,
}

fn check(cancel: &CancellationToken) -> Result<(), LabError> {
    if cancel.is_cancelled() {
        Err(LabError::Cancelled)
    } else {
        Ok(())
    }
}

/// Creates the lab's namespaces, links, delays and nodes, recording each
/// first. The plan and its `backend` are settled: nothing here changes them.
pub async fn build(
    mut dir: LabDir,
    plan: Plan,
    backend: BackendKind,
    options: &UpOptions,
    cancel: &CancellationToken,
    progress: &Progress,
) -> Result<Built, LabError> {
    netns::prepare_run_dir()?;
    for name in plan.namespaces() {
        if netns::presence(&name).map_err(|source| NetnsError::Sys {
            action: "checking",
            name: name.clone(),
            source,
        })? != Presence::Absent
        {
            return Err(NetnsError::Exists(name).into());
        }
    }

    let names = plan.namespaces();
    progress.step("creating namespaces", names.len() as u64);
    let files = create_namespaces(&mut Host, &mut dir, &names, cancel, || progress.inc())?;
    let (switch_file, node_files) = files
        .split_first()
        .ok_or_else(|| NetnsError::Exists(plan.switch_netns.clone()))?;

    let switch = Netlink::connect(switch_file, &plan.switch_netns)?;
    links::loopback_up(&switch).await?;
    let backend: Box<dyn DelayBackend> = match backend {
        BackendKind::None => Box::new(NoDelay),
        BackendKind::Netem => Box::new(Netem::default()),
        BackendKind::Emulator => Box::new(Emulator {
            control: dir.emulator_file(CONTROL_SOCKET),
        }),
    };
    progress.line(&format!(
        "delay backend {}; netem {}",
        backend.kind(),
        dir.state
            .netem
            .as_ref()
            .map_or("not probed".to_owned(), ToString::to_string)
    ));
    let told = match &options.injected {
        Some(injected) if backend.kind() != BackendKind::None => {
            progress.line("injecting the delays of another lab file (--inject-from)");
            injected
        }
        _ => &plan,
    };
    let emulated = backend.provides_links();
    dir.record(|s| s.links = planned_links(&plan, emulated))?;

    let node_link: Vec<String> = if emulated {
        progress.step("starting the link emulator", 1);
        start_emulator(&mut dir, told, switch_file, options, cancel).await?;
        progress.inc();
        vec![crate::lab::plan::NODE_IFNAME.to_owned(); plan.nodes.len()]
    } else {
        progress.step("creating links", plan.nodes.len() as u64);
        links::build_switch(&switch, &plan, node_files, || progress.inc()).await?;
        (0..plan.nodes.len()).map(links::node_end).collect()
    };
    check(cancel)?;
    progress.step("configuring node namespaces", plan.nodes.len() as u64);
    let mut configured = Vec::with_capacity(plan.nodes.len());
    for ((node, file), link) in plan.nodes.iter().zip(node_files).zip(&node_link) {
        check(cancel)?;
        let netlink = Netlink::connect(file, &node.netns)?;
        let index = links::configure_node(&netlink, link, node.address, plan.subnet.prefix).await?;
        let mac = netlink.mac(index, crate::lab::plan::NODE_IFNAME).await?;
        configured.push(links::NodeLink {
            netlink,
            index,
            address: node.address,
            mac,
        });
        progress.inc();
    }
    progress.step("adding static neighbour entries", plan.nodes.len() as u64);
    links::add_static_neighbours(&configured, || progress.inc()).await?;
    drop(configured);
    drop(switch);

    progress.step(&format!("applying delays ({})", backend.kind()), 1);
    tokio::task::block_in_place(|| backend.apply(told))?;
    progress.inc();

    let mut probe_ns = None;
    if let Some(grading) = &plan.grading {
        for (node, file) in plan.nodes.iter().zip(node_files) {
            if node.grade {
                set_port_range(file, &node.netns, grading.port_range).map_err(|e| {
                    LabError::Probe(format!("setting the port range of {}: {e}", node.netns))
                })?;
            }
            if node.program == Program::Probe {
                probe_ns = Some(
                    file.try_clone()
                        .map_err(|e| LabError::Probe(e.to_string()))?,
                );
            }
        }
    }

    progress.step("starting nodes", plan.nodes.len() as u64);
    let mut children = HashMap::new();
    dir.record(|s| s.nodes_started_at = Some(wall_now()))?;
    let launched_at = Instant::now();
    for (node, file) in plan.nodes.iter().zip(node_files) {
        check(cancel)?;
        if node.program == Program::Probe {
            progress.inc();
            continue;
        }
        let stdout = dir.stdout_log(&node.name);
        let stderr = dir.stderr_log(&node.name);
        let child = launch::spawn_node(
            file,
            &node.netns,
            &node.argv(&plan, &options.sdss),
            &node.env(&plan, &options.sdss),
            Output::Files {
                stdout: &stdout,
                stderr: &stderr,
            },
        )?;
        let record = ProcessRecord::of(child.id() as i32, Some(node.name.clone()));
        dir.record(|s| s.processes.extend(record))?;
        children.insert(node.name.clone(), child);
        progress.inc();
    }
    dir.record(|s| s.phase = Phase::Running)?;
    Ok(Built {
        sdss: options.sdss.clone(),
        dir,
        children,
        launched_at,
        probe_ns,
    })
}

/// Creates the lab's namespaces in order, each recorded in the lab's state
/// before its name exists: whatever happens after, teardown finds it.
fn create_namespaces<K: Kernel>(
    kernel: &mut K,
    dir: &mut LabDir,
    names: &[String],
    cancel: &CancellationToken,
    mut on_each: impl FnMut(),
) -> Result<Vec<K::Netns>, LabError> {
    let mut made = Vec::with_capacity(names.len());
    for name in names {
        check(cancel)?;
        let mut record = |id| {
            dir.record(|s| {
                s.namespaces.push(NamespaceRecord {
                    name: name.clone(),
                    id,
                    recorded_at: now_unix(),
                })
            })
            .map_err(io::Error::other)
        };
        made.push(kernel.create_netns(name, &mut record)?);
        on_each();
    }
    Ok(made)
}

/// The links a lab will have, recorded before any is created (they live in the
/// lab's namespaces, or are the emulator's TAPs, and go with them).
fn planned_links(plan: &Plan, emulated: bool) -> Vec<LinkRecord> {
    let link = |netns: &str, name: &str, kind: &str| LinkRecord {
        netns: netns.to_owned(),
        name: name.to_owned(),
        kind: kind.to_owned(),
    };
    let mut links = Vec::new();
    if !emulated {
        links.push(link(
            &plan.switch_netns,
            crate::lab::plan::BRIDGE_IFNAME,
            "bridge",
        ));
    }
    for node in &plan.nodes {
        if emulated {
            links.push(link(
                &node.netns,
                crate::lab::plan::NODE_IFNAME,
                "tap (emulator)",
            ));
        } else {
            links.push(link(
                &plan.switch_netns,
                &node.bridge_port,
                "veth (bridge port)",
            ));
            links.push(link(
                &node.netns,
                crate::lab::plan::NODE_IFNAME,
                "veth (node end)",
            ));
        }
    }
    links
}

/// The emulator's control socket, in its state directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// How long the emulator gets to report `ready`.
const EMULATOR_START: Duration = Duration::from_secs(15);

/// Starts `sdss lab-emulator SPEC` in the switch namespace, records it, and waits
/// until it says `ready` (every TAP exists and is up).
async fn start_emulator(
    dir: &mut LabDir,
    plan: &Plan,
    switch: &File,
    options: &UpOptions,
    cancel: &CancellationToken,
) -> Result<(), LabError> {
    let spec_path = dir.emulator_file("spec.json");
    let spec = serde_json::to_vec_pretty(&emulator_spec(plan)).map_err(io::Error::other);
    spec.and_then(|bytes| std::fs::write(&spec_path, bytes))
        .map_err(|source| LabError::Log {
            path: spec_path.clone(),
            source,
        })?;
    let stdout = dir.emulator_file("out");
    let stderr = dir.emulator_file("err");
    let argv = vec![
        options.sdss.display().to_string(),
        "lab-emulator".to_owned(),
        spec_path.display().to_string(),
        "--counters".to_owned(),
        dir.emulator_file("counters.json").display().to_string(),
        "--control".to_owned(),
        dir.emulator_file(CONTROL_SOCKET).display().to_string(),
    ];
    let mut child = launch::spawn_node(
        switch,
        &plan.switch_netns,
        &argv,
        &[],
        Output::Files {
            stdout: &stdout,
            stderr: &stderr,
        },
    )?;
    let record = ProcessRecord::of(child.id() as i32, None);
    dir.record(|s| s.processes.extend(record))?;
    let deadline = Instant::now() + EMULATOR_START;
    loop {
        if std::fs::read_to_string(&stdout).is_ok_and(|t| t.lines().any(|l| l.trim() == "ready")) {
            return Ok(());
        }
        let failure = if let Ok(Some(status)) = child.try_wait() {
            Some(format!("it exited ({status})"))
        } else if Instant::now() >= deadline {
            Some(format!("no `ready` within {} s", EMULATOR_START.as_secs()))
        } else {
            None
        };
        if let Some(failure) = failure {
            let said = std::fs::read_to_string(&stderr).unwrap_or_default();
            return Err(DelayError::Emulator(format!("{failure}: {}", said.trim())).into());
        }
        check(cancel)?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens the namespace of a node of the lab in `dir`, checked against the
/// identity recorded when it was made.
pub fn node_netns(dir: &LabDir, netns: &str) -> Result<File, NetnsError> {
    let id = dir
        .state
        .namespaces
        .iter()
        .find(|n| n.name == netns)
        .map(|n| n.id);
    netns::open(netns, id)
}

/// The emulator's counters as it last wrote them, when it carries the lab.
pub fn emulator_totals(dir: &LabDir) -> Option<PortCounters> {
    if dir.state.backend != Some(BackendKind::Emulator) {
        return None;
    }
    Counters::read_from(&dir.emulator_file("counters.json")).map(|c| c.total())
}

/// Takes a lab down: stops its processes, removes its namespaces (which takes
/// their links with them) and its state. Idempotent; never touches an object
/// whose identity differs from the recorded one.
pub fn teardown(root: &StateRoot, lab: &str) -> Result<DownOutcome, LabError> {
    teardown_with(&mut Host, root, lab)
}

/// [`teardown`] against `kernel`: the host's, or a test's fake.
pub fn teardown_with(
    kernel: &mut impl Kernel,
    root: &StateRoot,
    lab: &str,
) -> Result<DownOutcome, LabError> {
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
    for ns in &state.namespaces {
        if kernel.presence(&ns.name).ok() == Some(Presence::Mounted(ns.id)) {
            pids.extend(
                kernel
                    .processes_in(ns.id.ino)
                    .into_iter()
                    .filter(|p| *p != me),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    // Each as it is now: a PID reused before the stop is not signalled.
    let records: Vec<ProcessRecord> = pids.iter().filter_map(|p| kernel.process(*p)).collect();
    outcome.stopped = pids.len();
    kernel.stop(&pids, STOP_GRACE, &records);

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
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::kernel::fake::FakeKernel;
    use super::*;
    use crate::lab::build::state::LabState;

    /// A state root of its own, removed when dropped.
    struct TempRoot(std::path::PathBuf);

    impl TempRoot {
        fn new() -> TempRoot {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            TempRoot(std::env::temp_dir().join(format!("sdss-teardown-{}-{n}", std::process::id())))
        }

        fn root(&self) -> StateRoot {
            StateRoot::at(&self.0)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
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
        let node = kernel.spawn(4001, 77, 101);
        dir.record(|s| s.processes.push(node)).unwrap();
    }

    #[test]
    fn teardown_removes_what_was_recorded_in_reverse_and_leaves_lookalikes() {
        let (temp, mut kernel) = (TempRoot::new(), FakeKernel::default());
        let root = temp.root();
        built(&mut kernel, &root);
        kernel.mount("sdss-td-zz", 900); // named like the lab's, not made by it
        kernel.spawn(4002, 5, 102); // a process someone started in b's namespace
        kernel.spawn(4003, 5, 1); // and one elsewhere
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(kernel.removed, ["sdss-td-b", "sdss-td-a", "sdss-td"]);
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
    fn teardown_undoes_exactly_what_an_interrupted_build_made() {
        let (temp, mut kernel) = (TempRoot::new(), FakeKernel::default());
        let root = temp.root();
        let plan =
            Plan::from_text("name = \"td\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let mut dir = root.create(LabState::creating(plan.clone())).unwrap();
        kernel.fail_on = Some("sdss-td-b".to_owned());
        let made = create_namespaces(
            &mut kernel,
            &mut dir,
            &plan.namespaces(),
            &CancellationToken::new(),
            || {},
        );
        assert!(made.is_err(), "the third namespace fails");
        let recorded: Vec<&str> = dir
            .state
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(recorded, ["sdss-td", "sdss-td-a"]);
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(outcome.removed, ["sdss-td-a", "sdss-td"]);
        assert!(kernel.netns.is_empty(), "{:?}", kernel.netns);
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
        kernel.netns.insert(
            "sdss-td-a".to_owned(),
            netns::Presence::Unmounted { ctime: 10 },
        );
        kernel.netns.insert(
            "sdss-td-b".to_owned(),
            netns::Presence::Unmounted { ctime: 0 },
        );
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
