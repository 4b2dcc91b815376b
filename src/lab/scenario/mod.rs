//! What happens while a lab's nodes run: their output followed as it grows,
//! the grading probe and its timeline, nodes killed on schedule.

pub mod calibrate;
mod fakes;
pub mod grading;
pub mod late;
pub mod observe;
pub mod played;
pub mod probe;
pub mod probe_log;
pub mod stream;
pub mod tail;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::builder::delay::{change_links, LinkChange};
use super::builder::sandbox::outcome::{outcomes, BoxOutcome};
use super::builder::state::ProcessRecord;
use super::builder::{launch, node_netns, Built};
use super::plan::timeline::describe_event;
use super::plan::timeline::Change;
use super::plan::Plan;
use super::plan::Program;
use super::LabError;
use crate::lab::progress::Progress;
use calibrate::Calibrated;
use grading::{parse_stamped, LabSide, RunningProbe};
use late::{LateAnswers, LateFollower};
use played::Played;
use probe_log::{ProbeSpec, Target};
use stream::Observations;
use tail::LogTail;

/// How often `up` reads the nodes' output while waiting for convergence.
const POLL: Duration = Duration::from_millis(250);

/// How long convergence must hold before it counts when the emulator's late
/// deliveries are followed: the emulator appends them every second, so a sample
/// printed just before may have its late answer logged only this much later.
const LATE_SETTLE: Duration = Duration::from_millis(1500);

/// How far the nodes' output has come, as the caller judges it: the scenario
/// asks while it waits, and does not import the judge, which comes after it.
pub trait Convergence: Sync {
    /// From what the nodes said so far (`late`: the emulator's late answers,
    /// whose samples are set aside), which pairs have their samples.
    fn measured(
        &self,
        plan: &Plan,
        observed: &HashMap<String, Observations>,
        late: Option<&LateAnswers>,
    ) -> Measured;

    /// Each expected pair's floor, in the plan's order: what it measured
    /// beyond its delay, for a pair with all its samples (calibration).
    fn floors(
        &self,
        plan: &Plan,
        observed: &HashMap<String, Observations>,
    ) -> Vec<Option<Duration>>;
}

/// How far the nodes' output has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Pairs that have all their samples.
    pub complete: usize,
    /// Whether every pair that can be measured has them.
    pub converged: bool,
}

/// Starts the grading probe for the lab's graded nodes.
pub fn start_probe(built: &Built) -> Result<RunningProbe, LabError> {
    let state = &built.dir.state;
    let plan = &state.plan;
    let grading = plan
        .grading
        .as_ref()
        .ok_or_else(|| LabError::Probe("no grading settings".to_owned()))?;
    let probe = plan
        .node(&grading.probe)
        .ok_or_else(|| LabError::Probe("no probe node".to_owned()))?;
    let (own, ns) = (probe.address, node_netns(&built.dir, &probe.netns)?);
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
        risky_from: grading.risky_from,
    };
    let start = state.nodes_started_at.unwrap_or_else(wall_now);
    RunningProbe::start(&ns, spec, start).map_err(|e| LabError::Probe(e.to_string()))
}

