//! The life of a lab, composed from the pipeline's stages: `up` (plan ->
//! build -> scenario -> judge -> report), `verify` (judge again), `down`
//! (the build's exact inverse), `status`, `exec`.
//!
//! `up` is one pipeline over any [`Sites`]: this machine, or several hosts.
//! If anything fails or is cancelled (Ctrl-C) it takes every site's share
//! down, as `down` would; a site dropped in a panic takes its own down, so an
//! interrupted `up` leaves nothing.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::builder::launch::{self, LaunchError};
use super::builder::sandbox::outcome::outcomes;
use super::builder::state::{LabDir, Phase, ProcessRecord, StateError, StateRoot};
use super::builder::Stages;
use super::builder::{emulator_totals, node_netns, UpOptions};
use super::judge::delays::{series_kept, verify_aside, Verification};
use super::judge::links::LinkVerdicts;
use super::judge::timeline::{Stamped, TimelineVerdicts};
use super::judge::{self};
use super::plan::backend::{self, BackendKind};
use super::plan::{phase_zero, probing, Plan};
use super::report::{HostsReport, LabPhase, LabStatus, Report};
use super::scenario::grading::{assemble, LabSide};
use super::scenario::late::{LateAnswers, LateFollower};
use super::scenario::link_probe::{measure_lab, PairSelection, ProbeError};
use super::scenario::played::Played;
use super::scenario::sites::Sites;
use super::scenario::stream::Observations;
use super::scenario::{self, Convergence, Measured, Run, Scene};
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
}

