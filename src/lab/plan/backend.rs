//! Which delay backend a lab gets, decided before anything is created: from
//! what the user asked, what the lab needs, and whether the kernel has netem.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::timeline::PairState;
use super::Plan;
use crate::lab::file::backend::BackendChoice;

/// Which backend put the delays on a lab's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Nothing injected; every pair is expected at zero delay.
    None,
    /// Kernel netem qdiscs on the veth ends.
    Netem,
    /// The userspace link emulator.
    Emulator,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::None => "none",
            BackendKind::Netem => "netem",
            BackendKind::Emulator => "emulator",
        })
    }
}

/// Whether the kernel can do netem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum NetemSupport {
    /// `sch_netem` is there.
    Available,
    /// "Specified qdisc kind is unknown": the module is absent.
    Missing,
    /// `tc` is not installed.
    NoTc,
    /// The probe failed for another reason.
    Unknown(String),
}

impl fmt::Display for NetemSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetemSupport::Available => f.write_str("available"),
            NetemSupport::Missing => f.write_str("unavailable (the kernel has no sch_netem)"),
            NetemSupport::NoTc => f.write_str("unknown (tc is not installed)"),
            NetemSupport::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Why no backend fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendRefusal {
    /// netem was asked for and the kernel lacks it.
    #[error("the netem backend cannot run here: the kernel has no sch_netem; use `--delay-backend emulator`, or `none` for a zero-delay lab")]
    NoNetem,
    /// The lab changes links while it runs, which `none` cannot.
    #[error("this lab changes links while it runs ({0}); the `none` backend injects nothing and cannot: use netem or the emulator")]
    CannotChange(String),
    /// A duplicating netem beside others in one qdisc tree.
    #[error("{0} duplicates frames in a lab with [[pair]]s, where netem's classes share one qdisc tree per node, and the kernel refuses a duplicating netem beside other netems in a tree (\"cannot mix duplicating netems with other netems in tree\"): use `--delay-backend emulator`, or duplicate on nodes' links in a lab without [[pair]]s")]
    DuplicateInTree(String),
}

/// Whether [`settle`]'s answer depends on the kernel having netem: not for
/// `none`, nor for `auto` with nothing to inject (probing takes a namespace and
/// a `tc` run, which a lab without delays need not wait for).
pub fn needs_netem(choice: BackendChoice, plan: &Plan) -> bool {
    match choice {
        BackendChoice::None | BackendChoice::Emulator => false,
        BackendChoice::Auto => !plan.is_unimpaired() || has_link_changes(plan),
        BackendChoice::Netem => true,
    }
}

fn has_link_changes(plan: &Plan) -> bool {
    plan.timeline.events.iter().any(|e| e.change.is_link())
}

/// `plan` as `choice` will inject it: under `none`, every pair at zero
/// delay, with the note that says so; a plan step, taken before anything is built.
pub fn as_injected(choice: BackendChoice, plan: Plan) -> (Plan, Option<String>) {
    if choice == BackendChoice::None && !plan.is_unimpaired() {
        let note = "zero delay: the delays in the lab file were not injected".to_owned();
        (plan.zero_delay(), Some(note))
    } else {
        (plan, None)
    }
}

/// The backend for `plan` given the user's `choice` and the kernel's `netem`
/// (`None`: not probed, as [`needs_netem`] allows): `auto` takes none for a
/// lab with nothing to inject, netem where the kernel has it, else the emulator.
pub fn settle(
    choice: BackendChoice,
    plan: &Plan,
    netem: Option<&NetemSupport>,
) -> Result<BackendKind, BackendRefusal> {
    let changes = plan.timeline.events.iter().find(|e| e.change.is_link());
    let netem = netem == Some(&NetemSupport::Available);
    let duplicating = duplicating_in_tree(plan);
    let kind = match choice {
        BackendChoice::None => BackendKind::None,
        BackendChoice::Auto if plan.is_unimpaired() && changes.is_none() => BackendKind::None,
        BackendChoice::Auto if netem && duplicating.is_none() => BackendKind::Netem,
        BackendChoice::Auto | BackendChoice::Emulator => BackendKind::Emulator,
        BackendChoice::Netem if !netem => return Err(BackendRefusal::NoNetem),
        BackendChoice::Netem => match duplicating {
            Some(what) => return Err(BackendRefusal::DuplicateInTree(what)),
            None => BackendKind::Netem,
        },
    };
    match changes {
        Some(event) if kind == BackendKind::None => {
            Err(BackendRefusal::CannotChange(event.change.describe()))
        }
        _ => Ok(kind),
    }
}

