//! What happens while a lab's nodes run: their output followed as it grows,
//! the grading probe and its timeline, nodes killed on schedule.

pub mod grading;
pub mod probe;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::node::clock::wall_now;

use super::build::delay::BackendKind;
use super::build::state::ProcessRecord;
use super::build::{emulator_totals, launch, Built};
use super::judge::delays::{grade, Grades, Observations};
use super::plan::Program;
use super::report::progress::Progress;
use super::report::Report;
use super::LabError;
use grading::{parse_stamped, LabSide, RunningProbe};
use probe::{ProbeSpec, Target};

/// How often `up` reads the nodes' output while waiting for convergence.
const POLL: Duration = Duration::from_millis(250);

/// Starts the grading probe for the lab's graded nodes.
pub fn start_probe(built: &Built, ns: &File) -> Result<RunningProbe, LabError> {
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

/// Watches the nodes until every pair has its samples (or the time limit, or
/// the grading run, is over), killing on schedule; returns the report of the
/// delays and what the lab side saw for the grading checklist.
pub async fn watch(
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
        // Waiting for it to exit blocks: off the async worker while it does.
        tokio::task::block_in_place(|| {
            launch::stop(&[pid], Duration::from_secs(1), |_| {
                record.as_ref().is_some_and(ProcessRecord::alive)
            })
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
