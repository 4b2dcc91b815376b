//! A running lab's plan moved by a live `set` (`sdss lab set`): the new
//! links and the expectations that follow them, computed as the timeline's
//! link model computes a `set` event's (a node's link is in series with the
//! other end's; a pair's values replace what that pair had). The lab's
//! state records the result, so `watch`, `verify` and `graph` judge by it.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use super::impairment::Impairment;
use super::timeline::Change;
use super::{in_series, Plan, Program};

/// Why a live change cannot be planned.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LiveError {
    /// The lab has no such node.
    #[error("the lab has no node {0}")]
    NoNode(String),
    /// The node runs no measured program (the grading probe).
    #[error("{0} is the grading probe: it has no link of its own to set")]
    Probe(String),
    /// The pair is not one the lab measures.
    #[error("{from} -> {to} is not a pair of the lab: expected two different measured nodes")]
    NoPair {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// Only `set` changes a lab live.
    #[error("only `set` changes a running lab's links live, not {0:?}")]
    NotSet(String),
}

/// Why `lab set` leaves a lab alone.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SetRefusal {
    /// The `none` backend puts nothing on the links.
    #[error("lab {0} runs the `none` delay backend, which puts nothing on its links: bring it up with netem or the emulator to set them")]
    NoBackend(String),
    /// Its `up` still builds or plays it.
    #[error(
        "lab {lab} is still driven by its `sdss lab up` (PID {pid}): set it once that has finished"
    )]
    Busy {
        /// The lab.
        lab: String,
        /// The `up`.
        pid: i32,
    },
    /// Not built, or being removed.
    #[error("lab {0} is not running (being built, removed, or left half-way)")]
    NotRunning(String),
    /// Its links are on several hosts.
    #[error("lab {0} spans several hosts: lab set changes the links of a lab on this machine")]
    Hosts(String),
    /// netem without a class per pair has no pair to change.
    #[error("lab {0} runs netem with one qdisc per link end (no class per pair): set a node's link, or give the lab a [[pair]] or a link event so that it gets a class per pair")]
    NoPairClasses(String),
}

/// One ordered pair whose expected delay a live change moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// What was expected before.
    #[serde(with = "crate::units::serde_duration")]
    pub before: Duration,
    /// What is expected now.
    #[serde(with = "crate::units::serde_duration")]
    pub after: Duration,
    /// The whole impairment now.
    pub impairment: Impairment,
}

