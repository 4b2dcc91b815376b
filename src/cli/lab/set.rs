//! `sdss lab set`: a running lab's link changed live, as a timeline's `set`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::name::lab_name;
use crate::lab::builder::state::StateRoot;
use crate::lab::file::live::SetTarget;
use crate::lab::live;

/// Arguments of `lab set`.
#[derive(Debug, clap::Args)]
pub(super) struct SetArgs {
    /// The lab's name, or its file.
    lab: String,
    /// The node whose link changes (or --from and --to for an ordered pair).
    #[arg(
        required_unless_present_all = ["from", "to"],
        conflicts_with_all = ["from", "to"]
    )]
    node: Option<String>,
    /// Sender of the ordered pair to change.
    #[arg(long, value_name = "NODE", requires = "to")]
    from: Option<String>,
    /// Receiver of the ordered pair to change.
    #[arg(long, value_name = "NODE", requires = "from")]
    to: Option<String>,
    /// With --from and --to: the reverse direction too.
    #[arg(long, requires = "from")]
    symmetric: bool,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Print what changed as one JSON document.
    #[arg(long)]
    json: bool,
}

/// The shape keys of a `set` event; each value is read as the lab file
/// reads it (labs/README.md), and only the keys given change.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Shape (the keys of the file's set event)")]
struct ShapeArgs {
    /// One-way delay, e.g. 40ms.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    delay: Option<String>,
    /// Jitter: delay ± jitter (uniform), or the standard deviation.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    jitter: Option<String>,
    /// How the jitter is drawn: uniform, normal, pareto, paretonormal.
    #[arg(long, value_name = "NAME")]
    distribution: Option<String>,
    /// Loss probability, e.g. 0.01 for 1%.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    loss: Option<String>,
    /// Chance a frame is duplicated.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    duplicate: Option<String>,
    /// Chance a frame skips the delay.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    reorder: Option<String>,
    /// Chance a frame has one bit flipped.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    corrupt: Option<String>,
    /// Most bits per second, e.g. 10mbit.
    #[arg(long, value_name = "RATE")]
    rate: Option<String>,
    /// Frames the link holds.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    limit: Option<String>,
    /// Any other shape key, as the file writes it: `loss_model={ gemodel = [0.01] }`,
    /// `reorder_gap=5`, `delay_correlation=0.25` (repeatable).
    #[arg(long = "shape", value_name = "KEY=VALUE")]
    more: Vec<String>,
}

impl ShapeArgs {
    /// The keys given and their values as typed, flags first.
    fn keys(&self) -> Result<Vec<(String, String)>> {
        let named = [
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("distribution", &self.distribution),
            ("loss", &self.loss),
            ("duplicate", &self.duplicate),
            ("reorder", &self.reorder),
            ("corrupt", &self.corrupt),
            ("rate", &self.rate),
            ("limit", &self.limit),
        ];
        let mut keys: Vec<(String, String)> = named
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value.clone()?)))
            .collect();
        for item in &self.more {
            let (key, value) = item.split_once('=').with_context(|| {
                format!("--shape {item:?}: expected KEY=VALUE, e.g. reorder_gap=5")
            })?;
            keys.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(keys)
    }
}

/// `lab set`: validated as the file's `set` event, applied, recorded, shown.
pub(super) fn set(root: &StateRoot, args: SetArgs) -> Result<ExitCode> {
    let lab = lab_name(&args.lab)?;
    let target = match (args.node, args.from, args.to) {
        (Some(node), _, _) => SetTarget::Node(node),
        (None, Some(from), Some(to)) => SetTarget::Pair {
            from,
            to,
            symmetric: args.symmetric,
        },
        // clap requires a node or both ends.
        _ => anyhow::bail!("give a node, or --from and --to"),
    };
    let keys = args.shape.keys()?;
    let outcome = live::set(root, &lab, &target, &keys)
        .with_context(|| format!("setting the links of lab {lab}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", outcome.render());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SetArgs,
    }

    fn parse(line: &[&str]) -> Result<SetArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("set").chain(line.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn a_node_or_a_pair_and_the_keys_in_order() {
        let args = parse(&[
            "five",
            "n1",
            "--loss",
            "0.01",
            "--delay",
            "40ms",
            "--shape",
            "reorder_gap=5",
        ])
        .unwrap();
        assert_eq!(args.node.as_deref(), Some("n1"));
        let keys = args.shape.keys().unwrap();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            keys,
            [("delay", "40ms"), ("loss", "0.01"), ("reorder_gap", "5")]
        );
        let pair = parse(&[
            "five",
            "--from",
            "a",
            "--to",
            "b",
            "--symmetric",
            "--delay",
            "-1ms",
        ])
        .unwrap();
        assert!(pair.symmetric && pair.node.is_none());
        assert_eq!(
            pair.shape.delay.as_deref(),
            Some("-1ms"),
            "the file's error says why"
        );
        assert!(parse(&["five"]).is_err(), "a node or a pair");
        assert!(parse(&["five", "a", "--from", "a", "--to", "b"]).is_err());
        assert!(parse(&["five", "--from", "a"]).is_err());
        let bad = parse(&["five", "a", "--shape", "nothing"]).unwrap();
        assert!(bad.shape.keys().is_err());
    }
}
