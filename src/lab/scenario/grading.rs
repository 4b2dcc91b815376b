//! The grading run's I/O around the pure checks: the probe's thread in its
//! namespace, the ephemeral port range of graded namespaces, and the assembly
//! of everything seen (probe log, sdss nodes' JSON streams, the lab's own
//! steps) into one [`Observed`] per graded node.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

use super::probe;
use super::probe_log::{FakePeer, ProbeLog, ProbeSpec};
use crate::lab::builder::netns::spawn_in;
use crate::lab::builder::sandbox::spec::LimitHit;
use crate::lab::plan::timeline::ProbeStep;
use crate::lab::plan::{Plan, Program};
use crate::lab::scenario::observe::{Datagram, Observed, Observer, Timeline};
use crate::node::event::{NodeEvent, StampedEvent};

/// The probe, running in its namespace on a thread of its own; dropped
/// unfinished (a cancelled run), it is told to stop.
pub struct RunningProbe {
    thread: Option<JoinHandle<io::Result<ProbeLog>>>,
    cancel: CancellationToken,
    steps: tokio::sync::mpsc::UnboundedSender<ProbeStep>,
}

impl RunningProbe {
    /// Starts the probe in the namespace `ns`; it stops by itself after
    /// `spec.duration` from `start` (Unix seconds), or up to
    /// `spec.stuck_open` later while a program waits on its silent peer.
    pub fn start(ns: &File, spec: ProbeSpec, start: f64) -> io::Result<RunningProbe> {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let (steps, receiver) = tokio::sync::mpsc::unbounded_channel();
        let thread = spawn_in(ns, "grading-probe", move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(probe::run(spec, start, receiver, token)))
        })?;
        Ok(RunningProbe {
            thread: Some(thread),
            cancel,
            steps,
        })
    }

    /// Plays a step of the grading timeline now.
    pub fn step(&self, step: ProbeStep) -> io::Result<()> {
        self.steps
            .send(step)
            .map_err(|_| io::Error::other("the grading probe has stopped"))
    }

    /// What stops it: cancelled, its thread ends at once.
    pub fn stopper(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for its end and returns what it saw.
    pub fn finish(mut self) -> io::Result<ProbeLog> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("the grading probe was finished"))?;
        thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the grading probe panicked")))
    }
}

impl Drop for RunningProbe {
    fn drop(&mut self) {
        // Its thread ends at once (not joined here: a drop may run on an
        // async worker).
        self.cancel.cancel();
    }
}

/// Reads an sdss node's `--json` stream with each event's time.
pub fn parse_stamped(text: &str) -> Vec<(f64, NodeEvent)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<StampedEvent>(l.trim()).ok())
        .map(|e| (e.ts.timestamp_micros() as f64 / 1e6, e.event))
        .collect()
}

/// What the lab itself did and saw, beside the probe.
#[derive(Debug, Clone, Default)]
pub struct LabSide {
    /// When the nodes were started, Unix seconds.
    pub started_at: f64,
    /// When the lab stopped watching.
    pub ended_at: f64,
    /// The sdss node killed, and when.
    pub killed: Option<(String, f64)>,
    /// Each sdss node's and observer's stamped events, by node name.
    pub events: HashMap<String, Vec<(f64, NodeEvent)>>,
    /// Graded nodes that exited before the end, and how.
    pub exited: HashMap<String, String>,
    /// The last line each graded node wrote on stderr.
    pub last_words: HashMap<String, String>,
    /// The limits each confined graded node hit.
    pub limits_hit: HashMap<String, Vec<LimitHit>>,
}

/// Name under which the probe's joining peer appears among the observers.
pub const JOINER: &str = "joiner";

