//! Calibration (`[verify] calibrate`): the lab is built in its calibration
//! phase (every pair at 1 ms, `plan::calibration`); once every pair has its
//! samples there, what each measured beyond its delay is its floor (what the
//! kernel's path and the nodes add by themselves), recorded in the lab's
//! state beside its plan (a measurement: the plan stays as it was made) for
//! the judge to subtract and the report to show, and the links move to the
//! lab's own delays, live.

use std::collections::HashMap;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::local::Local;
use super::stream::Observations;
use super::tail::LogTail;
use super::{follow_graded, read_tails, Convergence, POLL};
use crate::lab::builder::delay::{change_links, LinkChange};
use crate::lab::plan::calibration;
use crate::lab::plan::Plan;
use crate::lab::progress::Progress;
use crate::lab::LabError;
use crate::node::event::NodeEvent;

/// Where calibration left the nodes' output: the watch that grades goes on
/// from there, so that no sample taken while calibrating is graded.
#[derive(Debug)]
pub struct Calibrated {
    /// Each graded node's stdout, read up to the switch.
    pub tails: HashMap<String, LogTail>,
    /// What was read up to the switch, but its samples: that the nodes
    /// started and discovered each other still counts.
    pub observations: HashMap<String, Observations>,
    /// When the links took the lab's delays.
    pub switched_at: Instant,
}

/// Measures every pair's floor on a lab built in its calibration phase,
/// records it in the lab's state, and gives the links `told`'s delays (the lab's
/// own, or those of `--inject-from`). A pair not measured by the time limit
/// gets no floor (the report says so); the lab goes on.
pub async fn calibrate(
    here: &mut Local,
    told: &Plan,
    convergence: &dyn Convergence,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<Calibrated, LabError> {
    let plan = here.dir().state.plan.clone();
    let calibrating = calibration::phase(told);
    let deadline = here.built().launched_at + plan.verify.time_limit;
    let here = std::slice::from_mut(here);
    let mut tails = follow_graded(&plan, here);
    let mut seen: HashMap<String, Observations> = HashMap::new();
    progress.step(
        "calibrating: every pair measured at 1 ms",
        plan.expected.len() as u64,
    );
    loop {
        read_tails(here, &mut tails, &mut seen)?;
        let measured = convergence.measured(&calibrating, &seen, None);
        progress.set(measured.complete as u64);
        if measured.converged || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(LabError::Cancelled),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    let floors = convergence.floors(&calibrating, &seen);
    let built = here[0].built();
    built.dir.record(|s| s.floors = floors)?;
    let change = LinkChange::Plans {
        before: &calibrating,
        after: told,
    };
    tokio::task::block_in_place(|| change_links(built.delay.as_ref(), &change))?;
    let switched_at = Instant::now();
    // What the nodes printed until the links changed is not graded; the one
    // exchange per pair that straddles the change is the warm-up's.
    read_tails(here, &mut tails, &mut seen)?;
    for observations in seen.values_mut() {
        observations
            .events
            .retain(|e| !matches!(e, NodeEvent::Neighbor(_)));
    }
    progress.line("calibrated: the links now have the lab's delays");
    Ok(Calibrated {
        tails,
        observations: seen,
        switched_at,
    })
}
