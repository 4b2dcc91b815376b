//! Calibration (`[verify] calibrate`): the lab starts with every pair at a
//! small known delay, each pair's floor (what it measures beyond that) is
//! taken, then the links move to the lab's own delays. That needs one static
//! set of delays on one machine.

use std::time::Duration;

use thiserror::Error;

use super::backend::BackendKind;
use super::impairment::Impairment;
use super::Plan;

/// The delay every pair has while its floor is measured (a pair whose own is
/// less keeps its own). Not zero: at zero delay the timestamp arrives while
/// the measuring node still handles its connection's completion, and the
/// floor would include that; behind a delay, as later, it is already reading.
pub const DELAY: Duration = Duration::from_millis(1);

/// The lab as calibration runs it: each pair at [`DELAY`] or its own delay if
/// less, without jitter or loss; the nodes' own links (broadcasts) at zero.
pub fn phase(plan: &Plan) -> Plan {
    let mut calibrating = plan.clone();
    for node in &mut calibrating.nodes {
        node.link = Impairment::default();
    }
    let remote = calibrating
        .remote_nodes
        .iter_mut()
        .flat_map(|r| &mut r.pairs);
    for pair in calibrating.expected.iter_mut().chain(remote) {
        pair.impairment = Impairment {
            delay: pair.impairment.delay.min(DELAY),
            ..Impairment::default()
        };
    }
    calibrating
}

/// Why a lab cannot be calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CalibrationRefusal {
    /// The `none` backend injects nothing: there is nothing to calibrate against.
    #[error(
        "calibrate: the none delay backend injects no delay, so there is no floor to take off it"
    )]
    NoDelays,
    /// Its delays change on a timeline, whose phases are judged from the start.
    #[error("calibrate: the lab has a timeline; calibrate a lab without [[event]] and [[expect]]")]
    Timeline,
    /// A graded node is watched for a fixed scenario from the start.
    #[error(
        "calibrate: the lab grades a node (grade = true), whose scenario starts with the nodes"
    )]
    Grading,
    /// Over several hosts, the floor includes the underlay, measured apart.
    #[error(
        "calibrate: the lab spans several hosts ([[host]]), whose underlay is measured instead"
    )]
    Hosts,
}

/// Whether `plan` can be calibrated on `backend` (`Ok` when not asked to be).
pub fn check(plan: &Plan, backend: BackendKind) -> Result<(), CalibrationRefusal> {
    if !plan.verify.calibrate {
        return Ok(());
    }
    if backend == BackendKind::None {
        Err(CalibrationRefusal::NoDelays)
    } else if !plan.timeline.is_empty() {
        Err(CalibrationRefusal::Timeline)
    } else if plan.grading.is_some() {
        Err(CalibrationRefusal::Grading)
    } else if !plan.hosts.is_empty() {
        Err(CalibrationRefusal::Hosts)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str =
        "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n[[node]]\nname = \"b\"\n";

    #[test]
    fn a_static_lab_calibrates_on_a_delaying_backend_only() {
        let plan = Plan::from_text(LAB);
        assert_eq!(check(&plan, BackendKind::None), Ok(()), "not asked");
        let plan = plan.calibrated();
        assert_eq!(check(&plan, BackendKind::Emulator), Ok(()));
        assert_eq!(check(&plan, BackendKind::Netem), Ok(()));
        assert_eq!(
            check(&plan, BackendKind::None),
            Err(CalibrationRefusal::NoDelays)
        );
    }

    #[test]
    fn calibration_runs_every_pair_at_a_millisecond_or_less() {
        let plan = Plan::from_text(&format!(
            "{LAB}[[pair]]\nfrom = \"b\"\nto = \"a\"\ndelay = \"300us\"\njitter = \"100us\"\n"
        ))
        .calibrated();
        let calibrating = phase(&plan);
        let delay = |from, to| calibrating.expected(from, to).unwrap().impairment;
        assert_eq!(delay("a", "b").delay, DELAY, "1 ms of its own, as much");
        assert_eq!(delay("b", "a").delay, Duration::from_micros(300));
        assert_eq!(delay("b", "a").jitter, Duration::ZERO);
        assert!(calibrating.nodes.iter().all(|n| n.link.is_none()));
        assert!(calibrating.per_pair);
    }

    #[test]
    fn a_timeline_is_refused() {
        let plan = Plan::from_text(&format!(
            "{LAB}[verify]\ncalibrate = true\n[[event]]\nat = \"1s\"\naction = \"kill\"\nnode = \"b\"\n"
        ));
        assert!(plan.verify.calibrate && plan.per_pair);
        assert_eq!(
            check(&plan, BackendKind::Emulator),
            Err(CalibrationRefusal::Timeline)
        );
    }
}