/// One [`Observed`] per graded node, from the probe's log and the lab's side.
pub fn assemble(plan: &Plan, log: &ProbeLog, lab: &LabSide) -> Vec<Observed> {
    let Some(grading) = &plan.grading else {
        return Vec::new();
    };
    let mut all = Vec::new();
    for node in plan.nodes.iter().filter(|n| n.grade) {
        let me = node.address;
        let datagrams = log
            .heard
            .iter()
            .filter(|h| h.source == me)
            .map(|h| Datagram {
                at: h.at,
                destination: h.destination,
                payload: h.payload.clone(),
            })
            .collect();
        let mut observers = Vec::new();
        for other in plan
            .nodes
            .iter()
            .filter(|n| matches!(n.program, Program::Sdss { .. }) && n.name != node.name)
        {
            let events = lab.events.get(&other.name).map_or(&[][..], Vec::as_slice);
            let from_me = |ip: &IpAddr| *ip == IpAddr::V4(me);
            observers.push(Observer {
                name: other.name.clone(),
                started_at: events
                    .iter()
                    .find(|(_, e)| matches!(e, NodeEvent::Started { .. }))
                    .map(|(t, _)| *t),
                killed_at: lab
                    .killed
                    .as_ref()
                    .filter(|(n, _)| *n == other.name)
                    .map(|(_, t)| *t),
                broadcasts: log
                    .heard
                    .iter()
                    .filter(|h| h.source == other.address)
                    .map(|h| h.at)
                    .collect(),
                connections: events
                    .iter()
                    .filter(
                        |(_, e)| matches!(e, NodeEvent::Served { peer, .. } if from_me(&peer.ip())),
                    )
                    .map(|(t, _)| *t)
                    .collect(),
                heard_graded: events
                    .iter()
                    .filter(|(_, e)| matches!(e, NodeEvent::Heard { ip, .. } if from_me(ip)))
                    .count(),
            });
        }
        if let Some(joined) = log.joined_at {
            observers.push(Observer {
                name: JOINER.to_owned(),
                started_at: Some(joined),
                killed_at: None,
                broadcasts: log.joiner_broadcasts.clone(),
                connections: log
                    .accepted
                    .iter()
                    .filter(|(k, from, _)| *k == FakePeer::Joiner && *from == me)
                    .map(|(_, _, t)| *t)
                    .collect(),
                heard_graded: 0,
            });
        }
        let gone = log
            .gone
            .get(&node.name)
            .map(|t| format!("it exited at t={:.1}s", t - lab.started_at));
        let exited = gone
            .or_else(|| lab.exited.get(&node.name).cloned())
            .map(|how| match lab.last_words.get(&node.name) {
                Some(line) => format!("{how}; its last line on stderr: {line:?}"),
                None => how,
            });
        all.push(Observed {
            node: node.name.clone(),
            command: node.argv(plan, std::path::Path::new("sdss")),
            address: Some(me),
            port_range: grading.port_range,
            datagrams,
            observers,
            probes: log.probes.get(&node.name).cloned().unwrap_or_default(),
            listening: log.listening.get(&node.name).cloned().unwrap_or_default(),
            self_connections: log.self_connections.get(&node.name).map_or(0, |s| s.len()),
            silent_peer_connections: log
                .accepted
                .iter()
                .filter(|(k, from, _)| *k == FakePeer::Silent && *from == me)
                .map(|(_, _, t)| *t)
                .collect(),
            silent_peer_open: log
                .silent_open
                .iter()
                .filter(|(from, _)| *from == me)
                .map(|(_, t)| *t)
                .collect(),
            silent_peer_closed: log
                .silent_closed
                .iter()
                .filter(|(from, _, _)| *from == me)
                .map(|(_, opened, closed)| (*opened, *closed))
                .collect(),
            samples: log.samples.get(&node.name).cloned().unwrap_or_default(),
            exited,
            // A graded node runs confined unless the lab turned that off.
            confined: plan.sandbox.enabled.then_some(plan.sandbox.limits),
            limits_hit: lab.limits_hit.get(&node.name).cloned().unwrap_or_default(),
            timeline: Timeline {
                started_at: lab.started_at,
                // The probe watches on while a program waits on the silent peer.
                ended_at: log.ended_at.map_or(lab.ended_at, |e| e.max(lab.ended_at)),
                extended_by: log.extended_by,
                joined: log.joined_at.map(|t| (JOINER.to_owned(), t)),
                killed: lab.killed.clone(),
                silent_at: log.silent_at,
                burst_at: log.burst_at,
            },
        });
    }
    all
}
