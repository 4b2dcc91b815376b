//! The bodies of `sdss lab`'s commands: each turns its arguments into calls
//! on [`crate::lab`] and its outcome into output and an exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use super::hosts::{across_hosts, here_only};
use super::name::lab_name;
use super::UpArgs;
use crate::lab::builder::launch::LaunchError;
use crate::lab::builder::state::StateRoot;
use crate::lab::builder::UpOptions;
use crate::lab::file::backend::BackendChoice;
use crate::lab::file::Topology;
use crate::lab::hosts::coordinator::{Hosts, SpanError};
use crate::lab::hosts::RemoteExec;
use crate::lab::lifecycle;
use crate::lab::plan::{Plan, PlanOptions};
use crate::lab::report::paint;
use crate::lab::report::progress::Console;
use crate::lab::report::{
    render_graph, render_html, render_nodes, render_plan, render_status, GraphFormat, Report,
    StatusFormat,
};
use crate::lab::scenario::machine::Machine;
use crate::lab::LabError;

/// `lab graph`: the topology of a lab file, or of a lab that is up (then with
/// what its nodes measured, graded now as `lab verify` would).
pub(super) fn graph(arg: &str, format: GraphFormat, root: &StateRoot) -> Result<ExitCode> {
    let path = Path::new(arg);
    let file = if arg.ends_with(".toml") || path.is_file() {
        Some(Plan::new(&Topology::load(path)?, path))
    } else {
        None
    };
    let lab = file
        .as_ref()
        .map_or_else(|| arg.to_owned(), |p| p.lab.clone());
    let root_user = nix::unistd::geteuid().is_root();
    // Only root can read the labs' state; anyone can draw a file.
    let running = if root_user {
        lifecycle::running_plan(root, &lab)?
    } else {
        None
    };
    let (plan, measured) = match (running, file) {
        (Some(plan), _) => {
            let report =
                lifecycle::verify(root, &lab).with_context(|| format!("verifying lab {lab}"))?;
            (plan, Some(report))
        }
        (None, Some(plan)) => (plan, None),
        (None, None) if root_user => {
            bail!("lab {lab} is not up: give its file to draw its topology")
        }
        (None, None) => bail!(
            "reading a running lab needs root (run it as root, or with sudo), or give the lab's file"
        ),
    };
    print!("{}", render_graph(&plan, measured.as_ref(), format)?);
    Ok(ExitCode::SUCCESS)
}

/// `lab probe`: the running lab's links probed and judged; stops early on
/// Ctrl-C or SIGTERM.
pub(super) fn probe(
    root: &StateRoot,
    lab: &str,
    asked: lifecycle::ProbeAsked,
    json: bool,
) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let verdicts = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let cancel = CancellationToken::new();
        // Listening before the probe starts: a signal then stops it, never the process.
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            on_signal.cancel();
        });
        eprintln!("sdss lab {lab}: probing the links");
        let (root, lab) = (root.clone(), lab.to_owned());
        tokio::task::spawn_blocking(move || lifecycle::probe(&root, &lab, &asked, &cancel))
            .await
            .context("the link probe panicked")
    });
    let verdicts = verdicts?.with_context(|| format!("probing the links of lab {lab}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&verdicts)?);
    } else {
        print!("{}", verdicts.render());
    }
    Ok(if verdicts.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the report's HTML page.
pub(super) fn write_html(report: &Report, plan: &Plan, path: &Path) -> Result<()> {
    std::fs::write(path, render_html(report, plan))
        .with_context(|| format!("writing the HTML report to {}", path.display()))?;
    eprintln!(
        "sdss lab {}: HTML report written to {}",
        report.lab,
        path.display()
    );
    Ok(())
}

pub(super) fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let text = report.render();
        if paint::wanted() {
            print!("{}", paint::paint(&text));
        } else {
            print!("{text}");
        }
    }
    Ok(())
}

