//! What happens while a lab's nodes run: the timeline played over the sites
//! where they live ([`site`]), their output followed as it grows, the
//! grading probe and its steps.

pub mod calibrate;
mod fakes;
pub mod grading;
pub mod late;
pub mod link_probe;
pub mod local;
pub mod machine;
pub mod observe;
pub mod played;
pub mod probe;
pub mod probe_log;
pub mod site;
pub mod sites;
pub mod stream;
mod syn_watch;
pub mod tail;

#[cfg(test)]
mod site_tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::builder::sandbox::outcome::BoxOutcome;
use super::builder::{node_netns, Built};
use super::plan::timeline::describe_event;
use super::plan::timeline::Change;
use super::plan::Plan;
use super::plan::Program;
use super::LabError;
use crate::lab::progress::Progress;
use calibrate::Calibrated;
use grading::{parse_stamped, LabSide, RunningProbe};
use late::LateAnswers;
use played::Played;
use probe_log::{ProbeLog, ProbeSpec, Target};
use site::Site;
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
fn start_probe(built: &Built) -> Result<RunningProbe, LabError> {
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
        stuck_open: crate::lab::plan::GradeSettings::STUCK_OPEN,
        longest: grading.watched_for(),
        risky_from: grading.risky_from,
        seed: grading.seed,
    };
    let start = state.nodes_started_at.unwrap_or_else(wall_now);
    RunningProbe::start(&ns, spec, start).map_err(|e| LabError::Probe(e.to_string()))
}

/// What the scenario is played on: the lab's plan and its clock.
pub struct Scene<'a> {
    /// The lab's plan (the whole lab's, over every site).
    pub plan: &'a Plan,
    /// When the nodes were launched: the timeline's clock.
    pub launched: Instant,
    /// When they were, Unix seconds (the stamps in their output).
    pub started_at: f64,
    /// Where calibration left the output: the run goes on from there, and
    /// its time limit counts from the links' change.
    pub resume: Option<Calibrated>,
    /// The grading run's length, when a grading probe runs.
    pub graded_for: Option<Duration>,
}

