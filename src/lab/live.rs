//! A running lab changed and looked into on day two: `lab set` moves its
//! links live, through the delay backend's change path (the one a timeline's
//! `set` takes), and records the new plan for `watch`, `verify` and `graph`;
//! `lab status --nodes` reads each node's process and its own events.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use super::builder::delay::{self, change_links, LinkChange};
use super::builder::state::{Phase, ProcessRecord, StateError, StateRoot};
use super::builder::CONTROL_SOCKET;
use super::file::live::{parse_set, SetTarget};
use super::plan::backend::BackendKind;
use super::plan::live::{Moved, SetRefusal};
use super::plan::timeline::{change_of, Change};
use super::plan::Program;
use super::report::{NodeState, NodeStatus};
use super::scenario::stream::Observations;
use super::scenario::tail::Lines;
use super::LabError;
use crate::node::clock::wall_now;
use crate::node::event::NodeEvent;
use crate::protocol::NodeId;

/// What a live `set` did.
#[derive(Debug, Clone, Serialize)]
pub struct SetOutcome {
    /// The lab.
    pub lab: String,
    /// The change, in the timeline's words.
    pub change: String,
    /// The backend that made it.
    pub backend: BackendKind,
    /// How long the backend took to confirm.
    #[serde(with = "crate::units::serde_duration")]
    pub took: Duration,
    /// The pairs whose expectation moved.
    pub moved: Vec<Moved>,
}

/// Sets `target`'s links in running lab `lab` to `keys` (shape keys as
/// typed, checked as the file's `set` event is), records the new plan
/// first, then moves the links; the old plan is recorded again if the
/// backend fails. Live changes of one lab take turns.
///
/// The links move from the plan as recorded (its start, with earlier
/// `lab set`s): cuts and sets a timeline played are not kept.
pub fn set(
    root: &StateRoot,
    lab: &str,
    target: &SetTarget,
    keys: &[(String, String)],
) -> Result<SetOutcome, LabError> {
    let open = || -> Result<_, LabError> {
        Ok(root
            .open(lab)?
            .ok_or_else(|| StateError::NotUp(lab.to_owned()))?)
    };
    let _turn = open()?.lock_changes()?;
    // Read again under the lock: the last `set` is in it.
    let mut dir = open()?;
    let state = &dir.state;
    if let Some(owner) = state.owner.as_ref().filter(|o| other_alive(o)) {
        return Err(SetRefusal::Busy {
            lab: lab.to_owned(),
            pid: owner.pid,
        }
        .into());
    }
    if state.phase != Phase::Running {
        return Err(SetRefusal::NotRunning(lab.to_owned()).into());
    }
    if !state.plan.hosts.is_empty() || state.plan.segment.is_some() {
        return Err(SetRefusal::Hosts(lab.to_owned()).into());
    }
    let kind = match state.backend {
        Some(kind @ (BackendKind::Netem | BackendKind::Emulator)) => kind,
        _ => return Err(SetRefusal::NoBackend(lab.to_owned()).into()),
    };
    let nodes: Vec<&str> = state
        .plan
        .nodes
        .iter()
        .filter(|n| n.program != Program::Probe)
        .map(|n| n.name.as_str())
        .collect();
    let change = change_of(&parse_set(&nodes, target, keys)?);
    let before = state.plan.clone();
    let after = before.with_change(&change)?;
    if kind == BackendKind::Netem && !before.per_pair && matches!(change, Change::SetPair { .. }) {
        return Err(SetRefusal::NoPairClasses(lab.to_owned()).into());
    }
    let moved = after.moved_from(&before);
    dir.replace_plan(after.clone())?;
    let backend = delay::backend(kind, dir.emulator_file(CONTROL_SOCKET));
    let moving = LinkChange::Plans {
        before: &before,
        after: &after,
    };
    let took = match change_links(backend.as_ref(), &moving) {
        Ok(took) => took,
        Err(error) => {
            // The links stayed (or are as far as the backend got): the
            // record says what was asked before.
            let _ = dir.replace_plan(before);
            return Err(error.into());
        }
    };
    Ok(SetOutcome {
        lab: lab.to_owned(),
        change: change.describe(),
        backend: kind,
        took,
        moved,
    })
}

impl SetOutcome {
    /// What changed, for people: the change, then each moved pair.
    pub fn render(&self) -> String {
        let mut out = format!(
            "sdss lab {}: {} ({}, applied in {:.1} ms)\n",
            self.lab,
            self.change,
            self.backend,
            self.took.as_secs_f64() * 1000.0
        );
        if self.moved.is_empty() {
            out.push_str("no pair's expected delay changed\n");
        }
        for pair in &self.moved {
            out.push_str(&format!(
                "  {} -> {}: expected {} -> {}\n",
                pair.from,
                pair.to,
                crate::units::format_duration(pair.before),
                crate::units::format_duration(pair.after),
            ));
        }
        out
    }
}

/// Whether `record` is a process other than this one that still runs.
fn other_alive(record: &ProcessRecord) -> bool {
    record.alive() && record.pid != std::process::id() as i32
}

