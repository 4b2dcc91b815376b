//! The life of a lab: `up` (create, launch, wait, grade), `verify` (grade again),
//! `down` (undo exactly what was recorded), `status`.
//!
//! `up` records every object before creating it, and arms a guard that runs the
//! same code as `down` if anything fails, panics or is cancelled (Ctrl-C), so an
//! interrupted `up` leaves nothing. `down` works from the state alone: after a
//! `kill -9` of `up` at any point it finds what was made, checks each object's
//! recorded identity, and leaves alone anything that only looks like it.

use crate::node::clock::wall_now;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::lab::build::delay::{
    emulator_spec, BackendChoice, BackendKind, DelayBackend, DelayError, Emulator, Netem,
    NetemSupport, NoDelay, Tc,
};
use crate::lab::build::emulator::{Counters, PortCounters};
use crate::lab::build::launch::{self, LaunchError, Output};
use crate::lab::build::links::{self, LinkError, Netlink};
use crate::lab::build::netns::{self, NetnsError, Presence};
use crate::lab::build::state::{
    LabDir, LabState, LinkRecord, NamespaceRecord, Phase, ProcessRecord, StateError, StateRoot,
};
use crate::lab::judge::delays::{grade, Grades, Observations};
use crate::lab::judge::{self};
use crate::lab::plan::Program;
use crate::lab::plan::{Plan, PREFIX};
use crate::lab::report::progress::Progress;
use crate::lab::report::Report;
use crate::lab::scenario::grading::{
    assemble, parse_stamped, set_port_range, LabSide, RunningProbe,
};
use crate::lab::scenario::probe::{ProbeSpec, Target};

/// How long nodes get to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How often `up` reads the nodes' output while waiting for convergence.
const POLL: Duration = Duration::from_millis(250);

/// Failures of lab operations.
#[derive(Debug, Error)]
pub enum LabError {
    /// State directory trouble (including "already up").
    #[error(transparent)]
    State(#[from] StateError),
    /// Namespace trouble.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Link trouble.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Delay backend trouble.
    #[error(transparent)]
    Delay(#[from] DelayError),
    /// A node could not be started.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted: the lab was torn down")]
    Cancelled,
    /// No such node in the lab.
    #[error("lab {lab} has no node {node}: its nodes are {known}")]
    NoNode {
        /// The lab.
        lab: String,
        /// The name asked for.
        node: String,
        /// The names it has.
        known: String,
    },
    /// The grading probe failed.
    #[error("grading probe: {0}")]
    Probe(String),
    /// A log could not be read.
    #[error("reading {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
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

/// What `up` produced.
#[derive(Debug)]
pub struct UpOutcome {
    /// The grade, when `up` verified.
    pub report: Option<Report>,
    /// From the start of `up` until every node was launched.
    pub build_time: Duration,
    /// From node launch until the grade.
    pub converge_time: Duration,
}

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
struct TeardownGuard<'a> {
    root: &'a StateRoot,
    lab: String,
    armed: bool,
}

impl Drop for TeardownGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = down(self.root, &self.lab) {
                eprintln!("sdss: cleaning up lab {} failed: {e}", self.lab);
            }
        }
    }
}

/// Brings a lab up: namespaces, links, delays, nodes; then (with `verify`) waits
/// for convergence and grades. On any error or cancellation the lab is torn down.
pub async fn up(
    plan: Plan,
    options: &UpOptions,
    root: &StateRoot,
    cancel: &CancellationToken,
    progress: &Progress,
) -> Result<UpOutcome, LabError> {
    let started = Instant::now();
    let lab_name = plan.lab.clone();
    let dir = root.create(LabState::creating(plan.clone()))?;
    let mut guard = TeardownGuard {
        root,
        lab: lab_name,
        armed: true,
    };
    let mut built = build(dir, plan, options, cancel, progress).await?;
    let build_time = started.elapsed();
    let launched = Instant::now();
    let report = if options.verify {
        progress.step(
            "waiting for every pair to be measured",
            built.dir.state.plan.expected.len() as u64,
        );
        let probe = match (&built.dir.state.plan.grading, &built.probe_ns) {
            (Some(_), Some(ns)) => Some(start_probe(&built, ns)?),
            _ => None,
        };
        let converged = converge(&mut built, cancel, progress, probe.as_ref()).await;
        let log = match probe {
            Some(probe) => {
                if converged.is_err() {
                    probe.cancel();
                }
                Some(probe.finish().map_err(|e| LabError::Probe(e.to_string()))?)
            }
            None => None,
        };
        let (mut report, lab_side) = converged?;
        if let Some(log) = log {
            for error in &log.errors {
                progress.line(&format!("grading probe: {error}"));
            }
            let observed = assemble(&built.dir.state.plan, &log, &lab_side);
            report.grading = observed.iter().map(judge::checks::grade).collect();
        }
        Some(report)
    } else {
        None
    };
    guard.armed = false;
    Ok(UpOutcome {
        report,
        build_time,
        converge_time: launched.elapsed(),
    })
}

