//! A lab's timeline, settled: events with their times and changes, the
//! expectations that follow them, and the phases between events, each with
//! the expected state of every ordered pair. Pure: the scenario plays it, the
//! judge holds observations against it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::impairment::{Impairment, LinkValues};
use super::in_series;
use super::Plan;
use crate::lab::file::{Action, Expectation, Topology};

/// What an event does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// A node's link gets new values (those given).
    SetLink {
        /// The node.
        node: String,
        /// The new values.
        values: LinkValues,
    },
    /// An ordered pair (and its reverse with `symmetric`) gets new values.
    SetPair {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// Both directions.
        symmetric: bool,
        /// The new values.
        values: LinkValues,
    },
    /// Nothing passes a node's link.
    Cut {
        /// The node.
        node: String,
    },
    /// A cut link passes again (`node`), or every cut and partition (`None`).
    Heal {
        /// The node, or all.
        node: Option<String>,
    },
    /// Nodes in different groups cannot reach each other.
    Partition {
        /// The groups (nodes named in none form one more group).
        groups: Vec<Vec<String>>,
    },
    /// SIGKILL.
    Kill {
        /// The node.
        node: String,
    },
    /// SIGTERM.
    Stop {
        /// The node.
        node: String,
    },
    /// Start again.
    Start {
        /// The node.
        node: String,
    },
    /// Stop, then start.
    Restart {
        /// The node.
        node: String,
    },
    /// A step the grading probe plays around graded nodes.
    Probe {
        /// Which.
        step: ProbeStep,
    },
}

/// What the grading probe does on the grading timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStep {
    /// A peer appears whose server accepts and never answers.
    SilentPeer,
    /// A new, well-behaved peer joins.
    Joiner,
    /// A burst of malformed datagrams.
    MalformedBurst,
}

impl Change {
    /// Whether it changes what pairs are expected to measure (links or processes).
    pub fn changes_expectations(&self) -> bool {
        !matches!(self, Change::Probe { .. })
    }

    /// The node whose process it acts on (kill, stop, start, restart).
    pub fn process_node(&self) -> Option<&str> {
        match self {
            Change::Kill { node }
            | Change::Stop { node }
            | Change::Start { node }
            | Change::Restart { node } => Some(node),
            _ => None,
        }
    }

    /// Whether it changes what the links do (rather than which processes run).
    pub fn is_link(&self) -> bool {
        matches!(
            self,
            Change::SetLink { .. }
                | Change::SetPair { .. }
                | Change::Cut { .. }
                | Change::Heal { .. }
                | Change::Partition { .. }
        )
    }

    /// A line for the report and `--dry-run`.
    pub fn describe(&self) -> String {
        match self {
            Change::SetLink { node, values } => format!("set {node}'s link: {values}"),
            Change::SetPair {
                from,
                to,
                symmetric,
                values,
            } => {
                let arrow = if *symmetric { "<->" } else { "->" };
                format!("set {from} {arrow} {to}: {values}")
            }
            Change::Cut { node } => format!("cut {node}'s link"),
            Change::Heal { node: Some(node) } => format!("heal {node}'s link"),
            Change::Heal { node: None } => "heal every cut and partition".to_owned(),
            Change::Partition { groups } => format!(
                "partition into {}",
                groups
                    .iter()
                    .map(|g| format!("[{}]", g.join(" ")))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Change::Kill { node } => format!("kill {node}"),
            Change::Stop { node } => format!("stop {node}"),
            Change::Start { node } => format!("start {node}"),
            Change::Restart { node } => format!("restart {node}"),
            Change::Probe { step } => match step {
                ProbeStep::SilentPeer => "a peer that never answers appears".to_owned(),
                ProbeStep::Joiner => "a new peer joins".to_owned(),
                ProbeStep::MalformedBurst => "a burst of malformed datagrams".to_owned(),
            },
        }
    }
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its name, if it has one.
    pub name: Option<String>,
    /// When, after the nodes start.
    #[serde(with = "crate::units::serde_duration")]
    pub at: Duration,
    /// What it does.
    pub change: Change,
}

/// One expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expect {
    /// What must become true.
    pub what: Expectation,
    /// The event it follows (index into [`Timeline::events`]); the start when `None`.
    pub after: Option<usize>,
    /// How long it may take.
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub within: Option<Duration>,
    /// `removed`, `discovered`: the node.
    pub node: Option<String>,
    /// `delay`, `measured`: the pair (sender, receiver).
    pub pair: Option<(String, String)>,
    /// `measured`: the longest gap allowed.
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub gap: Option<Duration>,
    /// `measured`: until when after the start.
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub until: Option<Duration>,
}

