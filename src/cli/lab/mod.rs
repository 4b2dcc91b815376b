//! `sdss lab`: bring labs up and down and grade what their nodes measure.
//! Parses and dispatches; the work is in [`crate::lab`].

mod commands;
mod grade;
mod hosts;
mod name;
mod running;
mod set;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::lab::builder::state::StateRoot;
use crate::lab::file::backend::BackendChoice;
use crate::lab::file::BuiltinGrade;
use crate::lab::hosts::{RemoteExec, DEFAULT_REMOTE_EXEC};
use crate::lab::lifecycle;
use crate::lab::plan::GradeSettings;
use crate::lab::report::{GraphFormat, StatusFormat};
use crate::lab::scenario::link_probe::PairSelection;
use commands::{graph, print_report, probe, up, verdict, write_html, Ending};
use grade::ClassArgs;
use hosts::{agent, down, here_only, verify};
use name::lab_name;
use running::{metrics, watch};

/// Arguments of `sdss lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
    /// How to reach the hosts of a lab over several ([[host]] in its file): a
    /// command, split on spaces, with each host's `ssh` value in place of
    /// `{ssh}`; it must run `sdss lab agent` there with our stdin and stdout.
    #[arg(
        long,
        global = true,
        value_name = "COMMAND",
        env = "SDSS_REMOTE_EXEC",
        default_value = DEFAULT_REMOTE_EXEC
    )]
    remote_exec: String,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The lab file (see labs/README.md).
    file: PathBuf,
    /// Print the plan and the expected delay matrix; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Bring the lab up under this name instead of the file's (namespaces
    /// `sdss-<NAME>-*`): a copy of a lab beside one already up.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The lab's subnet instead of the file's (e.g. 198.18.9.0/24).
    #[arg(long, value_name = "CIDR", value_parser = crate::lab::file::subnet::parse)]
    subnet: Option<crate::lab::file::Ipv4Net>,
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
    /// The absolute part of every pair's tolerance, instead of the lab file's
    /// `[verify] tolerance`: a pair passes within max(DURATION,
    /// tolerance_percent of its expected delay), so a pair whose percentage
    /// is larger keeps it (add `--tolerance-percent 0` to judge with exactly
    /// DURATION). For a machine that adds delay of its own (a VM under
    /// software emulation, a loaded host), measured with `--delay-backend none`.
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration, allow_hyphen_values = true)]
    tolerance: Option<std::time::Duration>,
    /// The relative part of every pair's tolerance, in percent of its
    /// expected delay, instead of the lab file's `[verify] tolerance_percent`;
    /// 0 leaves the absolute part alone.
    #[arg(long, value_name = "PERCENT", value_parser = percent, allow_hyphen_values = true)]
    tolerance_percent: Option<f64>,
    /// Measure each pair's floor first, with every pair at 1 ms (what the
    /// kernel's path and the nodes add by themselves), then apply the delays
    /// and subtract it, as `[verify] calibrate = true` does; the report shows it.
    #[arg(long)]
    calibrate: bool,
    /// Run every program as sdss itself runs (root, the machine's own view,
    /// no limits), as `[sandbox] enabled = false` does: for programs you trust.
    #[arg(long)]
    no_sandbox: bool,
    /// Once the nodes are graded, probe the links themselves (loss,
    /// duplicates, reorders, delay quantiles, rate) and judge each against
    /// its shape, as `[verify] link = true` does.
    #[arg(long)]
    link: bool,
    /// Packets per second of each ordered pair's probe (probes the links).
    #[arg(long, value_name = "N")]
    link_rate: Option<u32>,
    /// How long each pair's probe sends (probes the links).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration, allow_hyphen_values = true)]
    link_duration: Option<std::time::Duration>,
    /// Testing aid: inject the delays of this other lab file (same nodes) while
    /// grading against FILE's, to prove that verification catches wrong links.
    #[arg(long, hide = true, value_name = "OTHER")]
    inject_from: Option<PathBuf>,
    /// Serve the lab's figures for Prometheus at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9499, on this machine): per ordered pair the injected and
    /// the measured delay, the error, the verdict and the samples, the phase,
    /// the emulator's counters. After `up`, `sdss lab metrics` serves them
    /// until `sdss lab down`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, clap::Subcommand)]
