//! What the grading probe is told (its spec, its targets) and what it saw (its
//! log): shared by the probe and the fake peers it plays, so neither imports
//! the other.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::lab::scenario::observe::{Destination, Probe, ProcessSample};

/// Most connections the silent peer holds open at once.
pub(super) const SILENT_HOLD: usize = 64;

/// A graded node, as the probe knows it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the lab.
    pub name: String,
    /// Its address on the lab link.
    pub address: Ipv4Addr,
    /// Its process (a process group's leader: its children share its group).
    pub pid: i32,
}

/// What the probe is told to do.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// The announcement port.
    pub broadcast_port: u16,
    /// The lab subnet's directed broadcast address.
    pub directed: Ipv4Addr,
    /// The probe's own address (its datagrams are not recorded).
    pub own: Ipv4Addr,
    /// The graded nodes.
    pub targets: Vec<Target>,
    /// How long to run.
    pub duration: Duration,
    /// How long a connection to the silent peer still open at the end is
    /// watched from its opening, to tell whether its client gives up on it.
    pub stuck_open: Duration,
    /// The most the run may last, extended so ([`GradeSettings::watched_for`]).
    ///
    /// [`GradeSettings::watched_for`]: crate::lab::plan::GradeSettings::watched_for
    pub longest: Duration,
    /// From when the probes that may kill a fragile server are made: after
    /// every step of the scenario, so that none is judged on a server the lab
    /// itself broke.
    pub risky_from: Duration,
    /// The scenario's seed: the fake peers' IDs come from it.
    pub seed: u32,
}

/// One datagram heard on the lab link.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Heard {
    /// Arrival, Unix seconds.
    pub at: f64,
    /// Sender.
    pub source: Ipv4Addr,
    /// Where it was sent.
    pub destination: Destination,
    /// Its bytes (at most 600), a graded node's; none of another's.
    #[serde(with = "hex")]
    pub payload: Vec<u8>,
}

/// Bytes as hex text: a probe log crosses the hosts' wire as JSON, where a
/// list of numbers takes twice the room.
mod hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("hex text of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not hex"))
            })
            .collect()
    }
}

/// Which of the probe's peers a connection reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FakePeer {
    /// The peer that joins late and answers correctly.
    Joiner,
    /// The peer that accepts and never answers.
    Silent,
}

/// What the probe saw.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ProbeLog {
    /// Every datagram heard, except the probe's own.
    pub heard: Vec<Heard>,
    /// Connections to graded servers, by target name.
    pub probes: HashMap<String, Vec<Probe>>,
    /// Connections accepted by the probe's peers: which peer, from where, when.
    pub accepted: Vec<(FakePeer, Ipv4Addr, f64)>,
    /// The silent peer's connections open at its last look (by whom, since
    /// when); once it stopped, those still open at the end: their clients
    /// were still waiting on it.
    #[serde(default)]
    pub silent_open: Vec<(Ipv4Addr, f64)>,
    /// The silent peer's connections their clients closed (by whom, since
    /// when, when it saw them closed): they gave up on it.
    #[serde(default)]
    pub silent_closed: Vec<(Ipv4Addr, f64, f64)>,
    /// When the probe stopped watching.
    #[serde(default)]
    pub ended_at: Option<f64>,
    /// How long past the run's duration it watched, to tell whether a program
    /// waiting on the silent peer at the end gives up on it.
    #[serde(default)]
    pub extended_by: Option<f64>,
    /// When the joining peer announced itself.
    pub joiner_broadcasts: Vec<f64>,
    /// Readings of each target's processes.
    pub samples: HashMap<String, Vec<ProcessSample>>,
    /// Ports each target was seen listening on.
    pub listening: HashMap<String, BTreeSet<u16>>,
    /// Client ports of connections a target made to its own server.
    pub self_connections: HashMap<String, BTreeSet<u16>>,
    /// When a target's process was found gone (or a zombie).
    pub gone: HashMap<String, f64>,
    /// When each step was played.
    pub silent_at: Option<f64>,
    /// When the joining peer started.
    pub joined_at: Option<f64>,
    /// When the burst was sent.
    pub burst_at: Option<f64>,
    /// What went wrong in the probe itself.
    pub errors: Vec<String>,
}

/// Wall clock, Unix seconds: the protocol's clock, which the grader compares
/// with the timestamps it decodes.
pub use crate::node::clock::wall_now as now;

pub(super) type Shared = Arc<Mutex<ProbeLog>>;

pub(super) fn lock(log: &Shared) -> MutexGuard<'_, ProbeLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_log_crosses_the_wire_whole_with_its_payloads_as_hex() {
        let mut log = ProbeLog::default();
        log.heard.push(Heard {
            at: 1.5,
            source: Ipv4Addr::new(10, 0, 0, 2),
            destination: Destination::Limited,
            payload: vec![0, 255, 10, b'A'],
        });
        log.errors.push("one".to_owned());
        let json = serde_json::to_string(&log).unwrap();
        assert!(json.contains("\"payload\":\"00ff0a41\""), "{json}");
        let back: ProbeLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, log);
        let odd = json.replace("00ff0a41", "00ff0a4");
        assert!(serde_json::from_str::<ProbeLog>(&odd).is_err());
    }
}