/// What the links do to one ordered pair in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // most pairs are linked: boxing would cost more than it saves
pub enum PairState {
    /// Frames pass with this impairment.
    Linked(Impairment),
    /// A cut or a partition drops every frame.
    Separated,
}

/// One ordered pair in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePair {
    /// Sender.
    pub from: String,
    /// Receiver (the node that measures).
    pub to: String,
    /// What the links do to it.
    #[serde(flatten)]
    pub state: PairState,
}

/// The lab between two events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// When it begins, after the nodes start.
    #[serde(with = "crate::units::serde_duration")]
    pub from: Duration,
    /// The event that began it (`None`: the start).
    pub event: Option<usize>,
    /// Every measured ordered pair and its state.
    pub pairs: Vec<PhasePair>,
    /// Nodes whose process runs.
    pub running: BTreeSet<String>,
}

impl Phase {
    /// The state of `from -> to`.
    pub fn pair(&self, from: &str, to: &str) -> Option<PairState> {
        self.pairs
            .iter()
            .find(|p| p.from == from && p.to == to)
            .map(|p| p.state)
    }

    /// The impairment `to` should measure of `from`, when both run and are linked.
    pub fn expected(&self, from: &str, to: &str) -> Option<Impairment> {
        if !self.running.contains(from) || !self.running.contains(to) {
            return None;
        }
        match self.pair(from, to)? {
            PairState::Linked(impairment) => Some(impairment),
            PairState::Separated => None,
        }
    }
}

/// The lab's links as events leave them.
#[derive(Debug, Clone, Default)]
struct LinkModel {
    links: HashMap<String, Impairment>,
    overrides: HashMap<(String, String), Impairment>,
    cut: BTreeSet<String>,
    groups: Option<HashMap<String, usize>>,
    running: BTreeSet<String>,
}

impl LinkModel {
    fn pair(&self, from: &str, to: &str) -> PairState {
        if self.cut.contains(from) || self.cut.contains(to) {
            return PairState::Separated;
        }
        if let Some(groups) = &self.groups {
            let group = |n: &str| groups.get(n).copied().unwrap_or(usize::MAX);
            if group(from) != group(to) {
                return PairState::Separated;
            }
        }
        let key = (from.to_owned(), to.to_owned());
        PairState::Linked(self.overrides.get(&key).copied().unwrap_or_else(|| {
            let link = |n: &str| self.links.get(n).copied().unwrap_or_default();
            in_series(&link(from), &link(to))
        }))
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::SetLink { node, values } => {
                let link = self.links.entry(node.clone()).or_default();
                *link = values.apply(*link);
            }
            Change::SetPair {
                from,
                to,
                symmetric,
                values,
            } => {
                let mut set = |from: &str, to: &str| {
                    let current = match self.pair_impairment(from, to) {
                        Some(current) => current,
                        None => return,
                    };
                    self.overrides
                        .insert((from.to_owned(), to.to_owned()), values.apply(current));
                };
                set(from, to);
                if *symmetric {
                    set(to, from);
                }
            }
            Change::Cut { node } => {
                self.cut.insert(node.clone());
            }
            Change::Heal { node: Some(node) } => {
                self.cut.remove(node);
            }
            Change::Heal { node: None } => {
                self.cut.clear();
                self.groups = None;
            }
            Change::Partition { groups } => {
                let mut index = HashMap::new();
                for (i, group) in groups.iter().enumerate() {
                    for node in group {
                        index.insert(node.clone(), i);
                    }
                }
                self.groups = Some(index);
            }
            Change::Kill { node } | Change::Stop { node } => {
                self.running.remove(node);
            }
            Change::Start { node } | Change::Restart { node } => {
                self.running.insert(node.clone());
            }
            Change::Probe { .. } => {}
        }
    }

    fn pair_impairment(&self, from: &str, to: &str) -> Option<Impairment> {
        let key = (from.to_owned(), to.to_owned());
        if let Some(current) = self.overrides.get(&key) {
            return Some(*current);
        }
        let link = |n: &str| self.links.get(n).copied();
        Some(in_series(&link(from)?, &link(to)?))
    }
}

/// The settled timeline of a lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Events, in time order.
    pub events: Vec<Event>,
    /// Expectations.
    pub expects: Vec<Expect>,
    /// The phases: the start's, then one per event.
    pub phases: Vec<Phase>,
}

