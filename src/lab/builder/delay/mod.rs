//! How delay gets onto the lab's links: a [`DelayBackend`] with a zero-delay
//! implementation, the userspace link emulator (`super::emulator`), which a
//! kernel without `sch_netem` needs, and netem ([`netem`]); and the live
//! changes of a running lab's links, through whichever it has.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::lab::builder::emulator::{EmulatorSpec, PortSpec, Stages, UplinkSpec};
use crate::lab::plan::backend::BackendKind;
use crate::lab::plan::impairment::{Impairment, CUT};
use crate::lab::plan::segment::VXLAN_PORT;
use crate::lab::plan::timeline::{PairState, Phase};
use crate::lab::plan::{in_series, Plan, NODE_IFNAME};

pub mod netem;

pub use netem::{
    netem_args, netem_changes, netem_commands, netem_plan_changes, Netem, Tc, TcCommand, TcError,
};
/// Failures of a delay backend.
#[derive(Debug, Error)]
pub enum DelayError {
    /// The kernel lost netem between the probe and its use.
    #[error("the kernel has no sch_netem")]
    NoNetem,
    /// tc failed.
    #[error(transparent)]
    Tc(#[from] TcError),
    /// The emulator daemon failed to start.
    #[error("the link emulator did not start: {0}")]
    Emulator(String),
    /// A live link change did not reach the emulator.
    #[error("the link emulator did not take a link change: {0}")]
    EmulatorChange(String),
}

/// Puts a plan's impairments onto the links of a lab whose namespaces and links exist.
pub trait DelayBackend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Whether the backend makes the nodes' `eth0` itself (no bridge, no veth).
    fn provides_links(&self) -> bool {
        false
    }
    /// Applies every impairment of the plan to links that exist.
    fn apply(&self, plan: &Plan) -> Result<(), DelayError>;
    /// Moves a running lab's links as `change` says: the live path of a
    /// timeline's link events and of calibration's switch.
    fn change(&self, change: &LinkChange<'_>) -> Result<(), DelayError>;
}

/// The backend of kind `kind` for a lab whose emulator (if any) listens on
/// `control`.
pub fn backend(kind: BackendKind, control: std::path::PathBuf) -> Box<dyn DelayBackend> {
    match kind {
        BackendKind::None => Box::new(NoDelay),
        BackendKind::Netem => Box::new(Netem::default()),
        BackendKind::Emulator => Box::new(Emulator { control }),
    }
}

/// A change of a running lab's links, from which each backend takes what it
/// needs: the emulator the whole new matrix, netem the commands for what differs.
#[derive(Debug, Clone, Copy)]
pub enum LinkChange<'a> {
    /// From one phase of the plan's timeline to another.
    Phases {
        /// The lab's plan.
        plan: &'a Plan,
        /// The phase in force.
        before: &'a Phase,
        /// The phase to move to.
        after: &'a Phase,
    },
    /// From what one plan injects to what another does, on the same nodes
    /// (calibration's phase, then the lab's own).
    Plans {
        /// What is injected now.
        before: &'a Plan,
        /// What to inject.
        after: &'a Plan,
    },
}

impl LinkChange<'_> {
    /// The emulator's matrix after the change.
    pub fn matrix(&self) -> Vec<Vec<Stages>> {
        match *self {
            LinkChange::Phases { plan, after, .. } => wire_matrix(plan, Some(after)),
            LinkChange::Plans { after, .. } => wire_matrix(after, None),
        }
    }

    /// The `tc` commands that make the change on netem.
    pub fn netem_commands(&self) -> Vec<TcCommand> {
        match *self {
            LinkChange::Phases {
                plan,
                before,
                after,
            } => netem_changes(plan, before, after),
            LinkChange::Plans { before, after } => netem_plan_changes(before, after),
        }
    }
}

/// Injects nothing: for labs without delays, and zero-delay runs of any lab.
#[derive(Debug, Default)]
pub struct NoDelay;

impl DelayBackend for NoDelay {
    fn kind(&self) -> BackendKind {
        BackendKind::None
    }

    fn apply(&self, _plan: &Plan) -> Result<(), DelayError> {
        Ok(())
    }

    fn change(&self, _change: &LinkChange<'_>) -> Result<(), DelayError> {
        Ok(())
    }
}

/// The userspace link emulator (`build/emulator/`), run as the daemon
/// `sdss lab-emulator SPEC` in the switch namespace: it creates each node's
/// `eth0` as a TAP device (the links, so the build starts it first, as a
/// process it records) and forwards frames with each ordered pair's
/// impairment, which `apply` gives it on its control socket, the same way a
/// timeline changes them live.
#[derive(Debug)]
pub struct Emulator {
    /// The daemon's control socket.
    pub control: std::path::PathBuf,
}

impl DelayBackend for Emulator {
    fn kind(&self) -> BackendKind {
        BackendKind::Emulator
    }

    fn provides_links(&self) -> bool {
        true
    }

    fn apply(&self, plan: &Plan) -> Result<(), DelayError> {
        send_matrix(&self.control, &wire_matrix(plan, None))
    }

