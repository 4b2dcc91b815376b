//! `down` and `status` over several hosts.

use std::time::Duration;

use futures::future::join_all;

use super::SpanError;
use crate::lab::builder::state::{StateError, StateRoot};
use crate::lab::hosts::remote::{HostError, RemoteExec, Session};
use crate::lab::hosts::wire::{Reply, Request};
use crate::lab::plan::hosts::HostPlan;
use crate::lab::plan::Plan;
use crate::lab::report::progress::Printer;
use crate::lab::report::LabPhase;

/// Attempts `down` makes per host before reporting it unreachable.
const DOWN_ATTEMPTS: u32 = 3;

/// What `down` did on every host.
#[derive(Debug, Default)]
pub struct DownAcross {
    /// Hosts that had a share.
    pub found: usize,
    /// Processes stopped, over every host.
    pub stopped: usize,
    /// Namespaces removed, over every host.
    pub removed: usize,
}

/// Takes every host's share down, each retried before it is reported
/// unreachable; the coordinator's own state goes only once every host is done,
/// so `down` can be run again for a host that was away.
pub async fn down(
    root: &StateRoot,
    plan: &Plan,
    exec: &RemoteExec,
    printer: &Printer,
) -> Result<DownAcross, SpanError> {
    let results = join_all(plan.hosts.iter().map(|host| async {
        let mut last = None;
        for attempt in 1..=DOWN_ATTEMPTS {
            match down_on(exec, &plan.lab, host, printer.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    printer.line(&format!("{e} (attempt {attempt} of {DOWN_ATTEMPTS})"));
                    last = Some(e);
                }
            }
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        Err(last.unwrap_or_else(|| HostError::Failed {
            host: host.name.clone(),
            message: "not attempted".to_owned(),
        }))
    }))
    .await;
    let mut across = DownAcross::default();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((found, stopped, removed)) => {
                across.found += usize::from(found);
                across.stopped += stopped;
                across.removed += removed;
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return Err(SpanError::Hosts(failures));
    }
    match root.remove(&plan.lab) {
        Ok(()) | Err(StateError::NotUp(_)) => Ok(across),
        Err(e) => Err(e.into()),
    }
}

async fn down_on(
    exec: &RemoteExec,
    lab: &str,
    host: &HostPlan,
    printer: Printer,
) -> Result<(bool, usize, usize), HostError> {
    let request = Request::Down {
        lab: lab.to_owned(),
    };
    let mut session = Session::open(exec, host, printer)?;
    match session.ask(&request).await? {
        Reply::Down {
            found,
            stopped,
            removed,
        } => Ok((found, stopped, removed)),
        other => Err(session.unexpected(&other)),
    }
}

/// Each host's view of its share: (host, phase, nodes running, nodes), or why it did not answer.
pub async fn status(
    plan: &Plan,
    exec: &RemoteExec,
    printer: &Printer,
) -> Vec<(String, Result<(LabPhase, usize, usize), HostError>)> {
    join_all(plan.hosts.iter().map(|host| async {
        let request = Request::Status {
            lab: plan.lab.clone(),
        };
        let result = async {
            let mut session = Session::open(exec, host, printer.clone())?;
            match session.ask(&request).await? {
                Reply::Status {
                    phase,
                    nodes_running,
                    nodes,
                } => Ok((phase, nodes_running, nodes)),
                other => Err(session.unexpected(&other)),
            }
        }
        .await;
        (host.name.clone(), result)
    }))
    .await
}