struct Built {
    dir: LabDir,
    children: HashMap<String, Child>,
    launched_at: Instant,
    /// The grading probe's namespace, in labs with graded nodes.
    probe_ns: Option<File>,
}

/// Starts the grading probe for the lab's graded nodes.
fn start_probe(built: &Built, ns: &File) -> Result<RunningProbe, LabError> {
    let state = &built.dir.state;
    let plan = &state.plan;
    let grading = plan
        .grading
        .as_ref()
        .ok_or_else(|| LabError::Probe("no grading settings".to_owned()))?;
    let own = plan
        .node(&grading.probe)
        .map(|n| n.address)
        .ok_or_else(|| LabError::Probe("no probe node".to_owned()))?;
    let targets = plan
        .nodes
        .iter()
        .filter(|n| n.grade)
        .filter_map(|n| {
            built.children.get(&n.name).map(|child| Target {
                name: n.name.clone(),
                address: n.address,
                pid: child.id() as i32,
            })
        })
        .collect();
    let spec = ProbeSpec {
        broadcast_port: crate::protocol::DEFAULT_BROADCAST_PORT,
        directed: plan.subnet.broadcast(),
        own,
        targets,
        duration: grading.duration,
        silent_at: grading.silent_at,
        joined_at: grading.joined_at,
        burst_at: grading.burst_at,
        risky_from: grading.risky_from,
    };
    let start = state.nodes_started_at.unwrap_or_else(wall_now);
    RunningProbe::start(ns, spec, start).map_err(|e| LabError::Probe(e.to_string()))
}

fn check(cancel: &CancellationToken) -> Result<(), LabError> {
    if cancel.is_cancelled() {
        Err(LabError::Cancelled)
    } else {
        Ok(())
    }
}

async fn build(
    mut dir: LabDir,
    plan: Plan,
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
    let mut files = Vec::with_capacity(names.len());
    for name in &names {
        check(cancel)?;
        let id = netns::create(name, |id| {
            dir.record(|s| {
                s.namespaces.push(NamespaceRecord {
                    name: name.clone(),
                    id,
                    recorded_at: now_unix(),
                })
            })
            .map_err(io::Error::other)
        })?;
        files.push(netns::open(name, Some(id))?);
        progress.inc();
    }
    let (switch_file, node_files) = files
        .split_first()
        .ok_or_else(|| NetnsError::Exists(plan.switch_netns.clone()))?;

    let switch = Netlink::connect(switch_file, &plan.switch_netns)?;
    links::loopback_up(&switch).await?;
    let netem = Tc.probe_netem(&plan.switch_netns);
    let backend: Box<dyn DelayBackend> = match options.backend {
        BackendChoice::None => Box::new(NoDelay),
        BackendChoice::Auto if plan.is_unimpaired() => Box::new(NoDelay),
        BackendChoice::Auto if netem == NetemSupport::Available => Box::new(Netem::default()),
        BackendChoice::Auto | BackendChoice::Emulator => Box::new(Emulator),
        BackendChoice::Netem => {
            if netem != NetemSupport::Available {
                return Err(DelayError::NoNetem.into());
            }
            Box::new(Netem::default())
        }
    };
    let backend_note = (backend.kind() == BackendKind::None && !plan.is_unimpaired())
        .then(|| "zero delay: the delays in the lab file were not injected".to_owned());
    let plan = if backend.kind() == BackendKind::None {
        plan.zero_delay()
    } else {
        plan
    };
    progress.line(&format!("delay backend {}; netem {netem}", backend.kind()));
    let told = match &options.injected {
        Some(injected) if backend.kind() != BackendKind::None => {
            progress.line("injecting the delays of another lab file (--inject-from)");
            injected
        }
        _ => &plan,
    };
    let emulated = backend.provides_links();
    dir.record(|s| {
        s.netem = Some(netem);
        s.backend = Some(backend.kind());
        s.backend_note = backend_note;
        s.plan = plan.clone();
        s.links = planned_links(&plan, emulated);
    })?;

    let node_link: Vec<String> = if emulated {
        progress.step("starting the link emulator", 1);
        start_emulator(&mut dir, told, switch_file, options, cancel)?;
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
    backend.apply(told)?;
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
        dir,
        children,
        launched_at,
        probe_ns,
    })
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

