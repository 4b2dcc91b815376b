//! What the lab saw of a graded node during its scenario: plain data, each
//! item stamped with the wall-clock time (Unix seconds) it was seen at.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::lab::builder::sandbox::spec::LimitHit;
use crate::lab::plan::sandbox::Limits;
use crate::protocol::Dialect;

/// Which destination a datagram was sent to, as told by the lab's listener
/// (one socket bound to each broadcast address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Destination {
    /// `255.255.255.255`: heard by peers bound to it and by peers bound to `0.0.0.0`.
    Limited,
    /// The lab subnet's directed broadcast: not heard by peers bound to `255.255.255.255`.
    Directed,
}

/// One datagram from the graded node, heard by the lab's listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    /// When it arrived.
    pub at: f64,
    /// Where it was sent.
    pub destination: Destination,
    /// Its bytes (at most 600 kept).
    pub payload: Vec<u8>,
}

/// How the lab behaved on one connection to a graded server. The judging
/// kind comes first in every run; the others may kill a fragile server, so
/// they come only after everything else has been judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeKind {
    /// Listens first; if the server stays mute for [`LISTEN_BEFORE_SPEAKING`],
    /// writes its time as text (as sdss does), then reads the answer.
    Listen,
    /// Writes nothing, and closes after the wait: a client that gives up.
    CloseMute,
    /// Writes its time as `!d` at once, as clients that speak first in the
    /// assignment's encoding do.
    Binary,
}

/// How long a `Listen` probe waits for a server before it speaks.
pub const LISTEN_BEFORE_SPEAKING: f64 = 1.0;

/// One connection the lab made to the graded node's timestamp server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    /// When the connection was attempted.
    pub at: f64,
    /// The port tried.
    pub port: u16,
    /// How the lab behaved.
    pub kind: ProbeKind,
    /// When the lab wrote its time, and in which dialect, if it did.
    pub spoke: Option<(f64, Dialect)>,
    /// `None` when connected; otherwise why not (`refused`, `timeout`, ...).
    pub connect_error: Option<String>,
    /// What the server sent (at most 64 bytes kept).
    pub bytes: Vec<u8>,
    /// When its first bytes arrived.
    pub answered_at: Option<f64>,
    /// Whether the server closed the connection before the lab gave up.
    pub closed: bool,
}

impl Probe {
    /// Whether it connected and got bytes.
    pub fn answered(&self) -> bool {
        self.connect_error.is_none() && !self.bytes.is_empty()
    }

    /// Whether the server answered before the lab wrote anything.
    pub fn answered_unprompted(&self) -> bool {
        self.answered()
            && match (self.answered_at, self.spoke) {
                (Some(answer), Some((spoke, _))) => answer < spoke,
                _ => self.spoke.is_none(),
            }
    }
}

/// One sdss node of the lab, as it saw the graded node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observer {
    /// Its name in the lab.
    pub name: String,
    /// When it printed `started`.
    pub started_at: Option<f64>,
    /// When the lab killed it, if it did.
    pub killed_at: Option<f64>,
    /// Its broadcasts, as heard by the lab's listener.
    pub broadcasts: Vec<f64>,
    /// Connections the graded node made to its timestamp server (`served` events).
    pub connections: Vec<f64>,
    /// How many of the graded node's datagrams it reported (`heard` events).
    pub heard_graded: usize,
}

/// One reading of the graded process tree in `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSample {
    /// When.
    pub at: f64,
    /// User + system CPU seconds of every process of its session so far.
    pub cpu_secs: f64,
    /// Resident memory of them all, kB.
    pub rss_kb: u64,
    /// Whether one of their threads was running or waiting for a CPU.
    pub runnable: bool,
    /// How many processes the tree had.
    pub processes: usize,
}

/// When the lab played each step of the scenario.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// The graded node was started.
    pub started_at: f64,
    /// The lab stopped watching.
    pub ended_at: f64,
    /// How long past the run's duration it watched, to tell whether a program
    /// waiting on the silent peer at the end would give up on it.
    pub extended_by: Option<f64>,
    /// The node that joined during the run, and when it was started.
    pub joined: Option<(String, f64)>,
    /// The node killed during the run, and when.
    pub killed: Option<(String, f64)>,
    /// When the peer that accepts and never answers began announcing itself.
    pub silent_at: Option<f64>,
    /// When the burst of malformed datagrams was sent.
    pub burst_at: Option<f64>,
}

/// Everything the lab saw of one graded node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Its name in the lab.
    pub node: String,
    /// Its command line.
    pub command: Vec<String>,
    /// Its address on the lab link.
    pub address: Option<Ipv4Addr>,
    /// The range the lab set as its namespace's ephemeral ports: a port the OS
    /// chose for `bind(port 0)` is in it.
    pub port_range: (u16, u16),
    /// Its datagrams, in arrival order.
    pub datagrams: Vec<Datagram>,
    /// The sdss nodes around it.
    pub observers: Vec<Observer>,
    /// The lab's connections to its server, in order.
    pub probes: Vec<Probe>,
    /// Every TCP port it was seen listening on (`/proc/PID/net/tcp`).
    pub listening: BTreeSet<u16>,
    /// Distinct connections it made to its own server.
    pub self_connections: usize,
    /// When it connected to the silent peer.
    pub silent_peer_connections: Vec<f64>,
    /// When each of its connections to the silent peer still open at the end
    /// was made: the silent peer never answers nor closes, so it was still
    /// waiting on them.
    pub silent_peer_open: Vec<f64>,
    /// Its connections to the silent peer it closed: when each was made, and
    /// when the silent peer saw it closed (within a quarter of a second).
    pub silent_peer_closed: Vec<(f64, f64)>,
    /// Readings of its process tree.
    pub samples: Vec<ProcessSample>,
    /// How it ended before the lab stopped it (`None`: still running at the end).
    pub exited: Option<String>,
    /// The limits it ran within (`None`: it ran unconfined).
    pub confined: Option<Limits>,
    /// The limits it hit, as its box's keeper saw them.
    pub limits_hit: Vec<LimitHit>,
    /// The scenario's steps.
    pub timeline: Timeline,
}