    fn change(&self, change: &LinkChange<'_>) -> Result<(), DelayError> {
        send_matrix(&self.control, &change.matrix())
    }
}

/// The emulator's spec for a plan: one port per node (its namespace's
/// `eth0`); the impairments come through [`DelayBackend::apply`]. A host's
/// share of a lab over several gets an uplink to the other hosts, its socket
/// in this process's namespace (the host's, where the underlay address is).
pub fn emulator_spec(plan: &Plan) -> EmulatorSpec {
    let ports = plan
        .nodes
        .iter()
        .map(|n| PortSpec {
            netns: n.netns.clone(),
            ifname: NODE_IFNAME.to_owned(),
        })
        .collect();
    let mut spec = EmulatorSpec::new(ports, Vec::new());
    spec.uplink = plan.segment.as_ref().map(|segment| UplinkSpec {
        local: SocketAddr::from((segment.local, VXLAN_PORT)),
        vni: segment.vni,
        remotes: segment
            .remotes
            .iter()
            .map(|r| SocketAddr::from((*r, VXLAN_PORT)))
            .collect(),
        netns: Some(format!("/proc/{}/ns/net", std::process::id())),
        nodes: plan.remote_nodes.iter().map(|r| r.address).collect(),
    });
    spec
}

/// What the emulator is told in `phase`, or as the lab starts (`None`): a row
/// per port (this host's nodes, then in a share the other hosts), a column per
/// port, then one per remote node ([`local_stages`]' columns of the remote
/// nodes, which an IPv4 frame to that node takes toward any host).
///
/// A pair of this host's nodes crosses the sender's link, then the
/// receiver's, in two stages, as netem's two root qdiscs without per-pair
/// classes; in per-pair mode each pair is one stage, the pair's whole shape,
/// as netem's one leaf per pair. A pair across hosts is two stages too with
/// per-node links (the sender's link on its host, the receiver's on the
/// other, in the remote host's row), and one stage in per-pair mode (the
/// whole pair on the sender's host).
pub fn wire_matrix(plan: &Plan, phase: Option<&Phase>) -> Vec<Vec<Stages>> {
    let pairs = local_stages(plan, phase);
    let Some(segment) = &plan.segment else {
        return pairs;
    };
    let (here, hosts) = (plan.nodes.len(), segment.remotes.len());
    let columns = here + hosts + plan.remote_nodes.len();
    let mut matrix = Vec::with_capacity(here + hosts);
    for (from, row) in plan.nodes.iter().zip(&pairs) {
        // What is not IPv4 to a remote node (ARP, broadcasts) takes the
        // sender's own link, as netem's default class: none once it is cut
        // off from every node.
        let own = match phase {
            Some(phase) if cut_off(plan, &from.name, phase) => CUT,
            _ => from.link,
        };
        let mut wire = Vec::with_capacity(columns);
        wire.extend_from_slice(&row[..here]);
        wire.extend(std::iter::repeat_n(Stages::from(own), hosts));
        wire.extend_from_slice(&row[here..]);
        matrix.push(wire);
    }
    for _ in 0..hosts {
        // From another host: with per-node links the receiver's link here (its
        // half of the egress model); in per-pair mode nothing, the sender's
        // host applied the whole pair. Host to host never happens.
        let mut row: Vec<Stages> = plan
            .nodes
            .iter()
            .map(|to| {
                if plan.per_pair {
                    Stages::default()
                } else {
                    to.link.into()
                }
            })
            .collect();
        row.resize(columns, CUT.into());
        matrix.push(row);
    }
    matrix
}

/// What this host injects on each ordered pair from one of its nodes (row, in
/// the plan's order) to each destination ([`Plan::destinations`]: its nodes,
/// then in a share the remote ones) in `phase`, or as the lab starts (`None`).
/// A separated pair loses every frame; pairs the phase does not list (the
/// grading probe's) keep the egress model of the nodes' own links. Toward a
/// remote node, per-node links inject the sender's link only (the receiver's
/// host adds its own); per-pair mode the whole pair, which the phases of a
/// share hold as the whole lab's do. Two links in series are one impairment
/// here, their combination ([`in_series`]): what a per-pair netem leaf gets.
fn local_matrix(plan: &Plan, phase: Option<&Phase>) -> Vec<Vec<Impairment>> {
    pairs(plan, phase, in_series)
}

/// [`local_matrix`] for the emulator: two links in series are two stages
/// unless in per-pair mode ([`wire_matrix`]).
fn local_stages(plan: &Plan, phase: Option<&Phase>) -> Vec<Vec<Stages>> {
    pairs(plan, phase, |from, to| {
        if plan.per_pair {
            in_series(from, to).into()
        } else {
            Stages::in_series(*from, *to)
        }
    })
}

