//! The probe over a built lab: every ordered pair the plan expects, from
//! each node's own namespace, sent as the plan's `[verify] link` says.

use tokio_util::sync::CancellationToken;

use super::record::PairRecord;
use super::{measure, Endpoint, Probe, ProbeError, ProbeSettings, PROBE_PORT};
use crate::lab::builder::node_netns;
use crate::lab::builder::state::LabDir;
use crate::lab::plan::{probing, LinkProbing, Plan};

/// How the probe sends over `plan`'s links: as `probing` says, receivers
/// listening as long as its longest path takes.
pub fn settings(plan: &Plan, probing: &LinkProbing) -> ProbeSettings {
    ProbeSettings {
        rate: f64::from(probing.rate),
        duration: probing.duration,
        payload_bytes: usize::from(probing.size),
        drain: probing::drain(plan),
        port: PROBE_PORT,
    }
}

/// Which ordered pairs to probe: those from `from` and to `to`, when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairSelection {
    /// Only pairs this node sends.
    pub from: Option<String>,
    /// Only pairs this node receives.
    pub to: Option<String>,
}

impl PairSelection {
    /// Whether the pair `from -> to` is selected.
    pub fn holds(&self, from: &str, to: &str) -> bool {
        self.from.as_deref().is_none_or(|f| f == from) && self.to.as_deref().is_none_or(|t| t == to)
    }
}

/// Probes the selected ordered pairs of the lab in `dir` (each node's
/// namespace checked against the one it made) as `probing` says; blocks
/// until done or cancelled, so call it off the async workers.
pub fn measure_lab(
    dir: &LabDir,
    probing: &LinkProbing,
    selection: &PairSelection,
    cancel: &CancellationToken,
) -> Result<Vec<PairRecord>, ProbeError> {
    let plan = &dir.state.plan;
    let endpoints = plan
        .nodes
        .iter()
        .map(|n| {
            let netns = node_netns(dir, &n.netns).map_err(|source| ProbeError::Namespace {
                node: n.name.clone(),
                source,
            })?;
            Ok(Endpoint {
                node: n.name.clone(),
                netns,
                address: n.address,
            })
        })
        .collect::<Result<Vec<_>, ProbeError>>()?;
    let index = |name: &str| plan.nodes.iter().position(|n| n.name == name);
    let probes: Vec<Probe> = plan
        .expected
        .iter()
        .filter(|p| selection.holds(&p.from, &p.to))
        .filter_map(|p| {
            Some(Probe {
                from: index(&p.from)?,
                to: index(&p.to)?,
            })
        })
        .collect();
    measure(
        &endpoints,
        &probes,
        &settings(&dir.state.judged_plan(), probing),
        cancel,
    )
}
