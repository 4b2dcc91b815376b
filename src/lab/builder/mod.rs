//! Kernel objects of a lab: namespaces, links, delays, processes, and the
//! state that records each before it is made.
//!
//! [`build`] records every object before creating it; [`teardown`] works from
//! that record alone and is its exact inverse. What both ask of the kernel is
//! the [`Kernel`] trait, so each is tested without root against a fake.

pub mod delay;
pub mod emulator;
pub mod error;
pub mod kernel;
pub mod launch;
pub mod links;
pub mod netns;
pub mod pool;
pub mod rtnl;
pub mod sandbox;
pub mod state;
pub mod teardown;
pub mod vxlan;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::file::backend::BackendChoice;
use super::plan::backend::BackendKind;
use super::plan::calibration;
use super::plan::{Plan, Program};
use crate::lab::progress::Progress;
use delay::{emulator_spec, DelayBackend, DelayError};
use emulator::{Counters, PortCounters};
use error::BuildError;
use kernel::{Host, Kernel};
use launch::{Launch, LaunchError};
use netns::{NetnsError, Presence};
use state::{LabDir, LinkRecord, NamespaceRecord, Phase};
pub use teardown::{teardown, DownOutcome};

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Which delay backend.
    pub backend: BackendChoice,
    /// The sdss executable nodes run (`sdss node`).
    pub sdss: PathBuf,
    /// Wait for convergence and grade (off for a bare `up --no-verify`).
    pub verify: bool,
    /// What the delay backend is told to inject instead of the lab's own
    /// impairments (the lab's plan with another file's delays): lets a test prove
    /// that verification fails when the links do not match the lab file.
    pub injected: Option<Plan>,
}

/// A lab whose objects exist and whose nodes run.
pub struct Built {
    /// The lab's state.
    pub dir: LabDir,
    /// The nodes' processes, by node name.
    pub children: HashMap<String, Child>,
    /// When the first node was started.
    pub launched_at: Instant,
    /// The executable nodes run (`sdss node`), to start them again.
    pub sdss: std::path::PathBuf,
    /// How long each stage of the build took, in order.
    pub stages: Stages,
    /// The delay backend that put the delays on: the live changes go through it.
    pub delay: Box<dyn DelayBackend>,
}

/// How long each stage of a build took: where the time goes, printed by `up`.
#[derive(Debug, Clone, Default)]
pub struct Stages {
    /// (stage, time), in order.
    pub laps: Vec<(&'static str, Duration)>,
    last: Option<Instant>,
}

impl Stages {
    fn start() -> Stages {
        Stages {
            laps: Vec::new(),
            last: Some(Instant::now()),
        }
    }

    /// Ends the stage `name` now.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let since = self.last.map_or(Duration::ZERO, |t| now - t);
        self.laps.push((name, since));
        self.last = Some(now);
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, took)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {:.3}", took.as_secs_f64())?;
        }
        Ok(())
    }
}

fn check(cancel: &CancellationToken) -> Result<(), BuildError> {
    if cancel.is_cancelled() {
        Err(BuildError::Cancelled)
    } else {
        Ok(())
    }
}

/// Creates the lab's namespaces, links, delays and nodes on this machine,
/// recording each first. The plan and its `backend` are settled: nothing
/// here changes them.
pub async fn build(
    dir: LabDir,
    plan: Plan,
    backend: BackendKind,
    options: &UpOptions,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    build_with(&mut Host, dir, plan, backend, options, cancel, progress).await
}