/// One row per node of running lab `lab` (the grading probe, no process,
/// aside): its process as recorded, and what its own events say, read in
/// bounded chunks however long its log.
pub fn nodes(root: &StateRoot, lab: &str) -> Result<Vec<NodeStatus>, LabError> {
    let dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let plan = &dir.state.plan;
    let now = wall_now();
    let mut rows = Vec::new();
    for node in plan.nodes.iter().filter(|n| n.program != Program::Probe) {
        let process = dir
            .state
            .processes
            .iter()
            .rev()
            .find(|p| p.node.as_deref() == Some(node.name.as_str()));
        let state = match process {
            Some(p) if p.alive() => NodeState::Running,
            Some(_) => NodeState::Exited,
            None => NodeState::NotStarted,
        };
        let told = if node.graded {
            Some(NodeLog::read(&dir.stdout_log(&node.name))?)
        } else {
            None
        };
        let name_of = |ip: std::net::IpAddr| {
            plan.nodes
                .iter()
                .find(|n| std::net::IpAddr::V4(n.address) == ip)
                .map_or_else(|| ip.to_string(), |n| n.name.clone())
        };
        let last = told.as_ref().and_then(|t| t.last);
        rows.push(NodeStatus {
            lab: lab.to_owned(),
            node: node.name.clone(),
            pid: process.map(|p| p.pid),
            address: node.address.to_string(),
            state,
            ended: (state == NodeState::Exited).then(|| {
                match told.as_ref().is_some_and(|t| t.stopped) {
                    true => "stopped".to_owned(),
                    false => "killed or crashed".to_owned(),
                }
            }),
            neighbours: told.as_ref().map(|t| t.neighbours.len()),
            last_peer: last.map(|(ip, _, _)| name_of(ip)),
            last_delay_ms: last.map(|(_, ms, _)| ms),
            last_age_s: last.and_then(|(_, _, at)| Some(now - at?)),
        });
    }
    Ok(rows)
}

/// What a node's events say of it, folded as they are read.
#[derive(Debug, Default)]
struct NodeLog {
    /// Peers in its table.
    neighbours: HashSet<NodeId>,
    /// Its last sample: the peer's address, the delay, when (Unix seconds).
    last: Option<(std::net::IpAddr, f64, Option<f64>)>,
    /// Whether its last lifetime ended with a clean stop.
    stopped: bool,
}

impl NodeLog {
    /// Reads `path` (missing: nothing said yet) a chunk at a time.
    fn read(path: &std::path::Path) -> Result<NodeLog, LabError> {
        let mut lines = Lines::new(path.to_owned());
        let mut log = NodeLog::default();
        loop {
            let chunk = lines.read().map_err(|source| LabError::Log {
                path: path.to_owned(),
                source,
            })?;
            if chunk.bytes == 0 {
                return Ok(log);
            }
            let seen = Observations::parse(&chunk.complete);
            for (event, at) in seen.events.iter().zip(&seen.times) {
                log.fold(event, *at);
            }
        }
    }

    fn fold(&mut self, event: &NodeEvent, at: Option<f64>) {
        match event {
            NodeEvent::Started { .. } => *self = NodeLog::default(),
            NodeEvent::Discovered { id, .. } => {
                self.neighbours.insert(id.clone());
            }
            NodeEvent::Neighbor(report) => {
                self.neighbours.insert(report.id.clone());
                if let Some(ms) = report.delay_ms {
                    self.last = Some((report.ip, ms, at));
                }
            }
            NodeEvent::Removed { id, .. } => {
                self.neighbours.remove(id);
            }
            NodeEvent::Stopped => self.stopped = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(lines: &[&str]) -> NodeLog {
        let mut log = NodeLog::default();
        let seen = Observations::parse(&lines.join("\n"));
        for (event, at) in seen.events.iter().zip(&seen.times) {
            log.fold(event, *at);
        }
        log
    }

    const NEIGHBOR: &str = r#"{"ts":"2026-12-04T20:00:02Z","event":"neighbor","id":"aaaaaaaa","ip":"198.18.5.2","port":1,"delay_ms":35.5,"rtt_ms":71.0,"offset_ms":0.0,"min_ms":35.5,"mean_ms":35.5,"jitter_ms":null,"samples":1,"successes":1,"failures":0,"dialect":"binary_be"}"#;

    #[test]
    fn a_nodes_events_give_its_neighbours_last_sample_and_how_it_ended() {
        let discovered = r#"{"ts":"2026-12-04T20:00:01Z","event":"discovered","id":"bbbbbbbb","ip":"198.18.5.3","port":2}"#;
        let removed = r#"{"ts":"2026-12-04T20:00:03Z","event":"removed","id":"bbbbbbbb","ip":"198.18.5.3","cause":"refused","reason":"gone"}"#;
        let log = events(&[discovered, NEIGHBOR, removed]);
        assert_eq!(log.neighbours.len(), 1);
        let (ip, ms, at) = log.last.unwrap();
        assert_eq!((ip.to_string().as_str(), ms), ("198.18.5.2", 35.5));
        assert!(at.is_some_and(|t| t > 1.7e9));
        assert!(!log.stopped);
        let stopped = events(&[
            NEIGHBOR,
            r#"{"ts":"2026-12-04T20:00:04Z","event":"stopped"}"#,
        ]);
        assert!(stopped.stopped);
        // A node started again forgets its last life.
        let started = r#"{"ts":"2026-12-04T20:00:05Z","event":"started","id":"cccccccc","tcp_port":1,"broadcast_port":2,"destinations":[],"interval_ms":250,"refresh_every":4}"#;
        let again = events(&[NEIGHBOR, r#"{"event":"stopped"}"#, started]);
        assert!(!again.stopped && again.neighbours.is_empty() && again.last.is_none());
    }
}