/// How long the emulator gets to report `ready`.
const EMULATOR_START: Duration = Duration::from_secs(15);

/// Starts `sdss lab-emulator SPEC` in the switch namespace, records it, and waits
/// until it says `ready` (every TAP exists and is up).
fn start_emulator(
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Follows a node's stdout as it grows.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// Adds the events written since the last poll to `seen`.
    fn poll(&mut self, seen: &mut Observations) -> Result<(), LabError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(LabError::Log {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|source| LabError::Log {
                path: self.path.clone(),
                source,
            })?;
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        if let Some(end) = self.partial.rfind('\n') {
            let complete: String = self.partial.drain(..=end).collect();
            let more = Observations::parse(&complete);
            seen.events.extend(more.events);
            seen.unreadable_lines += more.unreadable_lines;
        }
        Ok(())
    }
}

async fn converge(
    built: &mut Built,
    cancel: &CancellationToken,
    progress: &Progress,
    probe: Option<&RunningProbe>,
) -> Result<(Report, LabSide), LabError> {
    let plan = built.dir.state.plan.clone();
    let mut tails: HashMap<String, LogTail> = plan
        .nodes
        .iter()
        .filter(|n| n.graded)
        .map(|n| (n.name.clone(), LogTail::new(built.dir.stdout_log(&n.name))))
        .collect();
    let mut observations: HashMap<String, Observations> = tails
        .keys()
        .map(|name| (name.clone(), Observations::default()))
        .collect();
    let grading = plan.grading.as_ref().filter(|_| probe.is_some());
    let mut deadline = built.launched_at + plan.verify.time_limit;
    let mut lab = LabSide {
        started_at: built.dir.state.nodes_started_at.unwrap_or_else(wall_now),
        ..LabSide::default()
    };
    let mut kill = None;
    if let Some(g) = grading {
        // A graded lab is watched for exactly its grading run: the delay
        // report is cut there, pairs short of samples say so.
        deadline = built.launched_at + g.duration;
        kill = g
            .kill
            .clone()
            .map(|name| (name, built.launched_at + g.kill_at));
    }
    loop {
        if let Some((name, at)) = kill.take() {
            if Instant::now() >= at {
                kill_node(built, &name);
                lab.killed = Some((name, wall_now()));
            } else {
                kill = Some((name, at));
            }
        }
        for (name, tail) in &mut tails {
            let seen = observations.entry(name.clone()).or_default();
            tail.poll(seen)?;
            if let Some(child) = built.children.get_mut(name) {
                if let Ok(Some(status)) = child.try_wait() {
                    seen.exited = Some(format!("exited: {status}"));
                }
            }
        }
        let grades = grade(&plan, &observations);
        progress.set(count_complete(&grades) as u64);
        let watched = grading.is_none_or(|g| built.launched_at.elapsed() >= g.duration);
        if (grades.converged() && watched) || Instant::now() >= deadline {
            if grading.is_some() {
                lab.ended_at = wall_now();
                for node in plan.nodes.iter().filter(|n| n.grade) {
                    if let Some(child) = built.children.get_mut(&node.name) {
                        if let Ok(Some(status)) = child.try_wait() {
                            lab.exited
                                .insert(node.name.clone(), format!("it exited: {status}"));
                        }
                        if let Some(line) = last_line(&built.dir.stderr_log(&node.name)) {
                            lab.last_words.insert(node.name.clone(), line);
                        }
                    }
                }
                for node in plan
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.program, Program::Sdss { .. }))
                {
                    let text = std::fs::read(built.dir.stdout_log(&node.name)).unwrap_or_default();
                    lab.events.insert(
                        node.name.clone(),
                        parse_stamped(&String::from_utf8_lossy(&text)),
                    );
                }
            }
            let state = &built.dir.state;
            let report = Report::new(
                &plan,
                state.backend.unwrap_or(BackendKind::None),
                state.netem.clone(),
                state.backend_note.clone(),
                grades,
                built.launched_at.elapsed().as_secs_f64(),
            )
            .with_emulator(emulator_totals(&built.dir));
            return Ok((report, lab));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(LabError::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The last line a node wrote on stderr (a Python traceback's verdict), for a
/// checklist that says why it died.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().chars().take(200).collect())
}

/// Kills one node of the lab (a step of the grading scenario).
fn kill_node(built: &mut Built, name: &str) {
    if let Some(child) = built.children.get_mut(name) {
        let pid = child.id() as i32;
        let record = ProcessRecord::of(pid, Some(name.to_owned()));
        launch::stop(&[pid], Duration::from_secs(1), |_| {
            record.as_ref().is_some_and(ProcessRecord::alive)
        });
        let _ = child.try_wait();
    }
}

fn count_complete(grades: &Grades) -> usize {
    grades
        .pairs
        .iter()
        .filter(|p| p.samples >= grades.samples_wanted)
        .count()
}

/// Grades a running lab again from everything its nodes have printed so far.
pub fn verify(root: &StateRoot, lab: &str) -> Result<Report, LabError> {
    let dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let state = &dir.state;
    let mut observations = HashMap::new();
    for node in state.plan.nodes.iter().filter(|n| n.graded) {
        let path = dir.stdout_log(&node.name);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(LabError::Log { path, source }),
        };
        let mut seen = Observations::parse(&text);
        let alive = state
            .processes
            .iter()
            .any(|p| p.node.as_deref() == Some(node.name.as_str()) && p.alive());
        if !alive {
            seen.exited = Some("not running".to_owned());
        }
        observations.insert(node.name.clone(), seen);
    }
    let grades = grade(&state.plan, &observations);
    let elapsed = state.nodes_started_at.map_or(0.0, |t| wall_now() - t);
    Ok(Report::new(
        &state.plan,
        state.backend.unwrap_or(BackendKind::None),
        state.netem.clone(),
        state.backend_note.clone(),
        grades,
        elapsed,
    )
    .with_emulator(emulator_totals(&dir)))
}

/// The emulator's counters as it last wrote them, when it carries the lab.
fn emulator_totals(dir: &LabDir) -> Option<PortCounters> {
    if dir.state.backend != Some(BackendKind::Emulator) {
        return None;
    }
    Counters::read_from(&dir.emulator_file("counters.json")).map(|c| c.total())
}

/// Takes a lab down: stops its processes, removes its namespaces (which takes
/// their links with them) and its state. Idempotent; never touches an object
/// whose identity differs from the recorded one.
pub fn down(root: &StateRoot, lab: &str) -> Result<DownOutcome, LabError> {
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
            outcome.foreign = lookalikes(lab);
            return Ok(outcome);
        }
        Err(e) => return Err(e.into()),
    };
    outcome.found = true;
    dir.record(|s| s.phase = Phase::Removing)?;
    let state = dir.state.clone();
    let me = std::process::id() as i32;

    // An `up` still building this lab would race us: it is ours, stop it first.
    if let Some(owner) = state.owner.as_ref().filter(|o| o.pid != me && o.alive()) {
        let owner = owner.clone();
        launch::stop(&[owner.pid], Duration::ZERO, |_| owner.alive());
    }

    let mut pids: Vec<i32> = state
        .processes
        .iter()
        .filter(|p| p.alive())
        .map(|p| p.pid)
        .collect();
    for ns in &state.namespaces {
        if netns::presence(&ns.name).ok() == Some(Presence::Mounted(ns.id)) {
            pids.extend(
                netns::processes_in(ns.id.ino)
                    .into_iter()
                    .filter(|p| *p != me),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    let records: HashMap<i32, Option<ProcessRecord>> = pids
        .iter()
        .map(|p| (*p, ProcessRecord::of(*p, None)))
        .collect();
    outcome.stopped = pids.len();
    launch::stop(&pids, STOP_GRACE, |pid| {
        records
            .get(&pid)
            .and_then(Option::as_ref)
            .is_some_and(ProcessRecord::alive)
    });

    for ns in state.namespaces.iter().rev() {
        match netns::presence(&ns.name) {
            Ok(Presence::Absent) => {}
            Ok(Presence::Mounted(id)) if id == ns.id => {
                netns::remove(&ns.name)?;
                outcome.removed.push(ns.name.clone());
            }
            Ok(Presence::Unmounted { ctime }) if ctime >= ns.recorded_at => {
                // An `up` killed between creating the name and mounting on it.
                netns::remove(&ns.name)?;
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
    for name in lookalikes(lab) {
        if !outcome.removed.contains(&name) && !outcome.foreign.contains(&name) {
            outcome.foreign.push(name);
        }
    }
    root.remove(lab)?;
    Ok(outcome)
}

/// Namespaces named like the lab's (`sdss-<lab>` and `sdss-<lab>-*`) that exist now.
fn lookalikes(lab: &str) -> Vec<String> {
    let switch = format!("{PREFIX}{lab}");
    let node_prefix = format!("{switch}-");
    let Ok(entries) = std::fs::read_dir(netns::NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| *n == switch || n.starts_with(&node_prefix))
        .collect();
    names.sort();
    names
}

/// One line per lab with state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabStatus {
    /// The lab.
    pub lab: String,
    /// Its phase, or `interrupted` when its `up` died while building it.
    pub phase: String,
    /// Nodes whose process runs.
    pub nodes_running: usize,
    /// Nodes in the plan.
    pub nodes: usize,
    /// Delay backend.
    pub backend: Option<BackendKind>,
    /// The lab file.
    pub source: PathBuf,
    /// When `up` began.
    pub created_at: String,
}

/// The status of every lab with state (or only `lab`).
pub fn status(root: &StateRoot, lab: Option<&str>) -> Result<Vec<LabStatus>, LabError> {
    let labs = match lab {
        Some(lab) => vec![lab.to_owned()],
        None => root.labs(),
    };
    let mut out = Vec::new();
    for name in labs {
        let Some(dir) = root.open(&name)? else {
            out.push(LabStatus {
                lab: name,
                phase: "interrupted".to_owned(),
                nodes_running: 0,
                nodes: 0,
                backend: None,
                source: PathBuf::new(),
                created_at: String::new(),
            });
            continue;
        };
        let s = &dir.state;
        let owner_alive = s.owner.as_ref().is_some_and(ProcessRecord::alive);
        let phase = match s.phase {
            Phase::Creating if owner_alive => "creating",
            Phase::Creating => "interrupted",
            Phase::Running => "running",
            Phase::Removing if owner_alive => "removing",
            Phase::Removing => "interrupted",
        };
        out.push(LabStatus {
            lab: name,
            phase: phase.to_owned(),
            nodes_running: s
                .processes
                .iter()
                .filter(|p| p.node.is_some() && p.alive())
                .count(),
            nodes: s.plan.nodes.len(),
            backend: s.backend,
            source: s.plan.source.clone(),
            created_at: s.created_at.clone(),
        });
    }
    Ok(out)
}

/// The state of a lab and one of its nodes, for `exec` and `logs`.
pub fn open_node(root: &StateRoot, lab: &str, node: &str) -> Result<(LabDir, usize), LabError> {
    let dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let index = dir
        .state
        .plan
        .nodes
        .iter()
        .position(|n| n.name == node)
        .ok_or_else(|| LabError::NoNode {
            lab: lab.to_owned(),
            node: node.to_owned(),
            known: dir
                .state
                .plan
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    Ok((dir, index))
}

/// Runs a command inside a node's namespace, attached to the terminal, and
/// returns its exit code.
pub fn exec(
    root: &StateRoot,
    lab: &str,
    node: &str,
    argv: &[String],
    sdss: &Path,
) -> Result<i32, LabError> {
    let (dir, index) = open_node(root, lab, node)?;
    let plan = &dir.state.plan;
    let node = &plan.nodes[index];
    let id = dir
        .state
        .namespaces
        .iter()
        .find(|n| n.name == node.netns)
        .map(|n| n.id);
    let file = netns::open(&node.netns, id)?;
    let mut command = launch::command_in(&file, argv, &node.env(plan, sdss), false)?;
    let status = command.status().map_err(|source| LaunchError::Spawn {
        program: argv.first().cloned().unwrap_or_default(),
        netns: node.netns.clone(),
        source,
    })?;
    Ok(status.code().unwrap_or(128))
}