/// [`build`] against `kernel`: the host's, or a test's fake.
pub async fn build_with<K: Kernel>(
    kernel: &mut K,
    mut dir: LabDir,
    plan: Plan,
    backend: BackendKind,
    options: &UpOptions,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Built, BuildError> {
    let mut stages = Stages::start();
    kernel.prepare()?;
    for name in plan.namespaces() {
        let presence = kernel.presence(&name).map_err(|source| NetnsError::Sys {
            action: "checking",
            name: name.clone(),
            source,
        })?;
        if presence != Presence::Absent {
            return Err(NetnsError::Exists(name).into());
        }
    }

    let names = plan.namespaces();
    progress.step("creating namespaces", names.len() as u64);
    let made = create_namespaces(kernel, &mut dir, &names, cancel)?;
    progress.set(names.len() as u64);
    stages.lap("namespaces");
    let (switch, nodes) = made
        .split_first()
        .ok_or_else(|| NetnsError::Exists(plan.switch_netns.clone()))?;

    let backend = delay::backend(backend, dir.emulator_file(CONTROL_SOCKET));
    progress.note(&format!(
        "delay backend {}; netem {}",
        backend.kind(),
        dir.state
            .netem
            .as_ref()
            .map_or("not probed".to_owned(), ToString::to_string)
    ));
    let injected = match &options.injected {
        Some(injected) if backend.kind() != BackendKind::None => {
            progress.line("injecting the delays of another lab file (--inject-from)");
            injected
        }
        _ => &plan,
    };
    // A calibrated lab starts in its calibration phase (scenario::calibrate moves it on).
    let calibrating;
    let told = if options.verify && plan.verify.calibrate {
        calibrating = calibration::phase(injected);
        &calibrating
    } else {
        injected
    };
    let emulated = backend.provides_links();
    dir.record(|s| s.links = planned_links(&plan, emulated))?;
    if emulated {
        progress.step("starting the link emulator", 1);
        start_emulator(kernel, &mut dir, told, switch, options, cancel).await?;
        progress.inc();
        stages.lap("emulator");
    }
    check(cancel)?;
    kernel.wire(&plan, switch, nodes, emulated, cancel, progress)?;
    // The emulator carries a segment itself (its uplink); a bridge needs a VXLAN device.
    if let Some(segment) = plan.segment.as_ref().filter(|_| !emulated) {
        progress.line(&format!(
            "joining the bridge to {} other host(s), VNI {}",
            segment.remotes.len(),
            segment.vni
        ));
        kernel.join_segment(switch, &plan.switch_netns, segment)?;
    }
    stages.lap("links");

    progress.step(&format!("applying delays ({})", backend.kind()), 1);
    kernel.apply(backend.as_ref(), told)?;
    progress.inc();
    stages.lap("delays");

    if let Some(grading) = &plan.grading {
        for (node, ns) in plan.nodes.iter().zip(nodes).filter(|(n, _)| n.grade) {
            kernel
                .set_port_range(ns, &node.netns, grading.port_range)
                .map_err(|e| BuildError::PortRange {
                    netns: node.netns.clone(),
                    message: e.to_string(),
                })?;
        }
    }

    progress.step("starting nodes", plan.nodes.len() as u64);
    let mut children = HashMap::new();
    dir.record(|s| s.nodes_started_at = Some(wall_now()))?;
    let launched_at = Instant::now();
    // Recorded together once started (one write, not one per node): a node
    // started but not yet recorded is found by teardown in its namespace.
    check(cancel)?;
    let boxes: Vec<String> = plan
        .nodes
        .iter()
        .filter(|n| n.confined(&plan, &options.sdss))
        .map(|n| sandbox::start::cgroup_name(&plan.lab, &n.name))
        .collect();
    dir.record(|s| s.cgroups.extend(boxes))?;
    let mut started = Vec::new();
    let mut launches = Vec::new();
    for (index, (node, ns)) in plan.nodes.iter().zip(nodes).enumerate() {
        if node.program == Program::Probe {
            continue;
        }
        launches.push(Launch {
            ns,
            netns: &node.netns,
            argv: node_argv(&dir, &plan, index, &options.sdss)?,
            env: node.env(&plan, &options.sdss),
            stdout: dir.stdout_log(&node.name),
            stderr: dir.stderr_log(&node.name),
        });
        started.push(node.name.clone());
    }
    let mut records = Vec::with_capacity(launches.len());
    let mut failure = None;
    for (name, result) in started.into_iter().zip(kernel.spawn(&launches)) {
        match result {
            Ok(child) => {
                records.extend(kernel.process(child.id() as i32).map(|mut r| {
                    r.node = Some(name.clone());
                    r
                }));
                children.insert(name, child);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    progress.set(plan.nodes.len() as u64);
    dir.record(|s| s.processes.extend(records))?;
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    dir.record(|s| s.phase = Phase::Running)?;
    stages.lap("nodes");
    Ok(Built {
        stages,
        sdss: options.sdss.clone(),
        dir,
        children,
        launched_at,
        delay: backend,
    })
}

/// Creates the lab's namespaces, all recorded in the lab's state (one
/// write) before any name exists: whatever happens after, teardown finds them.
fn create_namespaces<K: Kernel>(
    kernel: &mut K,
    dir: &mut LabDir,
    names: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<K::Netns>, BuildError> {
    check(cancel)?;
    let mut record = |ids: &[netns::NsId]| {
        let at = now_unix();
        dir.record(|s| {
            s.namespaces
                .extend(names.iter().zip(ids).map(|(name, id)| NamespaceRecord {
                    name: name.clone(),
                    id: *id,
                    recorded_at: at,
                }))
        })
        .map_err(io::Error::other)
    };
    Ok(kernel.create_netns(names, &mut record)?)
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
        if let Some(segment) = &plan.segment {
            links.push(link(
                &plan.switch_netns,
                &segment.ifname(),
                "vxlan (bridge port)",
            ));
        }
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

/// The emulator's log of frames with a TCP payload it delivered late, in its
/// state directory ([`late`] reads it).
pub const LATE_LOG: &str = "late.log";

/// How long the emulator gets to report `ready`.
const EMULATOR_START: Duration = Duration::from_secs(15);

/// Starts `sdss lab-emulator SPEC` in the switch namespace, records it, and waits
/// until it says `ready` (every TAP exists and is up).
async fn start_emulator<K: Kernel>(
    kernel: &mut K,
    dir: &mut LabDir,
    plan: &Plan,
    switch: &K::Netns,
    options: &UpOptions,
    cancel: &CancellationToken,
) -> Result<(), BuildError> {
    let spec_path = dir.emulator_file("spec.json");
    let spec = serde_json::to_vec_pretty(&emulator_spec(plan)).map_err(io::Error::other);
    spec.and_then(|bytes| std::fs::write(&spec_path, bytes))
        .map_err(|source| BuildError::Write {
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
        "--late".to_owned(),
        dir.emulator_file(LATE_LOG).display().to_string(),
        "--control".to_owned(),
        dir.emulator_file(CONTROL_SOCKET).display().to_string(),
    ];
    let launch = Launch {
        ns: switch,
        netns: &plan.switch_netns,
        argv,
        env: Vec::new(),
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    };
    let mut child = kernel
        .spawn(&[launch])
        .pop()
        .unwrap_or(Err(LaunchError::Empty))?;
    let record = kernel.process(child.id() as i32);
    dir.record(|s| s.processes.extend(record))?;
    let deadline = Instant::now() + EMULATOR_START;
    loop {
        // Whether it exited is asked before its output is read: one that said
        // `ready` and exited between the two would otherwise be a failure.
        let exited = child.try_wait();
        let said = tokio::fs::read_to_string(&stdout).await;
        if said.is_ok_and(|t| t.lines().any(|l| l.trim() == "ready")) {
            return Ok(());
        }
        let failure = if let Ok(Some(status)) = exited {
            Some(format!("it exited ({status})"))
        } else if Instant::now() >= deadline {
            Some(format!("no `ready` within {} s", EMULATOR_START.as_secs()))
        } else {
            None
        };
        if let Some(failure) = failure {
            let said = tokio::fs::read_to_string(&stderr).await.unwrap_or_default();
            return Err(DelayError::Emulator(format!("{failure}: {}", said.trim())).into());
        }
        check(cancel)?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a node of `plan` again in its namespace, appending to its logs, and
/// records the process: a timeline's `start` and `restart`, on one machine
/// (the scenario) or on one host of several (its agent).
pub fn start_node(
    dir: &mut LabDir,
    plan: &Plan,
    name: &str,
    sdss: &std::path::Path,
) -> Result<Child, BuildError> {
    let node = plan
        .node(name)
        .ok_or_else(|| BuildError::UnknownNode(name.to_owned()))?;
    let file = node_netns(dir, &node.netns)?;
    let index = plan.nodes.iter().position(|n| n.name == name).unwrap_or(0);
    let start = Launch {
        ns: &file,
        netns: &node.netns,
        argv: node_argv(dir, plan, index, sdss)?,
        env: node.env(plan, sdss),
        stdout: dir.stdout_log(name),
        stderr: dir.stderr_log(name),
    };
    let child = launch::spawn_all(std::slice::from_ref(&start))
        .pop()
        .unwrap_or(Err(LaunchError::Empty))?;
    let record = state::ProcessRecord::of(child.id() as i32, Some(name.to_owned()));
    dir.record(|s| s.processes.extend(record))?;
    Ok(child)
}

/// The command line of the `index`th node of `plan`: its program's, or,
/// confined, the box keeper's with the spec it writes into `dir`.
fn node_argv(
    dir: &LabDir,
    plan: &Plan,
    index: usize,
    sdss: &std::path::Path,
) -> Result<Vec<String>, BuildError> {
    let node = &plan.nodes[index];
    if node.confined(plan, sdss) {
        Ok(sandbox::start::prepare(dir, plan, node, index, sdss)?)
    } else {
        Ok(node.argv(plan, sdss))
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::kernel::fake::{FakeKernel, TempDir};
    use super::state::{LabState, StateError, StateRoot};
    use super::teardown::teardown_with;
    use super::*;
    use crate::lab::file::backend::BackendChoice;

    const LAB: &str = "name = \"td\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";

    fn options() -> UpOptions {
        UpOptions {
            backend: BackendChoice::Auto,
            sdss: PathBuf::from("/usr/bin/sdss"),
            verify: false,
            injected: None,
        }
    }

    async fn build_on(
        kernel: &mut FakeKernel,
        root: &StateRoot,
        backend: BackendKind,
    ) -> Result<Built, BuildError> {
        build_plan(kernel, root, backend, Plan::from_text(LAB)).await
    }

    async fn build_plan(
        kernel: &mut FakeKernel,
        root: &StateRoot,
        backend: BackendKind,
        plan: Plan,
    ) -> Result<Built, BuildError> {
        let dir = root.create(LabState::creating(plan.clone())).unwrap();
        let progress = crate::lab::progress::Silent;
        let cancel = CancellationToken::new();
        build_with(kernel, dir, plan, backend, &options(), &cancel, &progress).await
    }

    fn reap(built: &mut Built) {
        for child in built.children.values_mut() {
            let _ = child.wait();
        }
    }

    #[tokio::test]
    async fn build_makes_what_it_records_and_teardown_removes_all_of_it() {
        for backend in [BackendKind::None, BackendKind::Netem, BackendKind::Emulator] {
            let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
            let root = StateRoot::at(&temp.0);
            let mut built = build_on(&mut kernel, &root, backend).await.unwrap();
            reap(&mut built);
            let state = &built.dir.state;
            assert_eq!(state.phase, Phase::Running);
            assert_eq!(kernel.applied, Some(backend));
            for ns in &state.namespaces {
                assert_eq!(kernel.netns[&ns.name], Presence::Mounted(ns.id));
            }
            for link in &state.links {
                assert!(
                    kernel.links[&link.netns].contains(&link.name),
                    "{backend}: {link:?} recorded, not made"
                );
            }
            let made: usize = kernel.links.values().map(|l| l.len()).sum();
            assert_eq!(made, state.links.len(), "{backend}: made, not recorded");
            let nodes: Vec<_> = state
                .processes
                .iter()
                .filter_map(|p| p.node.clone())
                .collect();
            assert_eq!(nodes, ["a", "b"], "{backend}");
            let emulator = state.processes.iter().filter(|p| p.node.is_none()).count();
            assert_eq!(emulator, usize::from(backend == BackendKind::Emulator));
            for process in state.processes.iter().filter(|p| p.node.is_some()) {
                let node = state.plan.node(process.node.as_deref().unwrap()).unwrap();
                let ns = state
                    .namespaces
                    .iter()
                    .find(|n| n.name == node.netns)
                    .unwrap();
                assert_eq!(
                    kernel.processes[&process.pid].1, ns.id.ino,
                    "in its namespace"
                );
            }

            teardown_with(&mut kernel, &root, "td").unwrap();
            assert!(kernel.netns.is_empty(), "{backend}: {:?}", kernel.netns);
            assert!(kernel.links.is_empty(), "{backend}: {:?}", kernel.links);
            assert!(
                kernel.processes.is_empty(),
                "{backend}: {:?}",
                kernel.processes
            );
            assert!(matches!(root.open("td"), Err(StateError::NotUp(_))));
        }
    }

    /// The lab `td` as host 10.98.0.1's share of a segment with two others.
    fn joined() -> Plan {
        let mut plan = Plan::from_text(LAB);
        plan.segment = Some(crate::lab::plan::Segment {
            vni: 42,
            local: "10.98.0.1".parse().unwrap(),
            remotes: vec!["10.98.0.2".parse().unwrap(), "10.98.0.3".parse().unwrap()],
            mtu: 1450,
        });
        plan
    }

    #[tokio::test]
    async fn a_lab_on_a_segment_records_its_vxlan_device_which_goes_with_the_switch() {
        for backend in [BackendKind::None, BackendKind::Netem] {
            let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
            let root = StateRoot::at(&temp.0);
            let mut built = build_plan(&mut kernel, &root, backend, joined())
                .await
                .unwrap();
            reap(&mut built);
            assert_eq!(kernel.segments.len(), 1);
            assert_eq!(kernel.segments[0].0, "sdss-td");
            assert_eq!(Some(&kernel.segments[0].1), joined().segment.as_ref());
            let state = &built.dir.state;
            let vxlan: Vec<_> = state
                .links
                .iter()
                .filter(|l| l.kind.starts_with("vxlan"))
                .map(|l| (l.netns.as_str(), l.name.as_str()))
                .collect();
            assert_eq!(vxlan, [("sdss-td", "sdss-vx42")], "{backend}");
            let made: usize = kernel.links.values().map(|l| l.len()).sum();
            assert_eq!(made, state.links.len(), "{backend}: made == recorded");
            teardown_with(&mut kernel, &root, "td").unwrap();
            assert!(kernel.links.is_empty(), "{backend}: {:?}", kernel.links);
        }
    }

    #[tokio::test]
    async fn a_kernel_without_vxlan_fails_the_build_by_name_and_teardown_undoes_it() {
        let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
        let root = StateRoot::at(&temp.0);
        kernel.no_vxlan = true;
        let failed = build_plan(&mut kernel, &root, BackendKind::None, joined()).await;
        let Err(BuildError::Segment(error)) = failed else {
            panic!("expected a segment error, got {:?}", failed.err());
        };
        assert!(matches!(error, vxlan::SegmentError::NoVxlan));
        assert!(error.to_string().contains("no vxlan module"), "{error}");
        assert_eq!(kernel.spawned, 0, "no node started");
        teardown_with(&mut kernel, &root, "td").unwrap();
        assert!(kernel.netns.is_empty() && kernel.links.is_empty());
    }

    #[tokio::test]
    async fn the_emulator_carries_a_segment_itself_without_a_vxlan_device() {
        let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
        let root = StateRoot::at(&temp.0);
        let built = build_plan(&mut kernel, &root, BackendKind::Emulator, joined()).await;
        assert!(built.is_ok(), "{:?}", built.err());
        assert!(kernel.segments.is_empty());
        let spec = delay::emulator_spec(&joined());
        let uplink = spec.uplink.expect("an uplink");
        assert_eq!(uplink.vni, joined().segment.expect("segment").vni);
        assert_eq!(uplink.remotes.len(), 2);
        drop(built);
        teardown_with(&mut kernel, &root, "td").unwrap();
        assert!(kernel.netns.is_empty());
    }

    #[tokio::test]
    async fn a_build_failing_at_a_node_start_is_undone_by_teardown() {
        let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
        let root = StateRoot::at(&temp.0);
        kernel.fail_spawn = Some(1); // b's
        let failed = build_on(&mut kernel, &root, BackendKind::Netem).await;
        assert!(
            matches!(failed, Err(BuildError::Launch(_))),
            "{:?}",
            failed.err()
        );
        let state = root.open("td").unwrap().unwrap().state;
        assert_eq!(state.processes.len(), 1, "a's, recorded");
        let a = state.processes[0].pid;
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(outcome.removed, ["sdss-td-b", "sdss-td-a", "sdss-td"]);
        assert!(kernel.stopped.contains(&a), "a's process stopped");
        assert!(kernel.links.is_empty() && kernel.processes.is_empty());
    }

    #[test]
    fn teardown_undoes_exactly_what_an_interrupted_namespace_step_made() {
        let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
        let root = StateRoot::at(&temp.0);
        let plan = Plan::from_text(LAB);
        let mut dir = root.create(LabState::creating(plan.clone())).unwrap();
        kernel.fail_on = Some("sdss-td-b".to_owned());
        let made = create_namespaces(
            &mut kernel,
            &mut dir,
            &plan.namespaces(),
            &CancellationToken::new(),
        );
        assert!(made.is_err(), "naming the third namespace fails");
        let recorded: Vec<&str> = dir
            .state
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(recorded, ["sdss-td", "sdss-td-a", "sdss-td-b"]);
        let outcome = teardown_with(&mut kernel, &root, "td").unwrap();
        assert_eq!(outcome.removed, ["sdss-td-a", "sdss-td"]);
        assert!(kernel.netns.is_empty(), "{:?}", kernel.netns);
    }

    #[tokio::test]
    async fn a_cancelled_build_makes_nothing() {
        let (temp, mut kernel) = (TempDir::new("build"), FakeKernel::default());
        let root = StateRoot::at(&temp.0);
        let plan = Plan::from_text(LAB);
        let dir = root.create(LabState::creating(plan.clone())).unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let progress = crate::lab::progress::Silent;
        let built = build_with(
            &mut kernel,
            dir,
            plan,
            BackendKind::None,
            &options(),
            &cancel,
            &progress,
        )
        .await;
        assert!(matches!(built, Err(BuildError::Cancelled)));
        assert!(kernel.netns.is_empty() && kernel.spawned == 0);
    }
}