impl Plan {
    /// This plan with `change` (a `set`) made: the node's link or the
    /// pair's impairment, and every expectation that follows. Each pair set
    /// outright is marked overridden, as a `[[pair]]` is.
    pub fn with_change(&self, change: &Change) -> Result<Plan, LiveError> {
        let mut plan = self.clone();
        match change {
            Change::SetLink { node, values } => {
                let index = plan
                    .nodes
                    .iter()
                    .position(|n| n.name == *node)
                    .ok_or_else(|| LiveError::NoNode(node.clone()))?;
                if plan.nodes[index].program == Program::Probe {
                    return Err(LiveError::Probe(node.clone()));
                }
                plan.nodes[index].link = values.apply(plan.nodes[index].link);
                let link = |name: &str| plan.node(name).map(|n| n.link).unwrap_or_default();
                let moved: Vec<(usize, Impairment)> = plan
                    .expected
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.overridden && (p.from == *node || p.to == *node))
                    .map(|(i, p)| (i, in_series(&link(&p.from), &link(&p.to))))
                    .collect();
                for (i, impairment) in moved {
                    plan.expected[i].impairment = impairment;
                }
            }
            Change::SetPair {
                from,
                to,
                symmetric,
                values,
            } => {
                let mut set = |from: &str, to: &str| {
                    let pair = plan
                        .expected
                        .iter_mut()
                        .find(|p| p.from == from && p.to == to)
                        .ok_or_else(|| LiveError::NoPair {
                            from: from.to_owned(),
                            to: to.to_owned(),
                        })?;
                    pair.impairment = values.apply(pair.impairment);
                    pair.overridden = true;
                    Ok(())
                };
                set(from, to)?;
                if *symmetric {
                    set(to, from)?;
                }
            }
            other => return Err(LiveError::NotSet(other.describe())),
        }
        Ok(plan)
    }

    /// The pairs whose expectation differs from `before`'s (same nodes).
    pub fn moved_from(&self, before: &Plan) -> Vec<Moved> {
        self.expected
            .iter()
            .filter_map(|now| {
                let was = before.expected(&now.from, &now.to)?;
                (was.impairment != now.impairment).then(|| Moved {
                    from: now.from.clone(),
                    to: now.to.clone(),
                    before: was.impairment.delay,
                    after: now.impairment.delay,
                    impairment: now.impairment,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::impairment::LinkValues;

    const LAB: &str = "name = \"t\"\n\
        [[node]]\nname = \"a\"\ndelay = \"1ms\"\njitter = \"1ms\"\n\
        [[node]]\nname = \"b\"\ndelay = \"2ms\"\n\
        [[node]]\nname = \"c\"\ndelay = \"4ms\"\n";

    fn delay(ms: u64) -> LinkValues {
        LinkValues {
            delay: Some(Duration::from_millis(ms)),
            ..LinkValues::default()
        }
    }

    fn expected(plan: &Plan, from: &str, to: &str) -> Duration {
        plan.expected(from, to).unwrap().impairment.delay
    }

    #[test]
    fn a_node_set_moves_every_pair_through_it_as_the_timeline_would() {
        let before = Plan::from_text(LAB);
        let change = Change::SetLink {
            node: "a".to_owned(),
            values: delay(40),
        };
        let after = before.with_change(&change).unwrap();
        assert_eq!(expected(&after, "a", "b"), Duration::from_millis(42));
        assert_eq!(expected(&after, "c", "a"), Duration::from_millis(44));
        assert_eq!(expected(&after, "b", "c"), Duration::from_millis(6));
        assert_eq!(after.nodes[0].link.jitter, Duration::from_millis(1), "kept");
        // The same as a timeline's set event at its phase.
        let timeline = Plan::from_text(&format!(
            "{LAB}[[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"a\"\ndelay = \"40ms\"\n"
        ));
        let phase = &timeline.timeline.phases[1];
        for pair in &after.expected {
            assert_eq!(
                phase.expected(&pair.from, &pair.to),
                Some(pair.impairment),
                "{} -> {}",
                pair.from,
                pair.to
            );
        }
        let moved = after.moved_from(&before);
        assert_eq!(moved.len(), 4, "a's four pairs: {moved:?}");
    }

    #[test]
    fn a_pair_set_changes_that_direction_and_a_later_node_set_leaves_it() {
        let before = Plan::from_text(LAB);
        let pair = Change::SetPair {
            from: "a".to_owned(),
            to: "b".to_owned(),
            symmetric: false,
            values: delay(9),
        };
        let after = before.with_change(&pair).unwrap();
        assert_eq!(expected(&after, "a", "b"), Duration::from_millis(9));
        assert_eq!(expected(&after, "b", "a"), Duration::from_millis(3));
        assert!(after.expected("a", "b").unwrap().overridden);
        let node = Change::SetLink {
            node: "b".to_owned(),
            values: delay(20),
        };
        let later = after.with_change(&node).unwrap();
        assert_eq!(expected(&later, "a", "b"), Duration::from_millis(9));
        assert_eq!(expected(&later, "b", "a"), Duration::from_millis(21));
        let none = Change::SetPair {
            from: "a".to_owned(),
            to: "a".to_owned(),
            symmetric: false,
            values: delay(9),
        };
        assert!(matches!(
            before.with_change(&none),
            Err(LiveError::NoPair { .. })
        ));
    }
}
