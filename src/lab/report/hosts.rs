//! The part of a report about a lab over several hosts: where the nodes
//! live, the underlay between the hosts, the pairs across them, the hosts lost.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::lab::judge::delays::{PairResult, PairVerdict};
use crate::lab::plan::hosts::UnderlayDelay;
use crate::lab::plan::Plan;

/// The part of a report about the hosts a lab spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostsReport {
    /// Each host and its nodes.
    pub placement: Vec<(String, Vec<String>)>,
    /// The measured one-way underlay delay of each host pair, added to the
    /// expected delay of every pair across it.
    pub underlay: Vec<UnderlayDelay>,
    /// Ordered pairs whose ends live on different hosts.
    pub cross_pairs: Vec<(String, String)>,
    /// Hosts lost while the lab was judged, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
}

impl HostsReport {
    /// The hosts part of `plan`'s report; `lost` names hosts that stopped answering.
    pub fn new(plan: &Plan, lost: Vec<String>) -> HostsReport {
        let host = |node: &str| plan.node(node).and_then(|n| n.host.clone());
        HostsReport {
            placement: plan
                .hosts
                .iter()
                .map(|h| {
                    let nodes = plan
                        .nodes
                        .iter()
                        .filter(|n| n.host.as_deref() == Some(h.name.as_str()))
                        .map(|n| n.name.clone())
                        .collect();
                    (h.name.clone(), nodes)
                })
                .collect(),
            underlay: plan.underlay.clone(),
            cross_pairs: plan
                .expected
                .iter()
                .filter(|p| host(&p.from) != host(&p.to))
                .map(|p| (p.from.clone(), p.to.clone()))
                .collect(),
            lost,
        }
    }

    /// Lines for the text report.
    pub(super) fn render(&self, pairs: &[PairResult]) -> String {
        let mut out = String::new();
        for (host, nodes) in &self.placement {
            let _ = writeln!(out, "  host {host}: {}", nodes.join(", "));
        }
        for u in &self.underlay {
            let _ = writeln!(
                out,
                "  underlay {} -> {}: {:.3} ms, clock {:+.3} ms (added to each pair across it, whose tolerance grows by the delay: the clocks are known to half a round trip)",
                u.from,
                u.to,
                u.delay.as_secs_f64() * 1e3,
                u.clock * 1e3
            );
        }
        let cross: Vec<&PairResult> = pairs
            .iter()
            .filter(|p| {
                self.cross_pairs
                    .iter()
                    .any(|(f, t)| *f == p.from && *t == p.to)
            })
            .collect();
        let passed = cross
            .iter()
            .filter(|p| p.verdict == PairVerdict::Pass)
            .count();
        let _ = writeln!(
            out,
            "  cross-host pairs: {passed} of {} pass; same-host pairs: {} of {} pass",
            cross.len(),
            pairs
                .iter()
                .filter(|p| p.verdict == PairVerdict::Pass)
                .count()
                - passed,
            pairs.len() - cross.len()
        );
        for lost in &self.lost {
            let _ = writeln!(out, "  LOST {lost}");
        }
        out
    }
}
