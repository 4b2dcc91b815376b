//! This machine as a [`Site`]: the nodes a build started here, their links
//! through the build's delay backend, and the grading probe when one runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::grading::RunningProbe;
use super::late::{LateAnswers, LateFollower};
use super::site::{Finished, Site};
use crate::lab::builder::delay::{change_links, LinkChange};
use crate::lab::builder::sandbox::outcome::outcomes;
use crate::lab::builder::state::{LabDir, ProcessRecord};
use crate::lab::builder::{self, launch, Built};
use crate::lab::plan::timeline::Change;
use crate::lab::plan::Plan;
use crate::lab::LabError;

/// The lab (or a host's share of one) built on this machine.
pub struct Local {
    built: Built,
    probe: Option<RunningProbe>,
    late: LateFollower,
}

impl Local {
    /// The site of `built`.
    pub fn new(built: Built) -> Local {
        let late = LateFollower::new(&built.dir);
        Local {
            built,
            probe: None,
            late,
        }
    }

    /// The lab's state here.
    pub fn dir(&self) -> &LabDir {
        &self.built.dir
    }

    /// The lab as built here.
    pub fn built(&mut self) -> &mut Built {
        &mut self.built
    }

    /// Starts the lab's grading probe here, when its node is here: the site
    /// finishes it at the end of the run, or stops it when dropped before.
    pub fn start_probe(&mut self) -> Result<(), LabError> {
        let plan = &self.built.dir.state.plan;
        let here = plan
            .grading
            .as_ref()
            .is_some_and(|g| plan.node(&g.probe).is_some());
        if here && self.probe.is_none() {
            self.probe = Some(super::start_probe(&self.built)?);
        }
        Ok(())
    }

    /// Plays event `index` here, as [`Site::play`] says.
    fn play_now(&mut self, plan: &Plan, index: usize) -> Result<Option<Duration>, LabError> {
        let change = &plan.timeline.events[index].change;
        match change {
            change if change.is_link() => {
                let change = LinkChange::Phases {
                    plan,
                    before: &plan.timeline.phases[index],
                    after: &plan.timeline.phases[index + 1],
                };
                let took = tokio::task::block_in_place(|| {
                    change_links(self.built.delay.as_ref(), &change)
                })?;
                return Ok(Some(took));
            }
            Change::Kill { node } => self.signal(node, true),
            Change::Stop { node } => self.signal(node, false),
            Change::Start { node } => self.start(plan, node)?,
            Change::Restart { node } => {
                self.signal(node, false);
                self.start(plan, node)?;
            }
            Change::Probe { step } => match &self.probe {
                Some(probe) => probe
                    .step(*step)
                    .map_err(|e| LabError::Probe(e.to_string()))?,
                None => return Err(LabError::Probe("no grading probe runs".to_owned())),
            },
            _ => {}
        }
        Ok(None)
    }

    /// Stops a node: SIGKILL (`kill`, as a crash) or SIGTERM with a grace.
    fn signal(&mut self, name: &str, kill: bool) {
        let Some(child) = self.built.children.get_mut(name) else {
            return;
        };
        if kill {
            // Collecting it waits on the kernel: off the async worker.
            tokio::task::block_in_place(|| {
                let _ = child.kill();
                let _ = child.wait();
            });
            return;
        }
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

    /// Starts a node of the plan again, and follows its process.
    fn start(&mut self, plan: &Plan, name: &str) -> Result<(), LabError> {
        let built = &mut self.built;
        let child = builder::start_node(&mut built.dir, plan, name, &built.sdss)?;
        built.children.insert(name.to_owned(), child);
        Ok(())
    }
}

impl Site for Local {
    fn name(&self) -> String {
        "this machine".to_owned()
    }

    fn holds(&self, node: &str) -> bool {
        self.built.dir.state.plan.node(node).is_some()
    }

    fn stdout_log(&self, node: &str) -> PathBuf {
        self.built.dir.stdout_log(node)
    }

    async fn play(&mut self, plan: &Plan, index: usize) -> Result<Option<Duration>, String> {
        self.play_now(plan, index).map_err(|e| e.to_string())
    }

    fn stopped(&mut self, node: &str) -> Option<String> {
        let child = self.built.children.get_mut(node)?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited: {status}")),
            _ => None,
        }
    }

    fn late(&mut self) -> Option<&LateAnswers> {
        self.late.poll()
    }

    async fn finish(&mut self, plan: &Plan) -> Finished {
        // The probe ends by itself at the end of its run, or up to
        // GradeSettings::STUCK_OPEN later while a program waits on its silent
        // peer: the nodes are looked at once it has. Its thread is joined off
        // the async worker; this future dropped (the run cancelled), it stops.
        let probe = match self.probe.take() {
            Some(probe) => {
                let stopper = probe.stopper().drop_guard();
                let log = tokio::task::spawn_blocking(move || probe.finish())
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                stopper.disarm();
                Some(log.map_err(|e| e.to_string()))
            }
            None => None,
        };
        let mut finished = Finished {
            boxes: outcomes(&self.built.dir, plan),
            probe,
            ..Finished::default()
        };
        if finished.probe.is_none() {
            return finished;
        }
        for node in plan.nodes.iter().filter(|n| n.grade) {
            let Some(child) = self.built.children.get_mut(&node.name) else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                finished
                    .exited
                    .insert(node.name.clone(), format!("it exited: {status}"));
            }
            if let Some(line) = last_line(&self.built.dir.stderr_log(&node.name)) {
                finished.last_words.insert(node.name.clone(), line);
            }
            if let Some(b) = finished.boxes.iter().find(|b| b.node == node.name) {
                let hit = b.limits_hit.clone();
                finished.limits_hit.insert(node.name.clone(), hit);
            }
        }
        finished
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
