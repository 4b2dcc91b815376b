//! The life of a lab, composed from the pipeline's stages: `up` (plan ->
//! build -> scenario -> judge -> report), `verify` (judge again), `down`
//! (the build's exact inverse), `status`, `exec`.
//!
//! `up` arms a guard that runs the same teardown as `down` if anything fails,
//! panics or is cancelled (Ctrl-C), so an interrupted `up` leaves nothing.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::builder::delay::Tc;
use super::builder::launch::{self, LaunchError};
use super::builder::sandbox::outcome::outcomes;
use super::builder::state::{LabDir, LabState, Phase, ProcessRecord, StateError, StateRoot};
use super::builder::{build, emulator_totals, node_netns, TeardownGuard, UpOptions};
use super::builder::{Built, Stages};
use super::judge::delays::{verify_aside, Verification};
use super::judge::timeline::TimelineVerdicts;
use super::judge::{self};
use super::plan::backend::{self, BackendKind};
use super::plan::calibration;
use super::plan::Plan;
use super::report::{LabPhase, LabStatus, Report};
use super::scenario::calibrate::calibrate;
use super::scenario::grading::{assemble, LabSide};
use super::scenario::late::{LateAnswers, LateFollower};
use super::scenario::local::Local;
use super::scenario::played::Played;
use super::scenario::stream::Observations;
use super::scenario::{self, start_probe, Convergence, Measured, Run, Scene};
use super::LabError;
use crate::lab::progress::Progress;

/// What `up` produced.
pub struct UpOutcome {
    /// The delay backend it settled on.
    pub backend: BackendKind,
    /// The grade, when `up` verified.
    pub report: Option<Report>,
    /// From the start of `up` until every node was launched.
    pub build_time: Duration,
    /// The build's stages, timed.
    pub stages: Stages,
    /// From node launch until the grade.
    pub converge_time: Duration,
    /// The lab as built on this machine, for whoever plays events on it
    /// later (a host's agent); none when the nodes live on other hosts.
    pub built: Option<Built>,
}

