//! `[[event]]` and `[[expect]]`: a lab's timeline as written, and its checks.
//! Times are durations after the nodes start; an expectation counts from the
//! start or from a named event. See `labs/README.md` for the language.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::{shaped_section, DurationValue, Locator, Topology, TopologyError};

/// What an `[[event]]` does to the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Change a node's link (`node`) or an ordered pair (`from`, `to`).
    Set,
    /// Cut a node's link: nothing passes either way.
    Cut,
    /// Heal a cut link (`node`), or every cut and partition (no `node`).
    Heal,
    /// Split the segment into `groups` that cannot reach each other.
    Partition,
    /// SIGKILL a node's process, as a crash would.
    Kill,
    /// SIGTERM a node's process: a clean stop.
    Stop,
    /// Start a stopped or killed node again (sdss comes back with a new ID).
    Start,
    /// Stop and start a node.
    Restart,
}

impl Action {
    /// Its name in a lab file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Set => "set",
            Action::Cut => "cut",
            Action::Heal => "heal",
            Action::Partition => "partition",
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}

/// What an `[[expect]]` asks to become true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// A pair's measured delay settles within tolerance of the value in force.
    Delay,
    /// Every running node removes `node`.
    Removed,
    /// Every running node discovers `node` (its new ID, after a restart).
    Discovered,
    /// After a partition, every node forgets every node of the other groups.
    Separated,
    /// After a heal, every node measures every node of the other groups again.
    Rejoined,
    /// A pair keeps being measured: no gap between samples longer than `gap`.
    Measured,
}

impl Expectation {
    /// Its name in a lab file.
    pub fn name(self) -> &'static str {
        match self {
            Expectation::Delay => "delay",
            Expectation::Removed => "removed",
            Expectation::Discovered => "discovered",
            Expectation::Separated => "separated",
            Expectation::Rejoined => "rejoined",
            Expectation::Measured => "measured",
        }
    }
}

shaped_section! {
/// One `[[event]]`; a `set` gives the link's new shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSection {
    /// A name expectations refer to.
    pub name: Option<Spanned<String>>,
    /// When, after the nodes start.
    pub at: DurationValue,
    /// What: one of [`Action`]'s names (serde names the known ones).
    pub action: Spanned<Action>,
    /// The node acted on.
    pub node: Option<Spanned<String>>,
    /// Sender of the pair `set` changes.
    pub from: Option<Spanned<String>>,
    /// Receiver of the pair `set` changes.
    pub to: Option<Spanned<String>>,
    /// `set` of a pair: the reverse direction too.
    #[serde(default)]
    pub symmetric: bool,
    /// `partition`: the groups of node names.
    pub groups: Option<Spanned<Vec<Vec<String>>>>,
}
}

/// One `[[expect]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSection {
    /// What: one of [`Expectation`]'s names.
    pub what: Spanned<Expectation>,
    /// The event it follows (its name); the start when absent.
    pub after: Option<Spanned<String>>,
    /// How long it may take.
    pub within: Option<DurationValue>,
    /// `removed`, `discovered`: the node.
    pub node: Option<Spanned<String>>,
    /// `delay`, `measured`: the sender of the pair.
    pub from: Option<Spanned<String>>,
    /// `delay`, `measured`: the receiver (the node that measures).
    pub to: Option<Spanned<String>>,
    /// `measured`: the longest gap allowed between two samples.
    pub gap: Option<DurationValue>,
    /// `measured`: until when, after the start (default: the end of the run).
    pub until: Option<DurationValue>,
}