/// Watches the nodes until every pair has its samples (or the time limit, or
/// the grading run, is over), killing on schedule; returns the report of the
/// delays and what the lab side saw for the grading checklist.
///
/// After calibration, it goes on reading where calibration stopped, and its
/// time limit counts from the links' change.
pub async fn watch(
    built: &mut Built,
    convergence: &dyn Convergence,
    cancel: &CancellationToken,
    progress: &dyn Progress,
    probe: Option<&RunningProbe>,
    calibrated: Option<Calibrated>,
) -> Result<Watched, LabError> {
    let plan = built.dir.state.plan.clone();
    let since = calibrated
        .as_ref()
        .map_or(built.launched_at, |c| c.switched_at);
    let (mut tails, mut observations) = match calibrated {
        Some(calibrated) => (calibrated.tails, calibrated.observations),
        None => {
            let tails = follow_graded(built);
            let observations = tails
                .keys()
                .map(|name| (name.clone(), Observations::default()))
                .collect();
            (tails, observations)
        }
    };
    let grading = plan.grading.as_ref().filter(|_| probe.is_some());
    let mut deadline = since + plan.verify.time_limit;
    let mut lab = LabSide {
        started_at: built.dir.state.nodes_started_at.unwrap_or_else(wall_now),
        ..LabSide::default()
    };
    let mut played = Vec::new();
    let mut late = LateFollower::new(&built.dir);
    let mut converged_since: Option<Instant> = None;
    // With a timeline, the delay table is judged on what came before its
    // first event; each phase is judged on its own (judge::timeline).
    let mut before_events: Option<HashMap<String, Observations>> = None;
    let timeline = &plan.timeline;
    let tail = plan.node_settings.interval * plan.node_settings.refresh_every * 2;
    let timeline_end = built.launched_at + timeline.length() + tail;
    if !timeline.is_empty() {
        deadline = deadline.max(timeline_end + Duration::from_secs(5));
    }
    if let Some(g) = grading {
        // A graded lab is watched for exactly its grading run: the delay
        // report is cut there, pairs short of samples say so.
        deadline = built.launched_at + g.duration;
    }
    loop {
        while let Some(event) = timeline.events.get(played.len()) {
            if built.launched_at.elapsed() < event.at {
                break;
            }
            if before_events.is_none() && event.change.changes_expectations() {
                before_events = Some(observations.clone());
            }
            if let (Some(g), Change::Kill { node }) = (grading, &event.change) {
                if g.kill.as_ref() == Some(node) {
                    lab.killed = Some((node.clone(), wall_now()));
                }
            }
            let index = played.len();
            progress.line(&format!(
                "t={}: {}",
                crate::units::format_duration(event.at),
                describe_event(&plan, index)
            ));
            played.push(play(built, &plan, index, probe).await);
        }
        read_tails(built, &mut tails, &mut observations)?;
        let answers = late.poll();
        let settle = if answers.is_some() {
            LATE_SETTLE
        } else {
            Duration::ZERO
        };
        let observed = before_events.as_ref().unwrap_or(&observations);
        let measured = convergence.measured(&plan, observed, answers);
        progress.set(measured.complete as u64);
        let watched = grading.is_none_or(|g| built.launched_at.elapsed() >= g.duration)
            && played.len() == timeline.events.len()
            && (timeline.expects.is_empty() || Instant::now() >= timeline_end);
        converged_since =
            (measured.converged && watched).then(|| converged_since.unwrap_or_else(Instant::now));
        let settled = converged_since.is_some_and(|since| since.elapsed() >= settle);
        if settled || Instant::now() >= deadline {
            let boxes = outcomes(&built.dir, &plan);
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
                        if let Some(b) = boxes.iter().find(|b| b.node == node.name) {
                            lab.limits_hit
                                .insert(node.name.clone(), b.limits_hit.clone());
                        }
                    }
                }
            }
            if grading.is_some() || !timeline.is_empty() {
                // Read once, for the checklist's observers and the timeline's judge.
                for node in plan
                    .nodes
                    .iter()
                    .filter(|n| n.graded || matches!(n.program, Program::Sdss { .. }))
                {
                    let text = std::fs::read(built.dir.stdout_log(&node.name)).unwrap_or_default();
                    lab.events.insert(
                        node.name.clone(),
                        parse_stamped(&String::from_utf8_lossy(&text)),
                    );
                }
            }
            return Ok(Watched {
                observed: before_events.unwrap_or(observations),
                late: late.into_answers(),
                elapsed_secs: built.launched_at.elapsed().as_secs_f64(),
                boxes,
                lab,
                played,
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(LabError::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// What watching a lab came to, for the caller to judge and report.
pub struct Watched {
    /// What the nodes said that the delays are judged on: up to the first
    /// event that changes what is expected, or all of it.
    pub observed: HashMap<String, Observations>,
    /// The emulator's late answers, when it carries the lab.
    pub late: Option<LateAnswers>,
    /// From the nodes' launch to the end of the watch.
    pub elapsed_secs: f64,
    /// How each program nobody here wrote ran.
    pub boxes: Vec<BoxOutcome>,
    /// What the lab itself did and saw, for the grading checklist.
    pub lab: LabSide,
    /// The timeline's events as played.
    pub played: Vec<Played>,
}

/// Follows the stdout of every graded node from its beginning.
fn follow_graded(built: &Built) -> HashMap<String, LogTail> {
    let plan = &built.dir.state.plan;
    plan.nodes
        .iter()
        .filter(|n| n.graded)
        .map(|n| (n.name.clone(), LogTail::new(built.dir.stdout_log(&n.name))))
        .collect()
}

/// Reads what each node printed since the last read, and whether it exited.
fn read_tails(
    built: &mut Built,
    tails: &mut HashMap<String, LogTail>,
    observations: &mut HashMap<String, Observations>,
) -> Result<(), LabError> {
    for (name, tail) in tails {
        let seen = observations.entry(name.clone()).or_default();
        while tail.poll(seen)? > 0 {}
        if let Some(child) = built.children.get_mut(name) {
            if let Ok(Some(status)) = child.try_wait() {
                seen.exited = Some(format!("exited: {status}"));
            }
        }
    }
    Ok(())
}

/// Plays event `index` of the plan's timeline on the running lab.
async fn play(
    built: &mut Built,
    plan: &Plan,
    index: usize,
    probe: Option<&RunningProbe>,
) -> Played {
    let event = &plan.timeline.events[index];
    let at_s = built.launched_at.elapsed().as_secs_f64();
    let mut played = Played {
        event: index,
        what: describe_event(plan, index),
        at_s,
        took_ms: None,
        error: None,
    };
    let result: Result<(), LabError> = match &event.change {
        change if change.is_link() => {
            let (before, after) = (
                &plan.timeline.phases[index],
                &plan.timeline.phases[index + 1],
            );
            let change = LinkChange::Phases {
                plan,
                before,
                after,
            };
            tokio::task::block_in_place(|| change_links(built.delay.as_ref(), &change))
                .map(|took| played.took_ms = Some(took.as_secs_f64() * 1e3))
                .map_err(LabError::from)
        }
        Change::Kill { node } => {
            signal_node(built, node, true);
            Ok(())
        }
        Change::Stop { node } => {
            signal_node(built, node, false);
            Ok(())
        }
        Change::Start { node } => start_node(built, plan, node),
        Change::Restart { node } => {
            signal_node(built, node, false);
            start_node(built, plan, node)
        }
        Change::Probe { step } => match probe {
            Some(probe) => probe
                .step(*step)
                .map_err(|e| LabError::Probe(e.to_string())),
            None => Err(LabError::Probe("no grading probe runs".to_owned())),
        },
        _ => Ok(()),
    };
    if let Err(error) = result {
        played.error = Some(error.to_string());
    }
    played
}

/// Stops a node: SIGKILL (`kill`, as a crash) or SIGTERM with a grace.
fn signal_node(built: &mut Built, name: &str, kill: bool) {
    if kill {
        if let Some(child) = built.children.get_mut(name) {
            // Collecting it waits on the kernel: off the async worker.
            tokio::task::block_in_place(|| {
                let _ = child.kill();
                let _ = child.wait();
            });
        }
    } else {
        kill_node(built, name);
    }
}

/// Starts a node of the plan again, and follows its process.
fn start_node(built: &mut Built, plan: &Plan, name: &str) -> Result<(), LabError> {
    let child = super::builder::start_node(&mut built.dir, plan, name, &built.sdss)?;
    built.children.insert(name.to_owned(), child);
    Ok(())
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
        // Waiting for it to exit blocks: off the async worker while it does.
        tokio::task::block_in_place(|| {
            launch::stop(&[pid], launch::EVENT_STOP_GRACE, |_| {
                record.as_ref().is_some_and(ProcessRecord::alive)
            })
        });
        let _ = child.try_wait();
    }
}