/// Brings a lab up: namespaces, links, delays, nodes; then (with `verify`) waits
/// for convergence and verification. On any error or cancellation the lab is torn down.
pub async fn up(
    plan: Plan,
    options: &UpOptions,
    root: &StateRoot,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<UpOutcome, LabError> {
    let started = Instant::now();
    launch::raise_priority();
    // Settled before anything is created: the backend, and with `none` the
    // plan it implies (every pair at zero delay).
    let netem = backend::needs_netem(options.backend, &plan)
        .then(|| tokio::task::block_in_place(|| Tc.probe_netem()));
    let backend = backend::settle(options.backend, &plan, netem.as_ref())?;
    let note = (backend == BackendKind::None && !plan.is_unimpaired())
        .then(|| "zero delay: the delays in the lab file were not injected".to_owned());
    let plan = if note.is_some() {
        plan.zero_delay()
    } else {
        plan
    };
    calibration::check(&plan, backend)?;
    let lab_name = plan.lab.clone();
    let mut state = LabState::creating(plan.clone());
    state.netem = netem;
    state.backend = Some(backend);
    state.backend_note = note;
    let dir = root.create(state)?;
    let mut guard = TeardownGuard {
        root,
        lab: lab_name,
        armed: true,
    };
    let mut built = build(dir, plan, backend, options, cancel, progress).await?;
    let build_time = started.elapsed();
    let launched = Instant::now();
    let report = if options.verify {
        // Calibration and a grading probe never meet (calibration::check).
        let calibrated = if built.dir.state.plan.verify.calibrate {
            let told = options
                .injected
                .clone()
                .unwrap_or_else(|| built.dir.state.plan.clone());
            Some(calibrate(&mut built, &told, &Judged, cancel, progress).await?)
        } else {
            None
        };
        progress.step(
            "waiting for every pair to be measured",
            built.dir.state.plan.expected.len() as u64,
        );
        let probe = match &built.dir.state.plan.grading {
            Some(_) => Some(start_probe(&built)?),
            None => None,
        };
        let scene = Scene {
            plan: &built.dir.state.plan.clone(),
            launched: built.launched_at,
            started_at: built.dir.state.nodes_started_at.unwrap_or_else(wall_now),
            resume: calibrated,
            graded_for: probe
                .as_ref()
                .and(built.dir.state.plan.grading.as_ref())
                .map(|g| g.duration),
        };
        let mut here = [Local::new(&mut built, probe)];
        let ran = scenario::run(&mut here, scene, &Judged, cancel, progress).await?;
        Some(judge_run(&built.dir, &ran, built.launched_at, progress)?)
    } else {
        None
    };
    guard.armed = false;
    Ok(UpOutcome {
        backend,
        report,
        build_time,
        stages: built.stages.clone(),
        converge_time: launched.elapsed(),
        built: Some(built),
    })
}

/// The judge's answer to the scenario's question: which pairs have their
/// samples, and each one's floor when calibrating.
pub struct Judged;

impl Convergence for Judged {
    fn measured(
        &self,
        plan: &Plan,
        observed: &HashMap<String, Observations>,
        late: Option<&LateAnswers>,
    ) -> Measured {
        let verification = verify_aside(plan, &[], observed, late);
        Measured {
            complete: verification.complete(),
            converged: verification.converged(),
        }
    }

    fn floors(
        &self,
        plan: &Plan,
        observed: &HashMap<String, Observations>,
    ) -> Vec<Option<Duration>> {
        verify_aside(plan, &[], observed, None).floors()
    }
}

/// The report of a scenario's run on the lab in `dir` (over one machine or
/// several hosts): its delays, boxes, timeline and graded nodes judged. A
/// grading probe that failed fails the run: no graded node is judged on
/// what the lab did not see.
pub fn judge_run(
    dir: &LabDir,
    ran: &Run,
    launched: Instant,
    progress: &dyn Progress,
) -> Result<Report, LabError> {
    let state = &dir.state;
    let judged = state.judged_plan();
    let plan = judged.as_ref();
    let verification = verify_aside(plan, &state.floors, &ran.observed, ran.late.as_ref());
    let mut report = report(dir, verification, ran.elapsed_secs).with_boxes(ran.boxes.clone());
    if !plan.timeline.is_empty() {
        report.timeline = Some(judge_timeline(plan, &ran.played, &ran.lab, launched));
    }
    match &ran.probe {
        Some(Ok(log)) => {
            for error in &log.errors {
                progress.line(&format!("grading probe: {error}"));
            }
            let observed = assemble(plan, log, &ran.lab);
            report.grading = observed.iter().map(judge::checks::grade).collect();
        }
        Some(Err(e)) => return Err(LabError::Probe(e.clone())),
        None if plan.grading.is_some() => {
            return Err(LabError::Probe("no site ran the grading probe".to_owned()))
        }
        None => {}
    }
    Ok(report)
}

/// Judges the timeline from every observer's stamped events (read by the scenario).
fn judge_timeline(
    plan: &Plan,
    played: &[Played],
    lab: &LabSide,
    launched: Instant,
) -> TimelineVerdicts {
    let events = plan
        .nodes
        .iter()
        .filter(|n| n.graded)
        .map(|n| {
            let stamped = lab.events.get(&n.name).map_or(&[][..], Vec::as_slice);
            let relative = stamped
                .iter()
                .map(|(t, e)| (t - lab.started_at, e.clone()))
                .collect();
            (n.name.clone(), relative)
        })
        .collect();
    let settle = (plan.node_settings.interval * plan.node_settings.refresh_every).as_secs_f64();
    let end = launched.elapsed().as_secs_f64();
    judge::timeline::judge(plan, played, &events, settle, end)
}

/// Verifies a running lab again from everything its nodes have printed so far.
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
    let mut late = LateFollower::new(&dir);
    let verification = verify_aside(
        &state.judged_plan(),
        &state.floors,
        &observations,
        late.poll(),
    );
    let elapsed = state.nodes_started_at.map_or(0.0, |t| wall_now() - t);
    Ok(report(&dir, verification, elapsed).with_boxes(outcomes(&dir, &state.plan)))
}