enum LabCommand {
    /// Create a lab, start its nodes, verify their delays, and leave it running.
    /// Exit code 0 when every pair passes, 1 when one fails, 2 on error.
    Up {
        #[command(flatten)]
        args: UpArgs,
        /// Do not wait for measurements: create the lab and start the nodes only.
        #[arg(long, conflicts_with = "calibrate")]
        no_verify: bool,
    },
    /// Up, verify, down. Exit code 0 when every pair passes, 1 when one fails, 2 on error.
    Run {
        #[command(flatten)]
        args: UpArgs,
        /// When the verdict fails, leave the lab up to inspect (and say how
        /// to look into it and take it down).
        #[arg(long)]
        keep_on_fail: bool,
    },
    /// Serve one host's part of a lab over several hosts, on stdin and stdout:
    /// the coordinator (`sdss lab up` of a file with [[host]]) starts it
    /// through --remote-exec. Not for typing.
    Agent,
    /// Stop a lab's nodes and remove everything it created (idempotent).
    Down {
        /// The lab's name, or its file.
        lab: String,
    },
    /// List running labs; with --nodes, one lab's nodes.
    Status {
        /// Only this lab (its name, or its file).
        lab: Option<String>,
        /// One row per node of the lab: its PID, address, whether it runs,
        /// its neighbours and its last sample (from its own events).
        #[arg(long, requires = "lab")]
        nodes: bool,
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
        /// First wait until every pair has its samples (Ctrl-C stops waiting).
        #[arg(long)]
        wait: bool,
        /// With --wait: grade after this long even if some pair still lacks
        /// samples (default: the lab's `[verify] time_limit`).
        #[arg(long, value_name = "DURATION", requires = "wait", value_parser = crate::units::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Probe a running lab's links themselves: numbered, timestamped UDP
    /// packets over every ordered pair from the nodes' namespaces, each
    /// pair's delay quantiles, loss, duplicates, reorders and rate judged
    /// against its shape. Exit code 0 when every link does what was asked,
    /// 1 when one does not, 2 on error.
    Probe {
        /// The lab's name, or its file.
        lab: String,
        /// Packets per second of each ordered pair (default: the lab's
        /// `[verify] link_rate`, else 100).
        #[arg(long, value_name = "N")]
        rate: Option<u32>,
        /// How long each pair sends (default: `[verify] link_duration`, else 10s).
        #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration, allow_hyphen_values = true)]
        duration: Option<std::time::Duration>,
        /// Only the pairs this node sends.
        #[arg(long, value_name = "NODE")]
        from: Option<String>,
        /// Only the pairs this node receives.
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
        /// Print the verdicts as one JSON document on stdout.
        #[arg(long)]
        json: bool,
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
    /// Serve a running lab's figures for Prometheus at http://ADDR/metrics
    /// until Ctrl-C (what `lab up --metrics` starts, and `lab down` stops):
    /// per ordered pair the injected and the measured delay, the error, the
    /// verdict and the samples; the phase; the nodes; the emulator's counters.
    Metrics {
        /// The lab's name, or its file.
        lab: String,
        /// Where to listen (port 0: the system chooses; the address is printed).
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
    /// Change a running lab's links live, as a timeline's `set` event does
    /// (and checked as one): a node's link, or with --from and --to an
    /// ordered pair. `watch`, `verify` and `graph` then judge by the new shape.
    Set(set::SetArgs),
    /// Run a command inside a node's namespace.
    Exec {
        /// The lab's name, or its file.
        lab: String,
        /// The node.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Grade an SDSS implementation against the assignment: run it in a
    /// default lab (three sdss nodes and the grading probe) and print its
    /// checklist; or, with --class, every submission of a class.
    /// Exit code 0 when every check passes (warnings allowed), 1 when one fails, 2 on error.
    Grade {
        /// Print the report, checklist included, as one JSON document.
        #[arg(long)]
        json: bool,
        /// The lab's name (namespaces `sdss-<name>-*`); with --class, the
        /// labs are `<name>x<number>`.
        #[arg(long, default_value_t = format!("grade{}", std::process::id()))]
        name: String,
        /// How long the program is watched (at least 12s).
        #[arg(long, value_parser = crate::units::parse_duration, allow_hyphen_values = true)]
        duration: Option<std::time::Duration>,
        /// The program's folder (the submission's): confined, it sees a
        /// private copy of it and starts there. Default: the folder of the
        /// first argument that names a file.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Run it as sdss itself runs (root, no limits): for a program you trust.
        #[arg(long)]
        no_sandbox: bool,
        /// The seed of the scenario's random choices (printed; the same seed
        /// plays the same scenario). Default: drawn at random.
        #[arg(long)]
        seed: Option<u32>,
        /// The lab's subnet (default 198.18.0.0/24).
        #[arg(long, value_parser = crate::lab::file::subnet::parse)]
        subnet: Option<crate::lab::file::Ipv4Net>,
        #[command(flatten)]
        class: ClassArgs,
        /// The program and its arguments (after `--`), run in its lab namespace.
        #[arg(last = true, required_unless_present = "class")]
        command: Vec<String>,
    },
    /// Print a node's output as `sdss node` shows it on a terminal (`--json`:
    /// its JSON event stream as written; `--stderr`: its diagnostics).
    Logs {
        /// The lab's name, or its file.
        lab: String,
        /// The node.
        node: String,
        /// Print the node's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
        /// Print the raw JSON event stream, one event per line.
        #[arg(long)]
        json: bool,
        /// Keep printing what the node writes, until Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines (events).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        tail: Option<u64>,
    },
}

/// Runs a lab subcommand.
pub fn run(args: LabArgs) -> ExitCode {
    let dispatched = RemoteExec::parse(&args.remote_exec)
        .map_err(anyhow::Error::new)
        .and_then(|exec| dispatch(args.command, &exec));
    match dispatched {
        Ok(code) => code,
        Err(error) => {
            super::report_error(&error);
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: LabCommand, exec: &RemoteExec) -> Result<ExitCode> {
    let dry_run = matches!(&command, LabCommand::Up { args, .. } | LabCommand::Run { args, .. } if args.dry_run);
    let root = StateRoot::from_env();
    if let LabCommand::Graph { lab, format } = &command {
        return graph(lab, *format, &root);
    }
    if !dry_run && !nix::unistd::geteuid().is_root() {
        bail!("sdss lab needs root (it creates network namespaces and links): run it as root, or with sudo");
    }
    match command {
        LabCommand::Graph { lab, format } => graph(&lab, format, &root),
        LabCommand::Up { args, no_verify } => up(args, !no_verify, Ending::Up, &root, exec),
        LabCommand::Run { args, keep_on_fail } => {
            let ending = if keep_on_fail {
                Ending::DownUnlessFailed
            } else {
                Ending::Down
            };
            up(args, true, ending, &root, exec)
        }
        LabCommand::Agent => agent(&root),
        LabCommand::Grade {
            json,
            name,
            duration,
            dir,
            no_sandbox,
            seed,
            subnet,
            class,
            command,
        } => {
            if let Some(folder) = class.class.clone() {
                return grade::class(&name, &folder, &class, duration, seed, no_sandbox);
            }
            let grade = BuiltinGrade {
                name: &name,
                duration: duration.unwrap_or(GradeSettings::DEFAULT_DURATION),
                command: &command,
                dir: dir.as_deref(),
                seed: seed.unwrap_or_else(|| fastrand::u32(..)),
                subnet,
            };
            grade::builtin(&grade, json, no_sandbox, &root, exec)
        }
        LabCommand::Down { lab } => {
            down(&root, &lab, exec)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status {
            lab,
            nodes,
            format,
            json,
        } => {
            let format = if json { StatusFormat::Json } else { format };
            commands::status(&root, lab.as_deref(), nodes, format, exec)
        }
        LabCommand::Verify {
            lab,
            json,
            html,
            wait,
            timeout,
        } => {
            let lab = lab_name(&lab)?;
            let report = if wait {
                match running::verify_when_measured(&root, &lab, timeout, exec)? {
                    Some(report) => report,
                    None => return Ok(ExitCode::from(130)),
                }
            } else {
                verify(&root, &lab, exec).with_context(|| format!("verifying lab {lab}"))?
            };
            print_report(&report, json)?;
            if let Some(path) = &html {
                let plan = lifecycle::running_plan(&root, &lab)?
                    .with_context(|| format!("lab {lab} went down while it was verified"))?;
                write_html(&report, &plan, path)?;
            }
            Ok(verdict(&report))
        }
        LabCommand::Probe {
            lab,
            rate,
            duration,
            from,
            to,
            json,
        } => {
            let lab = lab_name(&lab)?;
            here_only(
                &root,
                &lab,
                None,
                "lab probe measures the links of a lab on this machine",
            )?;
            let asked = lifecycle::ProbeAsked {
                rate,
                duration,
                pairs: PairSelection { from, to },
            };
            probe(&root, &lab, asked, json)
        }
        LabCommand::Watch { lab, count } => {
            here_only(
                &root,
                &lab,
                None,
                "lab watch follows a lab's output as it grows here",
            )?;
            watch(root, &lab, count)
        }
        LabCommand::Metrics { lab, listen } => {
            let lab = lab_name(&lab)?;
            here_only(
                &root,
                &lab,
                None,
                "lab metrics reads a lab's output as it grows here",
            )?;
            metrics(root, &lab, listen)
        }
        LabCommand::Set(args) => set::set(&root, args),
        LabCommand::Exec { lab, node, command } => commands::exec(&root, &lab, &node, &command),
        LabCommand::Logs {
            lab,
            node,
            stderr,
            json,
            follow,
            tail,
        } => {
            let lab = lab_name(&lab)?;
            if stderr {
                here_only(
                    &root,
                    &lab,
                    Some(&node),
                    "only a node's output is gathered here",
                )?;
            }
            use std::io::IsTerminal;
            let options = crate::lab::logs::LogsOptions {
                stderr,
                raw: json,
                tail,
                follow,
                color: std::io::stdout().is_terminal(),
            };
            running::logs(root, &lab, &node, options)
        }
    }
}

/// `--tolerance-percent`: a percentage between 0 and 100, as the lab file's.
fn percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{text:?} is not a percentage: write a number between 0 and 100, e.g. 5 or 2.5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        lab: LabArgs,
    }

    fn parse(line: &str) -> Result<LabCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("lab").chain(line.split_whitespace()))
            .map(|c| c.lab.command)
    }

    #[test]
    fn the_day_two_options_parse_and_need_what_they_qualify() {
        assert!(matches!(
            parse("run labs/five-nodes.toml --keep-on-fail --name five2 --subnet 198.18.9.0/24"),
            Ok(LabCommand::Run { keep_on_fail: true, args }) if args.name.as_deref() == Some("five2")
                && args.subnet == Some("198.18.9.0/24".parse().unwrap())
        ));
        assert!(
            parse("up five.toml --subnet 198.18.9.1/24").is_err(),
            "host bits"
        );
        assert!(matches!(
            parse("verify five --wait --timeout 30s"),
            Ok(LabCommand::Verify { wait: true, timeout: Some(t), .. }) if t.as_secs() == 30
        ));
        assert!(
            parse("verify five --timeout 30s").is_err(),
            "--timeout needs --wait"
        );
        assert!(matches!(
            parse("status five --nodes --format csv"),
            Ok(LabCommand::Status { nodes: true, .. })
        ));
        assert!(parse("status --nodes").is_err(), "--nodes needs a lab");
        assert!(matches!(
            parse("logs five a -f --tail 5 --json"),
            Ok(LabCommand::Logs {
                follow: true,
                tail: Some(5),
                json: true,
                ..
            })
        ));
    }
}
