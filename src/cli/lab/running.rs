//! The commands that read a lab while it runs (`watch`, `metrics`, `logs`,
//! `verify --wait`): each until it is done or Ctrl-C / SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::commands::wait_for_signal;
use super::name::lab_name;
use crate::lab::builder::state::StateRoot;
use crate::lab::hosts::RemoteExec;
use crate::lab::lifecycle;
use crate::lab::report::Report;
use crate::lab::watch::WatchOptions;

/// Runs `work` on a runtime of its own, with a token that Ctrl-C or SIGTERM
/// cancels: the one way these commands stop.
fn until_signal<F: Future>(work: impl FnOnce(CancellationToken) -> F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        work(cancel).await
    }))
}

/// `lab watch`: until `q`, Ctrl-C, SIGTERM or `count` refreshes.
pub(super) fn watch(root: StateRoot, lab: &str, count: Option<u64>) -> Result<ExitCode> {
    let lab = lab_name(lab)?;
    let options = WatchOptions {
        every: std::time::Duration::from_secs(1),
        count,
    };
    let watched = lab.clone();
    until_signal(|cancel| async move {
        crate::lab::watch::watch(root, watched, &options, &cancel).await
    })?
    .with_context(|| format!("watching lab {lab}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `lab metrics`: serves until Ctrl-C or SIGTERM (`lab down` sends it).
pub(super) fn metrics(root: StateRoot, lab: &str, listen: SocketAddr) -> Result<ExitCode> {
    until_signal(|cancel| async move {
        let endpoint = crate::lab::watch::metrics::bind(root, lab.to_owned(), listen).await?;
        let addr = endpoint.local_addr().unwrap_or(listen);
        eprintln!("sdss lab {lab}: metrics at http://{addr}/metrics; Ctrl-C stops");
        endpoint.serve(cancel).await;
        anyhow::Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
}

/// `lab logs`: until shown, or following, until Ctrl-C or SIGTERM.
pub(super) fn logs(
    root: StateRoot,
    lab: &str,
    node: &str,
    options: crate::lab::logs::LogsOptions,
) -> Result<ExitCode> {
    until_signal(|cancel| async move {
        crate::lab::logs::logs(&root, lab, node, options, &cancel, std::io::stdout()).await
    })?
    .with_context(|| format!("reading the output of lab {lab} node {node}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `lab verify --wait`: the report once every pair has its samples, or
/// once `timeout` (default: the lab's time limit) has passed; `None` when
/// Ctrl-C or SIGTERM stopped the wait.
pub(super) fn verify_when_measured(
    root: &StateRoot,
    lab: &str,
    timeout: Option<std::time::Duration>,
    exec: &RemoteExec,
) -> Result<Option<Report>> {
    let plan = lifecycle::running_plan(root, lab)?
        .with_context(|| format!("verifying lab {lab}: lab {lab} is not up"))?;
    let timeout = timeout.unwrap_or(plan.verify.time_limit);
    // The signal is awaited on a runtime of its own: the waiting below
    // blocks this thread between grades.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = wait_for_signal() => on_signal.cancel(),
                _ = on_signal.cancelled() => {}
            }
        })
    });
    let stop = |result| {
        cancel.cancel();
        let _ = signals.join();
        result
    };
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let report = match super::hosts::verify(root, lab, exec) {
            Ok(report) => report,
            Err(e) => return stop(Err(e.context(format!("verifying lab {lab}")))),
        };
        if report.converged {
            return stop(Ok(Some(report)));
        }
        if started.elapsed() >= timeout {
            eprintln!(
                "sdss lab {lab}: not every pair had its samples after {}: graded as it is",
                crate::units::format_duration(timeout)
            );
            return stop(Ok(Some(report)));
        }
        if !said {
            let done = report
                .pairs
                .iter()
                .filter(|p| p.samples >= report.samples as usize)
                .count();
            eprintln!(
                "sdss lab {lab}: waiting for every pair's samples ({done} of {} pairs have them)",
                report.pairs.len()
            );
            said = true;
        }
        // Waits for the next look, or for Ctrl-C.
        for _ in 0..5 {
            if cancel.is_cancelled() {
                eprintln!("sdss lab {lab}: interrupted; the lab stays up");
                return stop(Ok(None));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
