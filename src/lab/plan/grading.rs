//! The grading scenario of a lab with graded nodes: when each step happens,
//! as timeline events the scenario plays like any other.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::timeline;

/// The grading scenario: when each step happens, counted from the nodes' start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeSettings {
    /// How long graded nodes are watched.
    #[serde(with = "crate::units::serde_duration")]
    pub duration: Duration,
    /// When the probe's peer that accepts and never answers starts announcing.
    #[serde(with = "crate::units::serde_duration")]
    pub silent_at: Duration,
    /// When the probe's peer that answers like a correct node starts announcing.
    #[serde(with = "crate::units::serde_duration")]
    pub joined_at: Duration,
    /// When the burst of malformed datagrams is sent.
    #[serde(with = "crate::units::serde_duration")]
    pub burst_at: Duration,
    /// When `kill` is killed.
    #[serde(with = "crate::units::serde_duration")]
    pub kill_at: Duration,
    /// From when the probe tries the clients that kill fragile servers (one
    /// that closes without a word, one that writes `!d` first): after every
    /// other step has been judged.
    #[serde(with = "crate::units::serde_duration")]
    pub risky_from: Duration,
    /// The sdss node killed during the run, if any.
    pub kill: Option<String>,
    /// The probe node's name.
    pub probe: String,
    /// The ephemeral port range set in graded nodes' namespaces: a port chosen
    /// by the OS for `bind(port 0)` falls inside it, a hard-coded one rarely does.
    pub port_range: (u16, u16),
    /// The seed of the scenario's random choices: the port range, the fake
    /// peers' IDs. Printed, so that a regrade can play the same scenario.
    #[serde(default)]
    pub seed: u32,
}

impl GradeSettings {
    /// The grading scenario as timeline events: a silent peer, a joiner, a
    /// malformed burst (played by the probe), and the killed node.
    pub fn timeline(&self) -> Vec<timeline::Event> {
        use timeline::{Change, Event, ProbeStep};
        let step = |name: &str, at: Duration, step: ProbeStep| Event {
            name: Some(name.to_owned()),
            at,
            change: Change::Probe { step },
        };
        let mut events = vec![
            step("silent peer", self.silent_at, ProbeStep::SilentPeer),
            step("joiner", self.joined_at, ProbeStep::Joiner),
            step("malformed burst", self.burst_at, ProbeStep::MalformedBurst),
        ];
        if let Some(node) = &self.kill {
            events.push(Event {
                name: Some("killed node".to_owned()),
                at: self.kill_at,
                change: Change::Kill { node: node.clone() },
            });
        }
        events
    }

    /// Default length of a grading run: long enough for two refreshes per peer.
    pub const DEFAULT_DURATION: Duration = Duration::from_secs(24);

    /// How long a connection to the silent peer must stay open, its client
    /// connected to nobody since, for that client to be called stuck on it:
    /// past any timeout a client reasonably sets (students' code often has
    /// `settimeout(5)` or `10`; sdss gives up after 2 s), with a settle for
    /// the close to be seen. It is also the most the run is extended by: a
    /// graded program still waiting on the silent peer at the end, on a
    /// connection younger than this, is watched until it closes it or the
    /// connection is this old (see [`GradeSettings::watched_for`]).
    pub const STUCK_OPEN: Duration = Duration::from_secs(12);

    /// The most a grading run may last: its duration, extended by at most
    /// [`GradeSettings::STUCK_OPEN`] to tell whether a program waiting on the
    /// silent peer at the end is stuck there.
    pub fn watched_for(&self) -> Duration {
        self.duration + Self::STUCK_OPEN
    }

    /// The seed a lab without one gets: its name's hash, so that a lab file
    /// plays the same scenario every time.
    pub fn seed_of(lab: &str) -> u32 {
        lab.bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
    }

    /// The scenario for a lab, its steps spread over `duration`.
    pub fn new(duration: Duration, kill: Option<String>, seed: u32) -> GradeSettings {
        // A range per seed, so that no fixed port is inside every lab's range.
        let low = 33_000 + (seed % 26) as u16 * 1000;
        GradeSettings {
            duration,
            silent_at: duration.mul_f64(0.25),
            joined_at: duration.mul_f64(0.33),
            burst_at: duration.mul_f64(0.42),
            kill_at: duration.mul_f64(0.5),
            risky_from: duration.mul_f64(0.6),
            kill,
            probe: crate::lab::file::PROBE_NODE.to_owned(),
            port_range: (low, low + 999),
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NodeId;

    #[test]
    fn a_seed_plays_the_same_scenario_and_another_seed_another() {
        let one = GradeSettings::new(Duration::from_secs(24), None, 7);
        assert_eq!(one, GradeSettings::new(Duration::from_secs(24), None, 7));
        let ports: std::collections::BTreeSet<(u16, u16)> = (0..40)
            .map(|seed| GradeSettings::new(Duration::from_secs(24), None, seed).port_range)
            .collect();
        assert!(ports.len() > 20, "{ports:?}");
        let id = |seed| NodeId::seeded(&mut fastrand::Rng::with_seed(seed));
        assert_eq!(id(7), id(7));
        assert_ne!(id(7), id(8));
        assert_eq!(id(7).as_str().len(), crate::protocol::ID_LEN);
        assert_eq!(
            GradeSettings::seed_of("grade"),
            GradeSettings::seed_of("grade")
        );
    }
}