impl Timeline {
    /// The timeline of `topology`, whose nodes start with `links` (their own
    /// link each) and `overrides` (the `[[pair]]` sections), all of `measured` running.
    /// `builtin` events (the grading scenario's) join the file's.
    pub fn new(
        topology: &Topology,
        links: HashMap<String, Impairment>,
        overrides: HashMap<(String, String), Impairment>,
        measured: &[String],
        builtin: Vec<Event>,
    ) -> Timeline {
        // Validated by the file: every action has a name we know.
        let mut events: Vec<Event> = topology.events.iter().map(event).collect();
        events.extend(builtin);
        // Stable: events at the same time keep the file's order.
        events.sort_by_key(|e| e.at);
        let index_of = |name: &str| events.iter().position(|e| e.name.as_deref() == Some(name));
        let expects = topology
            .expects
            .iter()
            .map(|x| {
                let what = *x.what.get_ref();
                let pair = match (&x.from, &x.to) {
                    (Some(from), Some(to)) => Some((from.get_ref().clone(), to.get_ref().clone())),
                    _ => None,
                };
                Expect {
                    what,
                    after: x.after.as_ref().and_then(|a| index_of(a.get_ref())),
                    within: x.within.map(|d| d.0),
                    node: x.node.as_ref().map(|n| n.get_ref().clone()),
                    pair,
                    gap: x.gap.map(|d| d.0),
                    until: x.until.map(|d| d.0),
                }
            })
            .collect();
        let mut model = LinkModel {
            links,
            overrides,
            running: measured.iter().cloned().collect(),
            ..LinkModel::default()
        };
        let snapshot = |model: &LinkModel, from: Duration, event: Option<usize>| Phase {
            from,
            event,
            pairs: measured
                .iter()
                .flat_map(|a| measured.iter().map(move |b| (a, b)))
                .filter(|(a, b)| a != b)
                .map(|(a, b)| PhasePair {
                    from: a.clone(),
                    to: b.clone(),
                    state: model.pair(a, b),
                })
                .collect(),
            running: model.running.clone(),
        };
        let mut phases = vec![snapshot(&model, Duration::ZERO, None)];
        for (index, event) in events.iter().enumerate() {
            model.apply(&event.change);
            phases.push(snapshot(&model, event.at, Some(index)));
        }
        Timeline {
            events,
            expects,
            phases,
        }
    }

    /// Whether it has neither events nor expectations.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.expects.is_empty()
    }

    /// Whether any event changes a link.
    pub fn changes_links(&self) -> bool {
        self.events.iter().any(|e| e.change.is_link())
    }

    /// The phase in force at `t` after the start.
    pub fn phase_at(&self, t: Duration) -> &Phase {
        self.phases
            .iter()
            .rev()
            .find(|p| p.from <= t)
            .unwrap_or(&self.phases[0])
    }

    /// How long the timeline needs: its last event, and every expectation's deadline.
    pub fn length(&self) -> Duration {
        let last_event = self.events.last().map_or(Duration::ZERO, |e| e.at);
        self.expects
            .iter()
            .map(|x| {
                let after = x.after.map_or(Duration::ZERO, |i| self.events[i].at);
                (after + x.within.unwrap_or_default()).max(x.until.unwrap_or_default())
            })
            .fold(last_event, Duration::max)
    }
}

/// What an `[[event]]` (of the file, or `sdss lab set`'s) does.
pub fn change_of(section: &crate::lab::file::EventSection) -> Change {
    event(section).change
}

fn event(section: &crate::lab::file::EventSection) -> Event {
    let name = |n: &Option<toml::Spanned<String>>| n.as_ref().map(|n| n.get_ref().clone());
    let node = name(&section.node).unwrap_or_default();
    let values = LinkValues::from(section.shape());
    let action = *section.action.get_ref();
    let change = match action {
        Action::Set => match (name(&section.from), name(&section.to)) {
            (Some(from), Some(to)) => Change::SetPair {
                from,
                to,
                symmetric: section.symmetric,
                values,
            },
            _ => Change::SetLink { node, values },
        },
        Action::Cut => Change::Cut { node },
        Action::Heal => Change::Heal {
            node: name(&section.node),
        },
        Action::Partition => Change::Partition {
            groups: section
                .groups
                .as_ref()
                .map(|g| g.get_ref().clone())
                .unwrap_or_default(),
        },
        Action::Kill => Change::Kill { node },
        Action::Stop => Change::Stop { node },
        Action::Start => Change::Start { node },
        Action::Restart => Change::Restart { node },
    };
    Event {
        name: name(&section.name),
        at: section.at.0,
        change,
    }
}