/// [`local_matrix`]'s cells, with `series` for a pair that crosses the
/// sender's link and then the receiver's.
fn pairs<C: From<Impairment>>(
    plan: &Plan,
    phase: Option<&Phase>,
    series: impl Fn(&Impairment, &Impairment) -> C,
) -> Vec<Vec<C>> {
    plan.nodes
        .iter()
        .map(|from| {
            plan.destinations()
                .enumerate()
                .map(|(index, (to, _))| {
                    if from.name == to {
                        return Impairment::default().into();
                    }
                    let local = plan.nodes.get(index);
                    if local.is_none() && !plan.per_pair {
                        return from.link.into();
                    }
                    let state = match phase {
                        Some(phase) => phase.pair(&from.name, to),
                        None => plan
                            .pair_from_here(&from.name, to)
                            .map(|p| PairState::Linked(p.impairment)),
                    };
                    let overridden = phase.is_none()
                        && plan
                            .pair_from_here(&from.name, to)
                            .is_some_and(|p| p.overridden);
                    match (state, local) {
                        (Some(PairState::Separated), _) => CUT.into(),
                        // Without per-pair classes a pair is its two links.
                        (_, Some(to)) if !plan.per_pair && !overridden => {
                            series(&from.link, &to.link)
                        }
                        (Some(PairState::Linked(impairment)), _) => impairment.into(),
                        (None, Some(to)) => series(&from.link, &to.link),
                        (None, None) => from.link.into(),
                    }
                })
                .collect()
        })
        .collect()
}

/// Whether `phase` separates `from` from every other node it sends to, here
/// or on other hosts (a cut, not merely a partition): its broadcasts stop too.
fn cut_off(plan: &Plan, from: &str, phase: &Phase) -> bool {
    plan.destinations()
        .filter(|(to, _)| *to != from)
        .all(|(to, _)| phase.pair(from, to) == Some(PairState::Separated))
}

/// Moves a running lab's links as `change` says, through `backend`; returns
/// how long it took to confirm.
pub fn change_links(
    backend: &dyn DelayBackend,
    change: &LinkChange<'_>,
) -> Result<Duration, DelayError> {
    let started = Instant::now();
    backend.change(change)?;
    Ok(started.elapsed())
}

/// Gives the emulator behind `control` a new matrix; returns once it forwards by it.
fn send_matrix(control: &Path, matrix: &[Vec<Stages>]) -> Result<(), DelayError> {
    let line =
        serde_json::to_string(matrix).map_err(|e| DelayError::EmulatorChange(e.to_string()))?;
    let answer = (|| -> std::io::Result<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(control)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer)?;
        Ok(answer)
    })()
    .map_err(|e| DelayError::EmulatorChange(format!("{}: {e}", control.display())))?;
    if answer.trim() == "ok" {
        Ok(())
    } else {
        Err(DelayError::EmulatorChange(answer.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_gets_its_ports_in_the_spec_and_the_impairments_as_a_matrix() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"5ms\"\n[[node]]\nname = \"b\"\n",
        );
        let spec = emulator_spec(&plan);
        assert_eq!(spec.ports[1].netns, "sdss-t-b");
        assert_eq!(spec.ports[1].ifname, "eth0");
        assert!(spec.impairments.is_empty(), "they come through apply");
        // What the lab writes is what the emulator daemon accepts.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(EmulatorSpec::from_json(&json).unwrap(), spec);
        let matrix = wire_matrix(&plan, None);
        assert_eq!(matrix[0][1].first.delay, Duration::from_millis(5));
        assert_eq!(matrix[1][0].first.delay, Duration::from_millis(5));
        assert_eq!(matrix[0][0], Impairment::default());
        // b's link is a wire: a -> b is one stage, a's link.
        assert_eq!(matrix[0][1], plan.nodes[0].link);
    }

    #[test]
    fn a_pair_of_shaped_links_is_two_stages_unless_per_pair() {
        let nodes = "[[node]]\nname = \"a\"\ndelay = \"5ms\"\n\
                     loss_model = { gemodel = [0.01, 0.3, 1.0, 0.0] }\n\
                     [[node]]\nname = \"b\"\ndelay = \"3ms\"\nloss = 0.02\n";
        let plan = Plan::from_text(&format!("name = \"t\"\n{nodes}"));
        assert!(!plan.per_pair);
        let (a, b) = (plan.nodes[0].link, plan.nodes[1].link);
        let matrix = wire_matrix(&plan, None);
        assert_eq!(
            matrix[0][1],
            Stages {
                first: a,
                then: Some(b)
            },
            "a's link, then b's"
        );
        assert_eq!(matrix[1][0].first, b);
        assert_eq!(matrix[1][0].then, Some(a));
        // Netem's leaves, were there any, would take the pair's combination.
        assert_eq!(local_matrix(&plan, None)[0][1], in_series(&a, &b));
        let paired = Plan::from_text(&format!(
            "name = \"t\"\n{nodes}[[pair]]\nfrom = \"a\"\nto = \"b\"\ndelay = \"9ms\"\n"
        ));
        assert!(paired.per_pair);
        let matrix = wire_matrix(&paired, None);
        assert!(matrix.iter().flatten().all(|cell| cell.then.is_none()));
    }
}

#[cfg(test)]
#[path = "share_tests.rs"]
mod share_tests;