impl Topology {
    /// Checks the timeline against the nodes it names.
    pub(super) fn validate_timeline(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        let nodes: Vec<&str> = self
            .nodes
            .iter()
            .map(|n| n.name.get_ref().as_str())
            .collect();
        let mut names: HashMap<&str, Action> = HashMap::new();
        for event in &self.events {
            let action = *event.action.get_ref();
            check_event(event, &nodes, at)?;
            if let Some(name) = &event.name {
                if names.insert(name.get_ref(), action).is_some() {
                    return Err(at.error(
                        Some(name.span()),
                        format!(
                            "two events are named {:?}: expected unique names",
                            name.get_ref()
                        ),
                    ));
                }
            }
        }
        for expect in &self.expects {
            let what = *expect.what.get_ref();
            let needs = |present: bool, field: &str| -> Result<(), TopologyError> {
                if present {
                    Ok(())
                } else {
                    Err(at.error(
                        Some(expect.what.span()),
                        format!("expectation {:?} needs {field}", what.name()),
                    ))
                }
            };
            let after = match &expect.after {
                Some(name) => Some(*names.get(name.get_ref().as_str()).ok_or_else(|| {
                    let named = self.events.iter().filter_map(|e| e.name.as_ref());
                    at.error(
                        Some(name.span()),
                        format!(
                            "no event is named {:?}: {}",
                            name.get_ref(),
                            super::one_of(name.get_ref(), named.map(|n| n.get_ref().as_str()))
                        ),
                    )
                })?),
                None => None,
            };
            match what {
                Expectation::Delay => needs(expect.within.is_some(), "`within`")?,
                Expectation::Removed | Expectation::Discovered => {
                    needs(expect.node.is_some(), "`node`")?;
                    needs(expect.within.is_some(), "`within`")?;
                }
                Expectation::Separated => {
                    needs(
                        after == Some(Action::Partition),
                        "`after` a partition event",
                    )?;
                    needs(expect.within.is_some(), "`within`")?;
                }
                Expectation::Rejoined => {
                    needs(after == Some(Action::Heal), "`after` a heal event")?;
                    needs(expect.within.is_some(), "`within`")?;
                }
                Expectation::Measured => {
                    needs(
                        expect.from.is_some() && expect.to.is_some(),
                        "`from` and `to`",
                    )?;
                    needs(expect.gap.is_some(), "`gap`")?;
                }
            }
            if what == Expectation::Delay && expect.from.is_some() != expect.to.is_some() {
                needs(
                    false,
                    "both `from` and `to`, or neither (every changed pair)",
                )?;
            }
            for name in [&expect.node, &expect.from, &expect.to]
                .into_iter()
                .flatten()
            {
                check_node(name, &nodes, at)?;
            }
        }
        Ok(())
    }
}

/// Fails unless `name` is one of `nodes`.
fn check_node(
    name: &Spanned<String>,
    nodes: &[&str],
    at: &Locator<'_>,
) -> Result<(), TopologyError> {
    if nodes.contains(&name.get_ref().as_str()) {
        Ok(())
    } else {
        Err(at.error(
            Some(name.span()),
            format!(
                "no node is named {:?}: {}",
                name.get_ref(),
                super::one_of(name.get_ref(), nodes.iter().copied())
            ),
        ))
    }
}