pub(super) fn verdict(report: &Report) -> ExitCode {
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(super) fn up(
    args: UpArgs,
    verify: bool,
    ending: Ending,
    root: &StateRoot,
    exec: &RemoteExec,
) -> Result<ExitCode> {
    let topology = Topology::load(&args.file)?.renamed(args.name.as_deref(), args.subnet)?;
    let options = PlanOptions {
        tolerance: args.tolerance,
        tolerance_percent: args.tolerance_percent,
        calibrate: args.calibrate,
        unconfined: args.no_sandbox,
        link: args.link,
        link_rate: args.link_rate,
        link_duration: args.link_duration,
    };
    let plan = Plan::with_options(&topology, &args.file, &options);
    if args.dry_run {
        let sdss = std::env::current_exe().context("locating the sdss executable")?;
        let shown = if args.backend == BackendChoice::None {
            plan.zero_delay()
        } else {
            plan
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&shown)?);
        } else {
            print!("{}", render_plan(&shown, &sdss, args.backend));
        }
        // What the run would refuse, the dry run refuses too.
        if verify {
            crate::lab::plan::phase_zero::check(&shown)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let injected = match &args.inject_from {
        Some(other) => {
            let other = Plan::new(&Topology::load(other)?, other);
            Some(
                plan.with_impairments_of(&other)
                    .map_err(anyhow::Error::msg)?,
            )
        }
        None => None,
    };
    if let Some(addr) = args.metrics.filter(|_| plan.spans_hosts()) {
        bail!("--metrics {addr}: the lab's figures are read from its nodes' output on this machine, and a lab over several hosts keeps it on each host");
    }
    if let Some(addr) = args
        .metrics
        .filter(|a| a.port() == 0 && ending != Ending::Down)
    {
        bail!("--metrics {addr}: give a port; the server that outlives `up` listens on the same address");
    }
    let options = LabRun {
        backend: args.backend,
        injected,
        json: args.json,
        html: args.html,
        verify,
        ending,
        metrics: args.metrics,
    };
    run_plan(plan, options, root, exec)
}

/// How `run_plan` brings a lab up and what it does after.
pub(super) struct LabRun {
    pub(super) backend: BackendChoice,
    pub(super) injected: Option<Plan>,
    pub(super) json: bool,
    /// Where to write the report's HTML page.
    pub(super) html: Option<PathBuf>,
    pub(super) verify: bool,
    pub(super) ending: Ending,
    /// Where to serve the lab's metrics: during `up`, then (when the lab is
    /// left running) from a process of its own that `down` stops.
    pub(super) metrics: Option<SocketAddr>,
}

/// What becomes of a lab once `run_plan` has its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Left running (`up`).
    Up,
    /// Taken down (`run`).
    Down,
    /// Taken down when it passed; left to inspect when not (`run --keep-on-fail`).
    DownUnlessFailed,
}

/// Brings a planned lab up, prints its report, and ends it as `ending` says.
pub(super) fn run_plan(
    plan: Plan,
    run: LabRun,
    root: &StateRoot,
    exec: &RemoteExec,
) -> Result<ExitCode> {
    let LabRun {
        backend,
        injected,
        json,
        html,
        verify,
        ending,
        metrics,
    } = run;
    // The page draws the links as injected: zero delay when `up` settles on
    // the `none` backend (the report then carries a note).
    let drawn = html.as_ref().map(|_| plan.clone());
    let sdss = std::env::current_exe().context("locating the sdss executable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let lab = plan.lab.clone();
    let spans_hosts = plan.spans_hosts();
    let options = UpOptions {
        backend,
        sdss,
        verify,
        injected,
    };
    let signal = Arc::new(AtomicI32::new(0));
    let outcome = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        let received = signal.clone();
        tokio::spawn(async move {
            received.store(wait_for_signal().await, Ordering::Relaxed);
            eprintln!("sdss lab: interrupted, tearing the lab down");
            on_signal.cancel();
        });
        // Bound before anything is built: a bad address fails first.
        let served = CancellationToken::new();
        let server = match metrics {
            Some(addr) => {
                let endpoint = crate::lab::watch::metrics::bind(root.clone(), lab.clone(), addr)
                    .await
                    .map_err(|e| SpanError::Lab(LabError::Metrics(e)))?;
                Some(tokio::spawn(endpoint.serve(served.clone())))
            }
            None => None,
        };
        let progress = Console::new(&lab, false).reported(verify && !json);
        let result = if spans_hosts {
            let mut hosts = Hosts::new(exec, root, options.clone(), progress.printer());
            lifecycle::up(plan, &mut hosts, &options, &cancel, &progress).await
        } else {
            let mut machine = Machine::new(root, options.clone());
            lifecycle::up(plan, &mut machine, &options, &cancel, &progress)
                .await
                .map_err(SpanError::from)
        };
        progress.finish();
        served.cancel();
        if let Some(server) = server {
            let _ = server.await;
        }
        result
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(SpanError::Lab(LabError::Cancelled)) => {
            eprintln!("sdss lab {lab}: interrupted; everything it created was removed");
            // The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
            let number = signal.load(Ordering::Relaxed).clamp(0, 127);
            return Ok(ExitCode::from(128 + number as u8));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("bringing lab {lab} up"))),
    };
    let stages = if outcome.stages.laps.is_empty() {
        String::new()
    } else {
        format!(" ({} s)", outcome.stages)
    };
    eprintln!(
        "sdss lab {lab}: up in {:.3} s{stages}{}",
        outcome.build_time.as_secs_f64(),
        outcome
            .report
            .as_ref()
            .map(|_| format!(
                "; graded {:.1} s after the nodes started",
                outcome.converge_time.as_secs_f64()
            ))
            .unwrap_or_default()
    );
    // Shut the runtime down so its netlink sockets release the lab's namespaces.
    drop(runtime);
    let code = match &outcome.report {
        Some(report) => {
            print_report(report, json)?;
            verdict(report)
        }
        None => ExitCode::SUCCESS,
    };
    // Written before the teardown, reported after it: a bad path leaves nothing up.
    let page = match (&outcome.report, &html, &drawn) {
        (Some(report), Some(path), Some(plan)) => {
            let plan = if report.backend_note.is_some() {
                plan.zero_delay()
            } else {
                plan.clone()
            };
            write_html(report, &plan, path)
        }
        _ => Ok(()),
    };
    let failed = outcome.report.as_ref().is_some_and(|r| !r.ok());
    let left_running = match ending {
        Ending::Down => false,
        Ending::DownUnlessFailed => failed,
        Ending::Up => true,
    };
    if !left_running {
        super::hosts::down(root, &lab, exec)?;
        page?;
        return Ok(code);
    }
    if ending == Ending::DownUnlessFailed {
        eprintln!(
            "sdss lab {lab}: the verdict failed; left running to inspect: \
             `sdss lab watch {lab}`, `sdss lab status {lab} --nodes`, `sdss lab logs {lab} NODE`, \
             `sdss lab verify {lab}`"
        );
    }
    if let Some(addr) = metrics {
        let sdss = std::env::current_exe().context("locating the sdss executable")?;
        match crate::lab::watch::metrics::detach(root, &lab, addr, &sdss) {
            Ok(pid) => eprintln!(
                "sdss lab {lab}: left running, its metrics at http://{addr}/metrics (process {pid}); `sdss lab down {lab}` removes it"
            ),
            Err(e) => {
                // A lab that cannot be watched as asked is taken down, as any failed `up`.
                super::hosts::down(root, &lab, exec)?;
                return Err(anyhow::Error::new(e).context(format!("serving lab {lab}'s metrics")));
            }
        }
    } else {
        eprintln!("sdss lab {lab}: left running; `sdss lab down {lab}` removes it");
    }
    page?;
    Ok(code)
}