/// The report of a lab as its state and files tell, with `verification`.
pub fn report(dir: &LabDir, verification: Verification, elapsed_secs: f64) -> Report {
    let state = &dir.state;
    Report::new(
        &state.judged_plan(),
        state.backend.unwrap_or(BackendKind::None),
        state.netem.clone(),
        state.backend_note.clone(),
        verification,
        elapsed_secs,
    )
    .with_emulator(emulator_totals(dir))
}

/// The plan of a lab that is up (as it was built: zero delay under the `none`
/// backend), or `None` when it is not up.
pub fn running_plan(root: &StateRoot, lab: &str) -> Result<Option<Plan>, LabError> {
    match root.open(lab) {
        Ok(dir) => Ok(dir.map(|dir| dir.state.plan)),
        Err(StateError::NotUp(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The status of every lab with state (or only `lab`).
pub fn status(root: &StateRoot, lab: Option<&str>) -> Result<Vec<LabStatus>, LabError> {
    let labs = match lab {
        Some(lab) => vec![lab.to_owned()],
        None => root.labs(),
    };
    let mut out = Vec::new();
    for name in labs {
        let blank = |phase: LabPhase| LabStatus {
            lab: name.clone(),
            phase,
            nodes_running: 0,
            nodes: 0,
            backend: None,
            source: PathBuf::new(),
            created_at: String::new(),
        };
        let opened = match root.open(&name) {
            Ok(opened) => opened,
            // Listing every lab, one that another `down` removes meanwhile is
            // simply gone, and one whose state cannot be read is shown as such:
            // neither may hide the others.
            Err(e) if lab.is_none() && vanished(&e) => continue,
            Err(StateError::Corrupt { .. } | StateError::Io { .. }) if lab.is_none() => {
                out.push(blank(LabPhase::Unreadable));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(dir) = opened else {
            out.push(blank(LabPhase::Interrupted));
            continue;
        };
        let s = &dir.state;
        let owner_alive = s.owner.as_ref().is_some_and(ProcessRecord::alive);
        let phase = match s.phase {
            Phase::Creating if owner_alive => LabPhase::Creating,
            Phase::Creating => LabPhase::Interrupted,
            Phase::Running => LabPhase::Running,
            Phase::Removing if owner_alive => LabPhase::Removing,
            Phase::Removing => LabPhase::Interrupted,
        };
        out.push(LabStatus {
            lab: name,
            phase,
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

/// Whether opening a lab failed because its state was removed meanwhile.
fn vanished(e: &StateError) -> bool {
    match e {
        StateError::NotUp(_) => true,
        StateError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
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
    let file = node_netns(&dir, &node.netns)?;
    let mut command = launch::command_in(file, argv, &node.env(plan, sdss))?;
    let status = command.status().map_err(|source| LaunchError::Spawn {
        program: argv.first().cloned().unwrap_or_default(),
        netns: node.netns.clone(),
        source,
    })?;
    Ok(status.code().unwrap_or(128))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state root in a fresh temporary directory, removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Root {
            let dir =
                std::env::temp_dir().join(format!("sdss-status-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Root(dir)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn listing_skips_a_lab_removed_meanwhile_and_shows_an_unreadable_one() {
        let root = Root::new("list");
        // A `down` in progress: the plan is gone, the record not yet.
        std::fs::create_dir(root.0.join("going")).unwrap();
        std::fs::write(root.0.join("going/state.json"), "{}").unwrap();
        std::fs::create_dir(root.0.join("broken")).unwrap();
        std::fs::write(root.0.join("broken/state.json"), "not json").unwrap();
        std::fs::write(root.0.join("broken/plan.json"), "not json").unwrap();
        std::fs::create_dir(root.0.join("early")).unwrap();
        let state = StateRoot::at(&root.0);
        let labs = status(&state, None).unwrap();
        let rows: Vec<(&str, &str)> = labs
            .iter()
            .map(|s| (s.lab.as_str(), s.phase.as_str()))
            .collect();
        assert_eq!(rows, [("broken", "unreadable"), ("early", "interrupted")]);
        // Asked by name, the cause is the answer.
        assert!(status(&state, Some("broken")).is_err());
        assert!(status(&state, Some("going")).is_err());
    }
}
