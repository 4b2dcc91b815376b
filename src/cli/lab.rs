//! `sdss lab`: bring labs up and down and grade what their nodes measure.
//! Parses and dispatches; the work is in [`crate::lab`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use crate::lab::build::state::StateRoot;
use crate::lab::build::teardown;
use crate::lab::file::Topology;
use crate::lab::lifecycle::{self, UpOptions};
use crate::lab::plan::backend::BackendChoice;
use crate::lab::plan::Plan;
use crate::lab::report::progress::Progress;
use crate::lab::report::{
    render_graph, render_html, render_plan, render_status, GraphFormat, Report, StatusFormat,
};
use crate::lab::watch::WatchOptions;
use crate::lab::LabError;

/// Arguments of `sdss lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The lab file (see labs/README.md).
    file: PathBuf,
    /// Print the plan and the expected delay matrix; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Delay backend: `auto` takes netem where the kernel has it, else the
    /// userspace emulator; `none` injects nothing and expects zero delay everywhere.
    #[arg(
        long = "delay-backend",
        alias = "backend",
        value_enum,
        default_value_t = BackendChoice::Auto,
        env = "SDSS_LAB_DELAY_BACKEND"
    )]
    backend: BackendChoice,
    /// Judge with this absolute tolerance instead of the lab file's
    /// `[verify] tolerance`: for a machine that adds delay of its own (a VM
    /// under software emulation, a loaded host), measured with `--delay-backend none`.
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    tolerance: Option<std::time::Duration>,
    /// Testing aid: inject the delays of this other lab file (same nodes) while
    /// grading against FILE's, to prove that verification catches wrong links.
    #[arg(long, hide = true, value_name = "OTHER")]
    inject_from: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum LabCommand {
    /// Create a lab, start its nodes, verify their delays, and leave it running.
    /// Exit code 0 when every pair passes, 1 when one fails, 2 on error.
    Up {
        #[command(flatten)]
        args: UpArgs,
        /// Do not wait for measurements: create the lab and start the nodes only.
        #[arg(long)]
        no_verify: bool,
    },
    /// Up, verify, down. Exit code 0 when every pair passes, 1 when one fails, 2 on error.
    Run {
        #[command(flatten)]
        args: UpArgs,
    },
    /// Stop a lab's nodes and remove everything it created (idempotent).
    Down {
        /// The lab's name, or its file.
        lab: String,
    },
    /// List running labs.
    Status {
        /// Only this lab.
        lab: Option<String>,
        /// How to print the labs: for people, or for programs (json and csv
        /// have the same fields).
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
        /// The same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Grade a running lab again, from everything its nodes reported so far.
    Verify {
        /// The lab's name, or its file.
        lab: String,
        /// Print the report as one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Also write the report as one self-contained HTML page to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Print a lab's topology: its nodes around the switch and each link's
    /// delay, jitter and loss; for a lab that is up, what its nodes measured too.
    Graph {
        /// The lab file, or the name of a lab that is up.
        lab: String,
        /// dot (Graphviz), mermaid, svg, or json.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Show a running lab's measured delays live, coloured by their error
    /// against the expected value, refreshed every second; `q` or Ctrl-C quits.
    /// When stdout is not a terminal, prints the view as plain text at every refresh.
    Watch {
        /// The lab's name, or its file.
        lab: String,
        /// Stop after this many refreshes.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Run a command inside a node's namespace.
    Exec {
        /// The lab's name.
        lab: String,
        /// The node.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Grade one SDSS implementation against the assignment: run it in a default
    /// lab (three sdss nodes and the grading probe) and print its checklist.
    /// Exit code 0 when every check passes (warnings allowed), 1 when one fails, 2 on error.
    Grade {
        /// Print the report, checklist included, as one JSON document.
        #[arg(long)]
        json: bool,
        /// The lab's name (namespaces `sdss-<name>-*`).
        #[arg(long, default_value_t = format!("grade{}", std::process::id()))]
        name: String,
        /// How long the program is watched (at least 12s).
        #[arg(long, default_value = "24s", value_parser = crate::units::parse_duration)]
        duration: std::time::Duration,
        /// The program and its arguments (after `--`), run in its lab namespace.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a node's output (its JSON events; `--stderr` for its diagnostics).
    Logs {
        /// The lab's name.
        lab: String,
        /// The node.
        node: String,
        /// Print the node's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
    },
}

/// Runs a lab subcommand.
pub fn run(args: LabArgs) -> ExitCode {
    match dispatch(args.command) {
        Ok(code) => code,
        Err(error) => {
            super::report_error(&error);
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: LabCommand) -> Result<ExitCode> {
    let dry_run =
        matches!(&command, LabCommand::Up { args, .. } | LabCommand::Run { args } if args.dry_run);
    let root = StateRoot::from_env();
    if let LabCommand::Graph { lab, format } = &command {
        return graph(lab, *format, &root);
    }
    if !dry_run && !nix::unistd::geteuid().is_root() {
        bail!("sdss lab needs root (it creates network namespaces and links): run it as root, or with sudo");
    }
    match command {
        LabCommand::Graph { lab, format } => graph(&lab, format, &root),
        LabCommand::Up { args, no_verify } => up(args, !no_verify, false, &root),
        LabCommand::Run { args } => up(args, true, true, &root),
        LabCommand::Grade {
            json,
            name,
            duration,
            command,
        } => {
            let (topology, path) = Topology::grading(&name, duration, &command)?;
            let plan = Plan::new(&topology, &path);
            let run = LabRun {
                backend: BackendChoice::None,
                injected: None,
                json,
                html: None,
                verify: true,
                then_down: true,
            };
            run_plan(plan, run, &root)
        }
        LabCommand::Down { lab } => {
            let lab = lab_name(&lab)?;
            let outcome =
                teardown(&root, &lab).with_context(|| format!("taking lab {lab} down"))?;
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
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { lab, format, json } => {
            let labs = lifecycle::status(&root, lab.as_deref())?;
            let format = if json { StatusFormat::Json } else { format };
            print!("{}", render_status(&labs, format)?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Verify { lab, json, html } => {
            let lab = lab_name(&lab)?;
            let report =
                lifecycle::verify(&root, &lab).with_context(|| format!("verifying lab {lab}"))?;
            print_report(&report, json)?;
            if let Some(path) = &html {
                let plan = lifecycle::running_plan(&root, &lab)?
                    .with_context(|| format!("lab {lab} went down while it was verified"))?;
                write_html(&report, &plan, path)?;
            }
            Ok(verdict(&report))
        }
        LabCommand::Watch { lab, count } => watch(root, &lab, count),
        LabCommand::Exec { lab, node, command } => {
            let sdss = std::env::current_exe().context("locating the sdss executable")?;
            let code = lifecycle::exec(&root, &lab, &node, &command, &sdss).with_context(|| {
                format!("running {:?} in lab {lab} node {node}", command.join(" "))
            })?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        LabCommand::Logs { lab, node, stderr } => {
            let (dir, _) = lifecycle::open_node(&root, &lab, &node)?;
            let path = if stderr {
                dir.stderr_log(&node)
            } else {
                dir.stdout_log(&node)
            };
            let text =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            use std::io::Write;
            std::io::stdout().write_all(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `lab watch`: until `q`, Ctrl-C, SIGTERM or `count` refreshes.
fn watch(root: StateRoot, lab: &str, count: Option<u64>) -> Result<ExitCode> {
    let lab = lab_name(lab)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = WatchOptions {
        every: std::time::Duration::from_secs(1),
        count,
    };
    let result = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        crate::lab::watch::watch(root, lab.clone(), &options, &cancel).await
    });
    result.with_context(|| format!("watching lab {lab}"))?;
    Ok(ExitCode::SUCCESS)
}

/// A lab name, or the name inside a lab file.
fn lab_name(arg: &str) -> Result<String> {
    let path = Path::new(arg);
    if arg.ends_with(".toml") || path.is_file() {
        let topology = Topology::load(path)?;
        return Ok(topology.name.get_ref().clone());
    }
    Ok(arg.to_owned())
}

/// `lab graph`: the topology of a lab file, or of a lab that is up (then with
/// what its nodes measured, graded now as `lab verify` would).
fn graph(arg: &str, format: GraphFormat, root: &StateRoot) -> Result<ExitCode> {
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

/// Writes the report's HTML page.
fn write_html(report: &Report, plan: &Plan, path: &Path) -> Result<()> {
    std::fs::write(path, render_html(report, plan))
        .with_context(|| format!("writing the HTML report to {}", path.display()))?;
    eprintln!(
        "sdss lab {}: HTML report written to {}",
        report.lab,
        path.display()
    );
    Ok(())
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

fn verdict(report: &Report) -> ExitCode {
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn up(args: UpArgs, verify: bool, then_down: bool, root: &StateRoot) -> Result<ExitCode> {
    let topology = Topology::load(&args.file)?;
    let mut plan = Plan::new(&topology, &args.file);
    if let Some(tolerance) = args.tolerance {
        plan.verify.tolerance = tolerance;
    }
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
    let options = LabRun {
        backend: args.backend,
        injected,
        json: args.json,
        html: args.html,
        verify,
        then_down,
    };
    run_plan(plan, options, root)
}

/// How `run_plan` brings a lab up and what it does after.
struct LabRun {
    backend: BackendChoice,
    injected: Option<Plan>,
    json: bool,
    /// Where to write the report's HTML page.
    html: Option<PathBuf>,
    verify: bool,
    then_down: bool,
}

/// Brings a planned lab up, prints its report, and takes it down with `then_down`.
fn run_plan(plan: Plan, run: LabRun, root: &StateRoot) -> Result<ExitCode> {
    let LabRun {
        backend,
        injected,
        json,
        html,
        verify,
        then_down,
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
        let progress = Progress::new(&lab, false);
        let result = lifecycle::up(plan, &options, root, &cancel, &progress).await;
        progress.finish();
        result
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(LabError::Cancelled) => {
            eprintln!("sdss lab {lab}: interrupted; everything it created was removed");
            // The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
            let number = signal.load(Ordering::Relaxed).clamp(0, 127);
            return Ok(ExitCode::from(128 + number as u8));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("bringing lab {lab} up"))),
    };
    eprintln!(
        "sdss lab {lab}: up in {:.3} s ({} s){}",
        outcome.build_time.as_secs_f64(),
        outcome.stages,
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
    if then_down {
        let result = teardown(root, &lab).with_context(|| format!("taking lab {lab} down"))?;
        eprintln!(
            "sdss lab {lab}: down ({} processes stopped, {} namespaces removed)",
            result.stopped,
            result.removed.len()
        );
    } else if !then_down {
        eprintln!("sdss lab {lab}: left running; `sdss lab down {lab}` removes it");
    }
    page?;
    Ok(code)
}

/// Waits for SIGINT or SIGTERM; returns its number.
async fn wait_for_signal() -> i32 {
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