/// Waits for SIGINT or SIGTERM; returns its number.
pub(super) async fn wait_for_signal() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return libc::SIGINT;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    }
}

/// `lab status`: the labs, or with `nodes` one lab's nodes.
pub(super) fn status(
    root: &StateRoot,
    lab: Option<&str>,
    nodes: bool,
    format: StatusFormat,
    exec: &RemoteExec,
) -> Result<ExitCode> {
    let lab = lab.map(lab_name).transpose()?;
    if let (true, Some(lab)) = (nodes, &lab) {
        here_only(
            root,
            lab,
            None,
            "lab status --nodes reads the nodes of this machine",
        )?;
        let nodes = crate::lab::live::nodes(root, lab)
            .with_context(|| format!("reading the nodes of lab {lab}"))?;
        print!("{}", render_nodes(&nodes, format)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut labs = lifecycle::status(root, lab.as_deref())?;
    across_hosts(root, &mut labs, exec)?;
    print!("{}", render_status(&labs, format)?);
    Ok(ExitCode::SUCCESS)
}

/// `lab exec`: the command's exit code, or as a shell says it when it
/// cannot start: one line, 127 for a command not found, 126 for one that
/// cannot run.
pub(super) fn exec(
    root: &StateRoot,
    lab: &str,
    node: &str,
    command: &[String],
) -> Result<ExitCode> {
    let lab = lab_name(lab)?;
    here_only(
        root,
        &lab,
        Some(node),
        "lab exec enters a namespace of this machine",
    )?;
    let sdss = std::env::current_exe().context("locating the sdss executable")?;
    let code = match lifecycle::exec(root, &lab, node, command, &sdss) {
        Ok(code) => code,
        Err(LabError::Launch(LaunchError::Spawn {
            program, source, ..
        })) => {
            let (code, why) = match source.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
                std::io::ErrorKind::PermissionDenied => {
                    (126, "permission denied (not an executable)".to_owned())
                }
                _ => (126, source.to_string()),
            };
            eprintln!("sdss: lab {lab} node {node}: {program}: {why}");
            return Ok(ExitCode::from(code));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "running {:?} in lab {lab} node {node}",
                command.join(" ")
            )))
        }
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
