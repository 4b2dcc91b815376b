//! The `sdss lab` commands that know a lab may span hosts: `agent`, and
//! `down`, `verify` and `status`, which reach every host of such a lab.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tokio::io::BufReader;
use tokio_util::sync::CancellationToken;

use super::name::LabArg;
use crate::lab::builder::state::StateRoot;
use crate::lab::builder::teardown;
use crate::lab::hosts::{agent as serve, coordinator, RemoteExec};
use crate::lab::lifecycle;
use crate::lab::plan::Plan;
use crate::lab::report::progress::Console;
use crate::lab::report::LabPhase;
use crate::lab::report::{LabStatus, Report};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `lab agent`: one session with a coordinator on stdin and stdout.
pub(super) fn agent(root: &StateRoot) -> Result<ExitCode> {
    let sdss = std::env::current_exe().context("locating the sdss executable")?;
    runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        let input = BufReader::new(tokio::io::stdin());
        serve::serve(root, sdss, input, tokio::io::stdout(), &cancel).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The plan of a lab when it spans hosts: from the lab's state, or from its
/// file when a killed `up` left none here.
fn spanning_plan(root: &StateRoot, lab: &LabArg) -> Result<Option<Plan>> {
    let plan = match lifecycle::running_plan(root, lab.name())? {
        Some(plan) => Some(plan),
        None => lab.file_plan().cloned(),
    };
    Ok(plan.filter(Plan::spans_hosts))
}

/// `lab down`: here, or on every host of a lab over several.
pub(super) fn down(root: &StateRoot, arg: &str, exec: &RemoteExec) -> Result<()> {
    let named = LabArg::parse(arg)?;
    let lab = named.name();
    if let Some(plan) = spanning_plan(root, &named)? {
        let progress = Console::new(lab, false);
        let done = runtime()?
            .block_on(coordinator::down(root, &plan, exec, &progress.printer()))
            .with_context(|| {
                format!("taking lab {lab} down (its state stays: run `sdss lab down {arg}` again)")
            })?;
        eprintln!(
            "sdss lab {lab}: down on {} hosts ({} had a share; {} processes stopped, {} namespaces removed)",
            plan.hosts.len(),
            done.found,
            done.stopped,
            done.removed
        );
        return Ok(());
    }
    let outcome =
        teardown::teardown(root, lab).with_context(|| format!("taking lab {lab} down"))?;
    if !outcome.found {
        eprintln!("sdss lab {lab}: not up, nothing to remove");
    } else {
        eprintln!(
            "sdss lab {lab}: down ({} processes stopped, {} namespaces removed)",
            outcome.stopped,
            outcome.removed.len()
        );
    }
    if !outcome.foreign.is_empty() {
        eprintln!(
            "sdss lab {lab}: left alone (not created by this lab): {}",
            outcome.foreign.join(", ")
        );
    }
    Ok(())
}

/// `lab verify`: from the output gathered again from every host when the lab spans hosts.
pub(super) fn verify(root: &StateRoot, lab: &str, exec: &RemoteExec) -> Result<Report> {
    match lifecycle::running_plan(root, lab)? {
        Some(plan) if plan.spans_hosts() => {
            let progress = Console::new(lab, false);
            Ok(runtime()?.block_on(coordinator::verify_again(root, lab, exec, &progress))?)
        }
        _ => Ok(lifecycle::verify(root, lab)?),
    }
}

/// `lab status`: a lab over several hosts counts the nodes running on each;
/// a host that does not answer makes the lab `degraded` (and is named on stderr).
pub(super) fn across_hosts(
    root: &StateRoot,
    labs: &mut [LabStatus],
    exec: &RemoteExec,
) -> Result<()> {
    for status in labs.iter_mut() {
        let Some(plan) = lifecycle::running_plan(root, &status.lab)? else {
            continue;
        };
        if !plan.spans_hosts() {
            continue;
        }
        let progress = Console::new(&status.lab, true);
        let hosts = runtime()?.block_on(coordinator::status(&plan, exec, &progress.printer()));
        status.nodes_running = 0;
        for (host, result) in hosts {
            match result {
                Ok((phase, running, _)) => {
                    status.nodes_running += running;
                    if phase != LabPhase::Running {
                        status.phase = LabPhase::Degraded;
                        eprintln!("sdss lab {}: host {host}: {phase}", status.lab);
                    }
                }
                Err(e) => {
                    status.phase = LabPhase::Degraded;
                    eprintln!("sdss lab {}: {e}", status.lab);
                }
            }
        }
    }
    Ok(())
}

/// Refuses, with the way to do it instead, what needs a lab's namespaces on
/// this machine when the lab lives on other hosts. (Its nodes' output is
/// here: `up` and `verify` gather it, and `lab logs` prints that.)
pub(super) fn here_only(root: &StateRoot, lab: &str, node: Option<&str>, why: &str) -> Result<()> {
    let Some(plan) = lifecycle::running_plan(root, lab)? else {
        return Ok(());
    };
    if !plan.spans_hosts() {
        return Ok(());
    }
    let host = node
        .and_then(|n| plan.host_of(n))
        .map(|h| {
            format!(
                " (node {} lives on host {}, {})",
                node.unwrap_or_default(),
                h.name,
                h.ssh
            )
        })
        .unwrap_or_default();
    bail!(
        "lab {lab} spans hosts{host}: {why}; run it on that host, where the agent keeps the lab's state, or use `sdss lab verify {lab}`"
    )
}
