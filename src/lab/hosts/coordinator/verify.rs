//! `verify` over several hosts: every node's output gathered again and judged.

use std::collections::HashMap;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{gather, lock, Heard};
use crate::lab::builder::state::{StateError, StateRoot};
use crate::lab::hosts::remote::{RemoteExec, Session};
use crate::lab::hosts::wire::Request;
use crate::lab::judge::delays::verify;
use crate::lab::lifecycle::report;
use crate::lab::report::progress::Console;
use crate::lab::report::{HostsReport, Report};
use crate::lab::scenario::stream::Observations;
use crate::lab::LabError;
use crate::node::clock::wall_now;

/// Gathers every host's node output again (from the start) and judges it: `lab verify`.
pub async fn verify_again(
    root: &StateRoot,
    lab: &str,
    exec: &RemoteExec,
    progress: &Console,
) -> Result<Report, LabError> {
    let dir = root
        .open(lab)?
        .ok_or_else(|| StateError::NotUp(lab.to_owned()))?;
    let plan = dir.state.judged_plan().into_owned();
    for node in &plan.nodes {
        let _ = tokio::fs::remove_file(dir.stdout_log(&node.name)).await;
    }
    let heard = Heard::default();
    let never = CancellationToken::new();
    let paths: HashMap<String, std::path::PathBuf> = plan
        .nodes
        .iter()
        .map(|n| (n.name.clone(), dir.stdout_log(&n.name)))
        .collect();
    let results = join_all(plan.hosts.iter().map(|host| async {
        let mut session = Session::open(exec, host, progress.printer())?;
        session
            .send(&Request::Logs {
                lab: plan.lab.clone(),
                from: Vec::new(),
                follow: false,
            })
            .await?;
        let result = gather(&mut session, &paths, &heard, None, &never).await;
        session.close().await;
        result
    }))
    .await;
    let lost: Vec<(String, String)> = plan
        .hosts
        .iter()
        .zip(results)
        .filter_map(|(h, r)| r.err().map(|e| (h.name.clone(), e.to_string())))
        .collect();
    let exited = lock(&heard.exited).clone();
    let mut observations = HashMap::new();
    for node in plan.nodes.iter().filter(|n| n.graded) {
        let text = tokio::fs::read(dir.stdout_log(&node.name))
            .await
            .unwrap_or_default();
        let mut seen = Observations::parse(&String::from_utf8_lossy(&text));
        let host = node.host.clone().unwrap_or_default();
        if let Some((_, why)) = lost.iter().find(|(h, _)| *h == host) {
            seen.exited = Some(format!("its host {host} was lost: {why}"));
        } else if exited.contains(&node.name) {
            seen.exited = Some("not running".to_owned());
        }
        observations.insert(node.name.clone(), seen);
    }
    let verification = verify(&plan, &observations);
    let elapsed = dir.state.nodes_started_at.map_or(0.0, |t| wall_now() - t);
    let lost = lost
        .into_iter()
        .map(|(h, why)| format!("host {h}: {why}"))
        .collect();
    Ok(report(&dir, verification, elapsed).with_hosts(HostsReport::new(&plan, lost)))
}