/// Brings a lab up on its `sites` (this machine, or several hosts): the plan
/// as the backend will inject it, each site's share built, then (with
/// `verify`) the timeline played and the run judged. On any error or
/// cancellation every site's share is taken down; on success it stays up.
pub async fn up<S: Sites>(
    plan: Plan,
    sites: &mut S,
    options: &UpOptions,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<UpOutcome, S::Error> {
    let result = tokio::select! {
        result = up_and_judge(plan, sites, options, cancel, progress) => result,
        _ = cancel.cancelled() => Err(LabError::Cancelled.into()),
    };
    match result {
        Ok(outcome) => {
            sites.close().await;
            Ok(outcome)
        }
        Err(e) => {
            progress.line("taking the lab down");
            sites.teardown(progress).await;
            Err(e)
        }
    }
}

async fn up_and_judge<S: Sites>(
    plan: Plan,
    sites: &mut S,
    options: &UpOptions,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<UpOutcome, S::Error> {
    let started = Instant::now();
    if options.verify {
        probing::check(&plan, plan.expected.len()).map_err(LabError::from)?;
        phase_zero::check(&plan).map_err(LabError::from)?;
    }
    let (plan, note) = backend::as_injected(options.backend, plan);
    let launched = sites.build(plan, note, cancel, progress).await?;
    let build_time = started.elapsed();
    sites.ready(progress).await?;
    let report = if options.verify {
        let resume = sites.start(&Judged, cancel, progress).await?;
        let dir = sites.record().ok_or(LabError::NotBuilt)?;
        let plan = dir.state.judged_plan().into_owned();
        progress.step(
            "waiting for every pair to be measured",
            plan.expected.len() as u64,
        );
        let scene = Scene {
            plan: &plan,
            launched: launched.launched_at,
            started_at: dir.state.nodes_started_at.unwrap_or_else(wall_now),
            resume,
            graded_for: plan.grading.as_ref().map(|g| g.duration),
        };
        let ran = scenario::run(sites.sites(), scene, &Judged, cancel, progress).await?;
        let dir = sites.record().ok_or(LabError::NotBuilt)?;
        let mut report = judge_run(dir, &ran, launched.launched_at, progress)?;
        if plan.spans_hosts() {
            report = report.with_hosts(HostsReport::new(&plan, ran.lost.clone()));
        }
        if let Some(probing) = plan.verify.link {
            progress.line(&format!(
                "probing the links of {} pairs ({} packets/s for {:.1} s each)",
                plan.expected.len(),
                probing.rate,
                probing.duration.as_secs_f64()
            ));
            let records = sites.probe_links(&probing, cancel).await?;
            if cancel.is_cancelled() {
                return Err(LabError::Cancelled.into());
            }
            report.links = Some(judge::links::judge_lab(&plan, probing, &records));
        }
        Some(report)
    } else {
        None
    };
    Ok(UpOutcome {
        backend: launched.backend,
        report,
        build_time,
        stages: launched.stages,
        converge_time: launched.launched_at.elapsed(),
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
        let events = relative_events(plan, &ran.lab);
        report.timeline = Some(judge_timeline(plan, &ran.played, &events, launched));
        // The plotted pairs follow the whole timeline, not the first phase alone.
        let keep = series_kept(plan.expected.len());
        for pair in report.pairs.iter_mut().filter(|p| !p.series.is_empty()) {
            pair.series = judge::timeline::series(plan, &events, &pair.from, &pair.to, keep);
        }
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

/// Every graded node's stamped events (read by the scenario), in seconds
/// after the nodes started.
fn relative_events(plan: &Plan, lab: &LabSide) -> Stamped {
    plan.nodes
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
        .collect()
}

/// Judges the timeline from every observer's stamped events.
fn judge_timeline(
    plan: &Plan,
    played: &[Played],
    events: &Stamped,
    launched: Instant,
) -> TimelineVerdicts {
    let settle = (plan.node_settings.interval * plan.node_settings.refresh_every).as_secs_f64();
    let end = launched.elapsed().as_secs_f64();
    judge::timeline::judge(plan, played, events, settle, end)
}

/// What `lab probe` asks beyond the lab's own `[verify] link`.
#[derive(Debug, Clone, Default)]
pub struct ProbeAsked {
    /// Packets per second of each pair.
    pub rate: Option<u32>,
    /// How long each pair sends.
    pub duration: Option<Duration>,
    /// Which pairs.
    pub pairs: PairSelection,
}

/// Probes the links of the running lab `lab` (its own `[verify] link`, or
/// the defaults, as `asked` changes them) and judges each pair's against
/// what the lab asked of it.
pub fn probe(
    root: &StateRoot,
    lab: &str,
    asked: &ProbeAsked,
    cancel: &CancellationToken,
) -> Result<LinkVerdicts, LabError> {
    let dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let mut plan = dir.state.judged_plan().into_owned();
    let mut probing = plan.verify.link.unwrap_or_default();
    probing.rate = asked.rate.unwrap_or(probing.rate);
    probing.duration = asked.duration.unwrap_or(probing.duration);
    plan.verify.link = Some(probing);
    let selected = plan
        .expected
        .iter()
        .filter(|p| asked.pairs.holds(&p.from, &p.to))
        .count();
    for node in [&asked.pairs.from, &asked.pairs.to].into_iter().flatten() {
        if plan.node(node).is_none() {
            return Err(no_node(lab, node, &plan));
        }
    }
    probing::check(&plan, selected)?;
    let records = measure_lab(&dir, &probing, &asked.pairs, cancel)?;
    if cancel.is_cancelled() {
        return Err(ProbeError::Interrupted.into());
    }
    Ok(judge::links::judge_lab(&plan, probing, &records))
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
    let verification = match state.nodes_started_at {
        Some(started_at) => verification.since(started_at),
        None => verification,
    };
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
        .ok_or_else(|| no_node(lab, node, &dir.state.plan))?;
    Ok((dir, index))
}

/// Lab `lab` has no node `node`: the error names the nodes it has.
fn no_node(lab: &str, node: &str, plan: &Plan) -> LabError {
    LabError::NoNode {
        lab: lab.to_owned(),
        node: node.to_owned(),
        known: plan
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
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
    // A command killed by a signal ends as a shell's would: 128 + its number.
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
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

/// `up`'s pipeline against fake sites: what it asks of them, in which order,
/// and how each way of ending leaves the lab.
#[cfg(test)]
mod pipeline_tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::lab::file::backend::BackendChoice;
    use crate::lab::plan::LinkProbing;
    use crate::lab::progress::Silent;
    use crate::lab::scenario::calibrate::Calibrated;
    use crate::lab::scenario::link_probe::record::PairRecord;
    use crate::lab::scenario::{site::Site, sites::Launched};

    /// A site with nothing to play.
    struct Nowhere;

    impl Site for Nowhere {
        fn name(&self) -> String {
            "nowhere".to_owned()
        }
        fn holds(&self, _node: &str) -> bool {
            false
        }
        fn stdout_log(&self, _node: &str) -> PathBuf {
            PathBuf::new()
        }
        async fn play(&mut self, _plan: &Plan, _index: usize) -> Result<Option<Duration>, String> {
            Ok(None)
        }
        fn stopped(&mut self, _node: &str) -> Option<String> {
            None
        }
    }

    /// Where a fake's build ends.
    #[derive(Clone, Copy)]
    enum Ends {
        Built,
        Fails,
        Hangs,
        NotReady,
    }

    /// Sites that record what `up` asks of them.
    struct Fake {
        ends: Ends,
        asked: Arc<Mutex<Vec<&'static str>>>,
        none: Vec<Nowhere>,
    }

    impl Fake {
        fn ask(&self, what: &'static str) {
            self.asked.lock().unwrap().push(what);
        }
    }

    impl Sites for Fake {
        type Site = Nowhere;
        type Error = LabError;

        async fn build(
            &mut self,
            plan: Plan,
            note: Option<String>,
            _cancel: &CancellationToken,
            _progress: &dyn Progress,
        ) -> Result<Launched, LabError> {
            self.ask("build");
            // `none` asked: the plan comes zero-delayed, and says so.
            assert!(plan.is_unimpaired());
            assert!(note.is_some());
            match self.ends {
                Ends::Fails => Err(LabError::NotBuilt),
                Ends::Hangs => std::future::pending().await,
                Ends::Built | Ends::NotReady => Ok(Launched {
                    backend: BackendKind::None,
                    stages: Stages::default(),
                    launched_at: Instant::now(),
                }),
            }
        }

        async fn ready(&mut self, _progress: &dyn Progress) -> Result<(), LabError> {
            self.ask("ready");
            match self.ends {
                Ends::NotReady => Err(LabError::NotBuilt),
                _ => Ok(()),
            }
        }

        async fn start(
            &mut self,
            _convergence: &dyn Convergence,
            _cancel: &CancellationToken,
            _progress: &dyn Progress,
        ) -> Result<Option<Calibrated>, LabError> {
            self.ask("start");
            Ok(None)
        }

        async fn probe_links(
            &mut self,
            _probing: &LinkProbing,
            _cancel: &CancellationToken,
        ) -> Result<Vec<PairRecord>, LabError> {
            self.ask("probe links");
            Ok(Vec::new())
        }

        fn record(&self) -> Option<&LabDir> {
            None
        }

        fn sites(&mut self) -> &mut [Nowhere] {
            &mut self.none
        }

        async fn close(&mut self) {
            self.ask("close");
        }

        async fn teardown(&mut self, _progress: &dyn Progress) {
            self.ask("teardown");
        }
    }

    /// What `up` asked of sites that end as `ends`, and whether it succeeded.
    async fn up_with(ends: Ends, cancel: &CancellationToken) -> (Vec<&'static str>, bool) {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"5ms\"\n[[node]]\nname = \"b\"\n",
        );
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut sites = Fake {
            ends,
            asked: asked.clone(),
            none: Vec::new(),
        };
        let options = UpOptions {
            backend: BackendChoice::None,
            sdss: PathBuf::from("sdss"),
            verify: false,
            injected: None,
        };
        let result = up(plan, &mut sites, &options, cancel, &Silent).await;
        let asked = asked.lock().unwrap().clone();
        (asked, result.is_ok())
    }

    #[tokio::test]
    async fn a_lab_that_comes_up_is_built_readied_and_left_up() {
        let (asked, ok) = up_with(Ends::Built, &CancellationToken::new()).await;
        assert!(ok);
        assert_eq!(asked, ["build", "ready", "close"]);
    }

    #[tokio::test]
    async fn a_build_that_fails_is_taken_down_and_never_readied() {
        let (asked, ok) = up_with(Ends::Fails, &CancellationToken::new()).await;
        assert!(!ok);
        assert_eq!(asked, ["build", "teardown"]);
    }

    #[tokio::test]
    async fn sites_that_fail_to_get_ready_are_taken_down() {
        let (asked, ok) = up_with(Ends::NotReady, &CancellationToken::new()).await;
        assert!(!ok);
        assert_eq!(asked, ["build", "ready", "teardown"]);
    }

    #[tokio::test]
    async fn a_cancelled_build_is_taken_down() {
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later.cancel();
        });
        let (asked, ok) = up_with(Ends::Hangs, &cancel).await;
        assert!(!ok);
        assert_eq!(asked, ["build", "teardown"]);
    }
}