/// A change's word for the report's timeline.
pub fn describe_event(plan: &Plan, index: usize) -> String {
    let event = &plan.timeline.events[index];
    let name = event
        .name
        .as_ref()
        .map(|n| format!("{n}: "))
        .unwrap_or_default();
    format!("{name}{}", event.change.describe())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::Plan;

    const LAB: &str = "name = \"t\"\n\
        [[node]]\nname = \"a\"\ndelay = \"1ms\"\n\
        [[node]]\nname = \"b\"\ndelay = \"2ms\"\n\
        [[node]]\nname = \"c\"\ndelay = \"4ms\"\n";

    fn plan(timeline: &str) -> Plan {
        Plan::from_text(&format!("{LAB}{timeline}"))
    }

    fn ms(n: u64) -> Option<Impairment> {
        Some(Impairment {
            delay: Duration::from_millis(n),
            ..Impairment::default()
        })
    }

    #[test]
    fn events_are_ordered_and_each_begins_a_phase() {
        let plan = plan(
            "[[event]]\nat = \"20s\"\naction = \"heal\"\nnode = \"c\"\n\
             [[event]]\nat = \"10s\"\naction = \"cut\"\nnode = \"c\"\n",
        );
        let t = &plan.timeline;
        assert_eq!(t.events[0].at, Duration::from_secs(10));
        assert_eq!(t.phases.len(), 3);
        assert_eq!(t.phases[0].expected("c", "a"), ms(5));
        assert_eq!(t.phases[1].pair("c", "a"), Some(PairState::Separated));
        assert_eq!(t.phases[1].expected("b", "a"), ms(3), "others untouched");
        assert_eq!(t.phases[2].expected("c", "a"), ms(5), "healed");
        assert!(plan.per_pair, "live link changes need a class per pair");
    }

    #[test]
    fn a_link_change_moves_every_pair_through_it_and_keeps_what_it_does_not_name() {
        let plan = plan(
            "[[node]]\nname = \"d\"\ndelay = \"1ms\"\njitter = \"1ms\"\n\
             [[event]]\nat = \"5s\"\naction = \"set\"\nnode = \"d\"\ndelay = \"10ms\"\n",
        );
        let after = &plan.timeline.phases[1];
        assert_eq!(
            after.expected("d", "a").map(|i| i.delay),
            Some(Duration::from_millis(11))
        );
        assert_eq!(
            after.expected("d", "a").map(|i| i.jitter),
            Some(Duration::from_millis(1)),
            "jitter kept"
        );
        assert_eq!(after.expected("b", "a"), ms(3));
    }

    #[test]
    fn a_partition_separates_groups_and_a_killed_node_expects_nothing_until_started() {
        let plan = plan(
            "[[event]]\nat = \"5s\"\naction = \"partition\"\ngroups = [[\"a\"], [\"b\", \"c\"]]\n\
             [[event]]\nat = \"6s\"\naction = \"kill\"\nnode = \"c\"\n\
             [[event]]\nat = \"7s\"\naction = \"heal\"\n\
             [[event]]\nat = \"8s\"\naction = \"start\"\nnode = \"c\"\n",
        );
        let p = &plan.timeline.phases;
        assert_eq!(p[1].pair("a", "b"), Some(PairState::Separated));
        assert_eq!(p[1].expected("c", "b"), ms(6));
        assert_eq!(p[2].expected("c", "b"), None, "c does not run");
        assert_eq!(p[3].expected("a", "b"), ms(3), "healed");
        assert_eq!(p[4].expected("c", "a"), ms(5), "started again");
    }

    #[test]
    fn a_pair_change_touches_that_direction_only_unless_symmetric() {
        let plan = plan(
            "[[event]]\nat = \"1s\"\naction = \"set\"\nfrom = \"a\"\nto = \"b\"\nloss = 0.5\n\
             [[event]]\nat = \"2s\"\naction = \"set\"\nfrom = \"a\"\nto = \"c\"\nsymmetric = true\ndelay = \"9ms\"\n",
        );
        let p = &plan.timeline.phases;
        assert_eq!(p[1].expected("a", "b").map(|i| i.loss.mean()), Some(0.5));
        assert_eq!(p[1].expected("b", "a").map(|i| i.loss.mean()), Some(0.0));
        assert_eq!(p[2].expected("a", "c"), ms(9));
        assert_eq!(p[2].expected("c", "a"), ms(9));
    }

    #[test]
    fn the_run_lasts_until_the_last_deadline() {
        let plan = plan(
            "[[event]]\nname = \"k\"\nat = \"10s\"\naction = \"kill\"\nnode = \"c\"\n\
             [[expect]]\nwhat = \"removed\"\nnode = \"c\"\nafter = \"k\"\nwithin = \"7s\"\n\
             [[expect]]\nwhat = \"measured\"\nfrom = \"a\"\nto = \"b\"\ngap = \"3s\"\nuntil = \"12s\"\n",
        );
        assert_eq!(plan.timeline.length(), Duration::from_secs(17));
        assert!(!plan.timeline.changes_links());
        assert!(!plan.per_pair);
    }
}