/// Plays the plan's timeline over `sites` and follows the nodes until every
/// pair has its samples (or the time limit, or the grading run, is over);
/// returns what the nodes said, for the caller to judge.
pub async fn run<S: Site>(
    sites: &mut [S],
    scene: Scene<'_>,
    convergence: &dyn Convergence,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Run, LabError> {
    let Scene {
        plan,
        launched,
        started_at,
        resume,
        graded_for,
    } = scene;
    let since = resume.as_ref().map_or(launched, |c| c.switched_at);
    let (mut tails, mut observations) = match resume {
        Some(calibrated) => (calibrated.tails, calibrated.observations),
        None => (follow_graded(plan, sites), HashMap::new()),
    };
    let mut lab = LabSide {
        started_at,
        ..LabSide::default()
    };
    let mut played = Vec::new();
    let mut converged_since: Option<Instant> = None;
    // With a timeline, the delay table is judged on what came before its
    // first event; each phase is judged on its own (judge::timeline).
    let mut before_events: Option<HashMap<String, Observations>> = None;
    let timeline = &plan.timeline;
    let tail = plan.node_settings.interval * plan.node_settings.refresh_every * 2;
    let timeline_end = launched + timeline.length() + tail;
    let mut deadline = since + plan.verify.time_limit;
    if !timeline.is_empty() {
        deadline = deadline.max(timeline_end + Duration::from_secs(5));
    }
    if let Some(duration) = graded_for {
        // A graded lab is watched for exactly its grading run: the delay
        // report is cut there, pairs short of samples say so.
        deadline = launched + duration;
    }
    loop {
        while let Some(event) = timeline.events.get(played.len()) {
            if launched.elapsed() < event.at {
                break;
            }
            if before_events.is_none() && event.change.changes_expectations() {
                before_events = Some(observations.clone());
            }
            if let (Some(g), Some(_), Change::Kill { node }) =
                (&plan.grading, graded_for, &event.change)
            {
                if g.kill.as_ref() == Some(node) {
                    lab.killed = Some((node.clone(), wall_now()));
                }
            }
            let index = played.len();
            progress.line(&format!(
                "t={}: {}",
                crate::units::format_duration(event.at),
                describe_event(plan, index)
            ));
            played.push(play(sites, plan, index, launched).await);
        }
        read_tails(sites, &mut tails, &mut observations)?;
        let answers = sites.iter_mut().find_map(|s| s.late());
        let settle = if answers.is_some() {
            LATE_SETTLE
        } else {
            Duration::ZERO
        };
        let observed = before_events.as_ref().unwrap_or(&observations);
        let measured = convergence.measured(plan, observed, answers);
        progress.set(measured.complete as u64);
        if !timeline.is_empty() && (measured.converged || !played.is_empty()) {
            // The count is full or no longer what is waited for: say where the timeline is.
            progress.status(&timeline_status(plan, played.len(), launched.elapsed()));
        }
        let watched = graded_for.is_none_or(|d| launched.elapsed() >= d)
            && played.len() == timeline.events.len()
            && (timeline.is_empty() || Instant::now() >= timeline_end);
        // Once the first event came, the table's samples are what they are:
        // a pair short of them is judged so, not waited for to the limit.
        let judged = measured.converged || before_events.is_some();
        converged_since = (judged && watched).then(|| converged_since.unwrap_or_else(Instant::now));
        let settled = converged_since.is_some_and(|since| since.elapsed() >= settle);
        if settled || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(LabError::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    if graded_for.is_some() {
        lab.ended_at = wall_now();
    }
    let late = sites.iter_mut().find_map(|s| s.late()).cloned();
    let mut boxes = Vec::new();
    let mut probe = None;
    for site in sites.iter_mut() {
        // A graded run may go on there while a program waits on the silent peer.
        let finished = tokio::select! {
            _ = cancel.cancelled() => return Err(LabError::Cancelled),
            finished = site.finish(plan) => finished,
        };
        boxes.extend(finished.boxes);
        probe = probe.or(finished.probe);
        lab.exited.extend(finished.exited);
        lab.last_words.extend(finished.last_words);
        lab.limits_hit.extend(finished.limits_hit);
    }
    if graded_for.is_some() || !timeline.is_empty() {
        // Read once, for the checklist's observers and the timeline's judge.
        for node in plan
            .nodes
            .iter()
            .filter(|n| n.graded || matches!(n.program, Program::Sdss { .. }))
        {
            let Some(site) = sites.iter().find(|s| s.holds(&node.name)) else {
                continue;
            };
            let text = std::fs::read(site.stdout_log(&node.name)).unwrap_or_default();
            lab.events.insert(
                node.name.clone(),
                parse_stamped(&String::from_utf8_lossy(&text)),
            );
        }
    }
    let lost = sites
        .iter()
        .filter_map(|s| s.lost().map(|why| format!("{}: {why}", s.name())))
        .collect();
    Ok(Run {
        observed: before_events.unwrap_or(observations),
        late,
        elapsed_secs: launched.elapsed().as_secs_f64(),
        boxes,
        lab,
        played,
        lost,
        probe,
    })
}

/// Where a timeline is, `elapsed` after the nodes' launch with `played`
/// events played: its phase and what comes next, for the progress bar
/// (`phase 1 'cut b' — next: heal at 20s (in 7s)`).
fn timeline_status(plan: &Plan, played: usize, elapsed: Duration) -> String {
    let timeline = &plan.timeline;
    let named = |index: usize| {
        let event = &timeline.events[index];
        event
            .name
            .clone()
            .unwrap_or_else(|| event.change.describe())
    };
    let seconds = |d: Duration| format!("{}s", d.as_secs());
    let phase = match played.checked_sub(1) {
        Some(last) => format!("phase {played} '{}'", named(last)),
        None => "phase 0".to_owned(),
    };
    match timeline.events.get(played) {
        Some(next) => format!(
            "{phase} — next: {} at {} (in {})",
            named(played),
            crate::units::format_duration(next.at),
            seconds(next.at.saturating_sub(elapsed))
        ),
        None => {
            let end = timeline.length();
            format!(
                "{phase} — no event left: watching the expectations to {} (in {})",
                crate::units::format_duration(end),
                seconds(end.saturating_sub(elapsed))
            )
        }
    }
}

/// What a run of the scenario came to, for the caller to judge and report.
pub struct Run {
    /// What the nodes said that the delays are judged on: up to the first
    /// event that changes what is expected, or all of it.
    pub observed: HashMap<String, Observations>,
    /// The emulator's late answers, when it carries the lab.
    pub late: Option<LateAnswers>,
    /// From the nodes' launch to the end of the run.
    pub elapsed_secs: f64,
    /// How each program nobody here wrote ran.
    pub boxes: Vec<BoxOutcome>,
    /// What the lab itself did and saw, for the grading checklist.
    pub lab: LabSide,
    /// The timeline's events as played.
    pub played: Vec<Played>,
    /// Sites lost during the run, each with why.
    pub lost: Vec<String>,
    /// What the grading probe saw, when one ran, or why it failed.
    pub probe: Option<Result<ProbeLog, String>>,
}

/// Plays event `index` on every site with a share in it (the site of the
/// node whose process it acts on, or every site), at once; a site that does
/// not answer within its [`Site::play_wait`] is reported in the event's error.
async fn play<S: Site>(sites: &mut [S], plan: &Plan, index: usize, launched: Instant) -> Played {
    let change = &plan.timeline.events[index].change;
    let mut played = Played {
        event: index,
        what: describe_event(plan, index),
        at_s: launched.elapsed().as_secs_f64(),
        took_ms: None,
        error: None,
    };
    let several = sites.len() > 1;
    // A probe step is the probe node's site's to play.
    let probe = plan.grading.as_ref().map(|g| g.probe.as_str());
    let acted_on = match change {
        Change::Probe { .. } => probe,
        change => change.process_node(),
    };
    let results = join_all(
        sites
            .iter_mut()
            .filter(|site| acted_on.is_none_or(|node| site.holds(node)))
            .map(|site| async move {
                let (name, wait) = (site.name(), site.play_wait());
                let result = match tokio::time::timeout(wait, site.play(plan, index)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "no answer within {}",
                        crate::units::format_duration(wait)
                    )),
                };
                result.map_err(|e| if several { format!("{name}: {e}") } else { e })
            }),
    )
    .await;
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(took) => {
                if let Some(took) = took.map(crate::units::millis) {
                    played.took_ms = Some(played.took_ms.map_or(took, |t| t.max(took)));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        played.error = Some(errors.join("; "));
    }
    played
}

/// Follows the stdout of every graded node from its beginning, where its site keeps it.
fn follow_graded<S: Site>(plan: &Plan, sites: &[S]) -> HashMap<String, LogTail> {
    plan.nodes
        .iter()
        .filter(|n| n.graded)
        .filter_map(|n| {
            let site = sites.iter().find(|s| s.holds(&n.name))?;
            Some((n.name.clone(), LogTail::new(site.stdout_log(&n.name))))
        })
        .collect()
}

/// Reads what each node printed since the last read, and whether it stopped.
fn read_tails<S: Site>(
    sites: &mut [S],
    tails: &mut HashMap<String, LogTail>,
    observations: &mut HashMap<String, Observations>,
) -> Result<(), LabError> {
    for (name, tail) in tails {
        let seen = observations.entry(name.clone()).or_default();
        while tail.poll(seen)? > 0 {}
        if let Some(site) = sites.iter_mut().find(|s| s.holds(name)) {
            if let Some(why) = site.stopped(name) {
                seen.exited = Some(why);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn the_status_names_the_phase_and_the_next_event() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n\
             [[event]]\nat = \"10s\"\naction = \"cut\"\nnode = \"b\"\n\
             [[event]]\nname = \"heal\"\nat = \"20s\"\naction = \"heal\"\nnode = \"b\"\n\
             [[expect]]\nwhat = \"delay\"\nafter = \"heal\"\nwithin = \"5s\"\n",
        );
        let at = Duration::from_millis;
        assert_eq!(
            timeline_status(&plan, 0, at(6_500)),
            "phase 0 — next: cut b's link at 10s (in 3s)"
        );
        assert_eq!(
            timeline_status(&plan, 1, at(13_000)),
            "phase 1 'cut b's link' — next: heal at 20s (in 7s)"
        );
        assert_eq!(
            timeline_status(&plan, 2, at(21_000)),
            "phase 2 'heal' — no event left: watching the expectations to 25s (in 4s)"
        );
    }
}