/// Checks one event against the lab's `nodes`: what its action needs, the
/// nodes it names, its groups and its link's shape. The file's events and
/// `sdss lab set` (see [`super::live`]) both pass here.
pub(super) fn check_event(
    event: &EventSection,
    nodes: &[&str],
    at: &Locator<'_>,
) -> Result<(), TopologyError> {
    let action = *event.action.get_ref();
    let needs = |present: bool, what: &str| -> Result<(), TopologyError> {
        if present {
            Ok(())
        } else {
            Err(at.error(
                Some(event.action.span()),
                format!("action {:?} needs {what}", action.name()),
            ))
        }
    };
    match action {
        Action::Set => {
            needs(
                event.node.is_some() != (event.from.is_some() && event.to.is_some()),
                "either `node` or both `from` and `to`",
            )?;
            needs(
                !event.shape().is_empty(),
                &format!("at least one of {}", super::link::SHAPE_KEYS),
            )?;
        }
        Action::Cut | Action::Kill | Action::Stop | Action::Start | Action::Restart => {
            needs(event.node.is_some(), "`node`")?
        }
        Action::Partition => needs(event.groups.is_some(), "`groups`")?,
        Action::Heal => {}
    }
    for name in [&event.node, &event.from, &event.to].into_iter().flatten() {
        check_node(name, nodes, at)?;
    }
    if let Some(groups) = &event.groups {
        let mut seen: Vec<(&String, usize)> = Vec::new();
        for (group, name) in groups
            .get_ref()
            .iter()
            .enumerate()
            .flat_map(|(g, names)| names.iter().map(move |n| (g + 1, n)))
        {
            let message = if !nodes.contains(&name.as_str()) {
                format!(
                    "groups: no node is named {name:?}: {}",
                    super::one_of(name, nodes.iter().copied())
                )
            } else if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                format!(
                    "groups: node {name:?} is in group {first} and group {group}: a partition puts each node in one group"
                )
            } else {
                seen.push((name, group));
                continue;
            };
            return Err(at.error(Some(groups.span()), message));
        }
        if groups.get_ref().len() < 2 {
            return Err(at.error(Some(groups.span()), "a partition needs at least two groups"));
        }
    }
    event.shape().check(at)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const NODES: &str = "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";

    fn error(timeline: &str) -> (usize, String) {
        let text = format!("{NODES}{timeline}");
        match Topology::parse(Path::new("lab.toml"), &text) {
            Err(TopologyError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_timeline_parses_with_its_events_and_expectations() {
        let text = format!(
            "{NODES}[[event]]\nname = \"slow\"\nat = \"10s\"\naction = \"set\"\nnode = \"a\"\ndelay = \"5ms\"\n\
             [[expect]]\nwhat = \"delay\"\nafter = \"slow\"\nwithin = \"5s\"\n"
        );
        let topology = Topology::parse(Path::new("lab.toml"), &text).unwrap();
        assert_eq!(topology.events.len(), 1);
        assert_eq!(topology.expects.len(), 1);
    }

    #[test]
    fn unknown_actions_and_expectations_list_the_known_ones() {
        let (line, message) = error("[[event]]\nat = \"1s\"\naction = \"explode\"\nnode = \"a\"\n");
        assert_eq!(line, 8);
        assert!(
            message.contains("expected one of `set`, `cut`, `heal`"),
            "{message}"
        );
        let (_, message) = error("[[expect]]\nwhat = \"happy\"\nwithin = \"1s\"\n");
        assert!(
            message.contains("`delay`, `removed`, `discovered`"),
            "{message}"
        );
    }

    #[test]
    fn an_events_link_is_checked_as_a_nodes_is() {
        let (_, message) =
            error("[[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"a\"\ndelay = \"90s\"\n");
        assert!(message.contains("too long for a link"), "{message}");
        let (_, message) =
            error("[[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"a\"\nloss = 1.5\n");
        assert!(message.contains("loss 1.5 is out of range"), "{message}");
    }

    #[test]
    fn what_an_action_needs_is_named() {
        let (_, message) = error("[[event]]\nat = \"1s\"\naction = \"kill\"\n");
        assert!(message.contains("needs `node`"), "{message}");
        let (_, message) = error("[[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"a\"\n");
        assert!(
            message.contains("`delay`, `jitter`, `distribution`"),
            "{message}"
        );
        let (_, message) =
            error("[[event]]\nat = \"1s\"\naction = \"partition\"\ngroups = [[\"a\"]]\n");
        assert!(message.contains("at least two groups"), "{message}");
        let (_, message) = error("[[event]]\nat = \"1s\"\naction = \"stop\"\nnode = \"z\"\n");
        assert!(message.contains("no node is named \"z\""), "{message}");
        let (_, message) = error(
            "[[event]]\nat = \"1s\"\naction = \"partition\"\ngroups = [[\"a\", \"b\"], [\"b\"]]\n",
        );
        assert!(
            message.ends_with("groups: node \"b\" is in group 1 and group 2: a partition puts each node in one group"),
            "{message}"
        );
        let (_, message) =
            error("[[event]]\nat = \"1s\"\naction = \"partition\"\ngroups = [[\"a\"], [\"c\"]]\n");
        assert!(
            message.ends_with("groups: no node is named \"c\": expected one of a, b"),
            "{message}"
        );
    }

    #[test]
    fn expectations_name_existing_events_of_the_right_kind() {
        let (_, message) = error(
            "[[expect]]\nwhat = \"removed\"\nnode = \"a\"\nafter = \"boom\"\nwithin = \"1s\"\n",
        );
        assert!(message.contains("no event is named \"boom\""), "{message}");
        let (_, message) = error(
            "[[event]]\nname = \"split\"\nat = \"1s\"\naction = \"partition\"\ngroups = [[\"a\"], [\"b\"]]\n\
             [[event]]\nname = \"heal\"\nat = \"2s\"\naction = \"heal\"\n\
             [[expect]]\nwhat = \"separated\"\nafter = \"splt\"\nwithin = \"1s\"\n",
        );
        assert!(
            message.ends_with(
                "no event is named \"splt\": did you mean \"split\"? expected one of split, heal"
            ),
            "{message}"
        );
        let (_, message) = error(
            "[[event]]\nname = \"k\"\nat = \"1s\"\naction = \"kill\"\nnode = \"a\"\n\
             [[expect]]\nwhat = \"separated\"\nafter = \"k\"\nwithin = \"1s\"\n",
        );
        assert!(message.contains("`after` a partition event"), "{message}");
        let (_, message) = error("[[expect]]\nwhat = \"measured\"\nfrom = \"a\"\nto = \"b\"\n");
        assert!(message.contains("needs `gap`"), "{message}");
    }
}