/// What duplicates frames in a lab whose netem leaves share a qdisc tree
/// per node (a lab with `[[pair]]`s), in any phase.
fn duplicating_in_tree(plan: &Plan) -> Option<String> {
    if !plan.per_pair {
        return None;
    }
    let nodes = plan
        .nodes
        .iter()
        .filter(|n| n.link.duplicate.is_some())
        .map(|n| format!("{}'s link", n.name));
    let pairs = plan
        .expected
        .iter()
        .filter(|p| p.impairment.duplicate.is_some())
        .map(|p| format!("{} -> {}", p.from, p.to));
    let phases = plan.timeline.phases.iter().flat_map(|phase| {
        phase.pairs.iter().filter_map(|p| match p.state {
            PairState::Linked(link) if link.duplicate.is_some() => {
                Some(format!("{} -> {} (after an event)", p.from, p.to))
            }
            _ => None,
        })
    });
    nodes.chain(pairs).chain(phases).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAYED: &str =
        "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n[[node]]\nname = \"b\"\n";
    const FLAT: &str = "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";

    #[test]
    fn netem_is_not_given_a_duplicating_leaf_beside_others() {
        let paired = Plan::from_text(&format!(
            "{FLAT}[[pair]]\nfrom = \"a\"\nto = \"b\"\ndelay = \"5ms\"\nduplicate = 0.01\n"
        ));
        let yes = NetemSupport::Available;
        let refusal = settle(BackendChoice::Netem, &paired, Some(&yes));
        assert!(
            matches!(&refusal, Err(BackendRefusal::DuplicateInTree(what)) if what == "a -> b"),
            "{refusal:?}"
        );
        assert_eq!(
            settle(BackendChoice::Auto, &paired, Some(&yes)),
            Ok(BackendKind::Emulator)
        );
        // On a node's link, netem is alone in each root: fine.
        let linked = Plan::from_text(&format!("{DELAYED}duplicate = 0.01\n"));
        assert_eq!(
            settle(BackendChoice::Netem, &linked, Some(&yes)),
            Ok(BackendKind::Netem)
        );
    }

    #[test]
    fn the_emulator_takes_every_shape() {
        let shaped = Plan::from_text(&format!(
            "{DELAYED}delay = \"10ms\"\njitter = \"5ms\"\ndistribution = \"pareto\"\ndelay_correlation = 0.25\n\
             loss_model = {{ state = [0.01, 0.3] }}\nduplicate = 0.01\nreorder = 0.25\n\
             reorder_gap = 5\ncorrupt = 0.001\nrate = \"10mbit\"\nlimit = 100\n\
             slot = {{ min = \"1ms\", max = \"2ms\" }}\n"
        ));
        assert_eq!(
            settle(BackendChoice::Emulator, &shaped, None),
            Ok(BackendKind::Emulator)
        );
        let netem = NetemSupport::Available;
        assert_eq!(
            settle(BackendChoice::Auto, &shaped, Some(&netem)),
            Ok(BackendKind::Netem)
        );
    }

    #[test]
    fn auto_takes_none_netem_or_the_emulator() {
        let (delayed, flat) = (Plan::from_text(DELAYED), Plan::from_text(FLAT));
        let (yes, no) = (NetemSupport::Available, NetemSupport::Missing);
        let auto = BackendChoice::Auto;
        assert_eq!(settle(auto, &flat, Some(&yes)), Ok(BackendKind::None));
        assert_eq!(settle(auto, &delayed, Some(&yes)), Ok(BackendKind::Netem));
        assert_eq!(settle(auto, &delayed, Some(&no)), Ok(BackendKind::Emulator));
        assert_eq!(
            settle(BackendChoice::Netem, &delayed, Some(&no)),
            Err(BackendRefusal::NoNetem)
        );
    }

    #[test]
    fn netem_is_probed_only_when_the_answer_depends_on_it() {
        let (delayed, flat) = (Plan::from_text(DELAYED), Plan::from_text(FLAT));
        let cut = Plan::from_text(&format!(
            "{FLAT}[[event]]\nat = \"1s\"\naction = \"cut\"\nnode = \"a\"\n"
        ));
        assert!(!needs_netem(BackendChoice::Auto, &flat));
        assert!(needs_netem(BackendChoice::Auto, &delayed));
        assert!(needs_netem(BackendChoice::Auto, &cut));
        assert!(needs_netem(BackendChoice::Netem, &flat));
        assert!(!needs_netem(BackendChoice::None, &delayed));
        assert!(!needs_netem(BackendChoice::Emulator, &delayed));
        // Not probed: what needs no probe still settles.
        assert_eq!(
            settle(BackendChoice::Auto, &flat, None),
            Ok(BackendKind::None)
        );
    }

    #[test]
    fn a_timeline_that_changes_links_needs_a_backend_that_can() {
        let cut = Plan::from_text(&format!(
            "{FLAT}[[event]]\nat = \"1s\"\naction = \"cut\"\nnode = \"a\"\n"
        ));
        let no = NetemSupport::Missing;
        assert_eq!(
            settle(BackendChoice::Auto, &cut, Some(&no)),
            Ok(BackendKind::Emulator)
        );
        assert!(matches!(
            settle(BackendChoice::None, &cut, Some(&no)),
            Err(BackendRefusal::CannotChange(_))
        ));
    }
}
