//! What a node said: its `--json` stream, parsed as the lab reads it, and kept
//! bounded for nodes followed for hours.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::node::event::NodeEvent;

/// What one graded node said, read from its JSON stream.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Events in the order the node printed them.
    pub events: Vec<NodeEvent>,
    /// Each event's `ts` (Unix seconds), in step with `events` where known: a
    /// sample's time, to tell whether the emulator delivered its answer late.
    pub times: Vec<Option<f64>>,
    /// Lines that were not events (counted, so a broken stream is visible).
    pub unreadable_lines: usize,
    /// Why the node is no longer running, if it is not.
    pub exited: Option<String>,
}

impl Observations {
    /// Parses a node's stdout: one JSON event per line; other lines are counted.
    pub fn parse(text: &str) -> Observations {
        let mut observations = Observations::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match serde_json::from_str::<Line>(line) {
                Ok(line) => {
                    let ts = line.ts.as_deref().and_then(|ts| {
                        let ts = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
                        Some(ts.timestamp_micros() as f64 / 1e6)
                    });
                    observations.events.push(line.event);
                    observations.times.push(ts);
                }
                Err(_) => observations.unreadable_lines += 1,
            }
        }
        observations
    }

    /// Appends what another parse found.
    pub fn extend(&mut self, more: Observations) {
        // Keeps `times` in step with `events` even if someone pushed events alone.
        self.times.resize(self.events.len(), None);
        self.events.extend(more.events);
        self.times.extend(more.times);
        self.unreadable_lines += more.unreadable_lines;
    }

    /// The `ts` of event `index`, if known.
    pub fn time(&self, index: usize) -> Option<f64> {
        self.times.get(index).copied().flatten()
    }

    /// Drops the events grading can no longer use, so that a node followed
    /// for hours costs bounded memory: per peer address, the last `keep`
    /// `neighbor` events (grading takes the last `warmup + samples`), its
    /// last `discovered` and last `removed`; the last `started`. Grading the
    /// compacted events gives the same verdicts, but `total_samples` then
    /// counts only the kept samples.
    pub fn compact(&mut self, keep: usize) {
        let mut seen: HashMap<(IpAddr, u8), usize> = HashMap::new();
        let mut started = false;
        let mut bump = |ip: IpAddr, kind: u8| {
            let count = seen.entry((ip, kind)).or_default();
            *count += 1;
            *count
        };
        let mut wanted: Vec<bool> = self
            .events
            .iter()
            .rev()
            .map(|event| match event {
                NodeEvent::Started { .. } => !std::mem::replace(&mut started, true),
                NodeEvent::Neighbor(report) => bump(report.ip, 0) <= keep,
                NodeEvent::Discovered { ip, .. } => bump(*ip, 1) == 1,
                NodeEvent::Removed { ip, .. } => bump(*ip, 2) == 1,
                _ => false,
            })
            .collect();
        wanted.reverse();
        self.times.resize(self.events.len(), None);
        let mut keep = wanted.iter();
        self.events
            .retain(|_| keep.next().copied().unwrap_or(false));
        let mut keep = wanted.iter();
        self.times.retain(|_| keep.next().copied().unwrap_or(false));
    }
}

/// One line of a node's `--json` output: the event and, leniently, its `ts`.
#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    ts: Option<String>,
    #[serde(flatten)]
    event: NodeEvent,
}
