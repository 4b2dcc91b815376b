//! Kernel netem, driven by `tc` through one typed wrapper ([`Tc`]):
//! netlink-packet-route has no netem option type, and `tc` is the tool every
//! reader knows. A per-pair lab gets an HTB class and a netem leaf per
//! destination (in a host's share, the nodes on the other hosts too); live
//! changes replace the leaves that differ. Every set of commands runs as one
//! `tc -batch` per namespace, the namespaces at once.

use std::fmt;
use std::io;
use std::process::Command;
use std::time::Duration;

use thiserror::Error;

use super::{cut_off, local_matrix, DelayBackend, DelayError, LinkChange, CUT};
use crate::lab::plan::backend::{BackendKind, NetemSupport};
use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::{Chance, Distribution};
use crate::lab::plan::timeline::Phase;
use crate::lab::plan::{Plan, NODE_IFNAME};

/// Failures of `tc`.
#[derive(Debug, Error)]
pub enum TcError {
    /// The `tc` program is not installed.
    #[error("tc is not installed (Debian package iproute2)")]
    NotFound,
    /// The kernel does not know the qdisc (netem absent).
    #[error("the kernel does not know qdisc {kind:?} (tc {args})")]
    QdiscUnknown {
        /// The qdisc kind.
        kind: String,
        /// The command's arguments.
        args: String,
    },
    /// Any other failure.
    #[error("tc {args} failed ({status}): {stderr}")]
    Failed {
        /// The command's arguments.
        args: String,
        /// Exit status.
        status: String,
        /// What tc said.
        stderr: String,
    },
    /// Running tc failed.
    #[error("running tc {args}: {source}")]
    Io {
        /// The command's arguments.
        args: String,
        /// The OS error.
        source: io::Error,
    },
}

/// The one way sdss runs `tc`: `tc -n NETNS ARGS...`, with typed failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tc;

impl Tc {
    /// Runs `commands` with one `tc -batch` per namespace, the namespaces'
    /// batches at once: a partition of a hundred nodes changes ten thousand
    /// leaves, and a `tc` process per leaf took seconds where this takes one
    /// process per node. Stops at the first failure of a batch; returns the first.
    pub fn batch(&self, commands: &[TcCommand]) -> Result<(), TcError> {
        let mut batches: Vec<(&str, String)> = Vec::new();
        for command in commands {
            let line = command.args.join(" ");
            match batches
                .iter_mut()
                .find(|(netns, _)| *netns == command.netns)
            {
                Some((_, lines)) => {
                    lines.push_str(&line);
                    lines.push('\n');
                }
                None => batches.push((&command.netns, format!("{line}\n"))),
            }
        }
        std::thread::scope(|scope| {
            let running: Vec<_> = batches
                .iter()
                .map(|(netns, lines)| scope.spawn(move || self.batch_in(netns, lines)))
                .collect();
            let mut first = Ok(());
            for run in running {
                let result = run.join().unwrap_or_else(|_| {
                    Err(TcError::Io {
                        args: "-batch".to_owned(),
                        source: io::Error::other("the thread running tc panicked"),
                    })
                });
                if first.is_ok() {
                    first = result;
                }
            }
            first
        })
    }

    /// Runs `tc -n netns -batch -` with `lines` on its stdin.
    fn batch_in(&self, netns: &str, lines: &str) -> Result<(), TcError> {
        let args = ["-n", netns, "-batch", "-"].map(str::to_owned);
        let shown = |failed: Option<usize>| match failed.and_then(|n| lines.lines().nth(n - 1)) {
            Some(line) => format!("-n {netns} {line}"),
            None => format!("-n {netns} -batch ({} commands)", lines.lines().count()),
        };
        let output = spawn_tc(&args, Some(lines.as_bytes()), &shown(None))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        // tc names the line that failed: "Command failed -:LINE".
        let failed = stderr
            .split("Command failed -:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        Err(failure(&shown(failed), output.status, stderr))
    }

    /// Runs `tc args...` in the calling thread's network namespace.
    fn exec(&self, args: &[String]) -> Result<(), TcError> {
        let shown = args.join(" ");
        let output = spawn_tc(args, None, &shown)?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(failure(&shown, output.status, stderr))
    }

    /// Probes netem in a network namespace made for the probe alone, on a
    /// thread of its own, and gone with it: nothing of the host's or of a lab's
    /// is touched, and the backend is known before anything is created.
    pub fn probe_netem(&self) -> NetemSupport {
        let probe = std::thread::spawn(|| {
            if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
                return NetemSupport::Unknown(format!("no namespace for the probe: {errno}"));
            }
            let add = ["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"];
            match Tc.exec(&add.map(str::to_owned)) {
                Ok(()) => NetemSupport::Available,
                Err(TcError::QdiscUnknown { .. }) => NetemSupport::Missing,
                Err(TcError::NotFound) => NetemSupport::NoTc,
                Err(e) => NetemSupport::Unknown(e.to_string()),
            }
        });
        probe
            .join()
            .unwrap_or_else(|_| NetemSupport::Unknown("the probe panicked".to_owned()))
    }
}

/// Runs `tc args...`, with `input` on its stdin, and collects what it said.
fn spawn_tc(
    args: &[String],
    input: Option<&[u8]>,
    shown: &str,
) -> Result<std::process::Output, TcError> {
    use std::io::Write;
    use std::process::Stdio;
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => TcError::NotFound,
        _ => TcError::Io {
            args: shown.to_owned(),
            source,
        },
    };
    let mut child = Command::new("tc")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tc that stops reading has failed: its status says why.
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().map_err(io_error)
}

/// A failed `tc` (`shown`), typed: an unknown qdisc apart from the rest.
fn failure(shown: &str, status: std::process::ExitStatus, stderr: String) -> TcError {
    if stderr.contains("Specified qdisc kind is unknown") || stderr.contains("Unknown qdisc") {
        let kind = shown
            .split_whitespace()
            .skip_while(|a| *a != "root" && !a.starts_with("parent"))
            .find(|a| ["netem", "htb"].contains(a))
            .unwrap_or("?")
            .to_owned();
        return TcError::QdiscUnknown {
            kind,
            args: shown.to_owned(),
        };
    }
    TcError::Failed {
        args: shown.to_owned(),
        status: status.to_string(),
        stderr,
    }
}

/// Kernel netem via `tc`.
#[derive(Debug, Default)]
pub struct Netem {
    tc: Tc,
}

impl DelayBackend for Netem {
    fn kind(&self) -> BackendKind {
        BackendKind::Netem
    }

    fn apply(&self, plan: &Plan) -> Result<(), DelayError> {
        match self.tc.batch(&netem_commands(plan)) {
            Err(TcError::QdiscUnknown { kind, .. }) if kind == "netem" => Err(DelayError::NoNetem),
            other => Ok(other?),
        }
    }

    fn change(&self, change: &LinkChange<'_>) -> Result<(), DelayError> {
        Ok(self.tc.batch(&change.netem_commands())?)
    }
}

/// The tc commands that move a per-pair netem lab from `before` to `after`:
/// the leaf of every pair whose impairment changed (toward remote nodes too,
/// in a share), and the default class of a node whose broadcasts a cut stops
/// or a heal lets pass again.
pub fn netem_changes(plan: &Plan, before: &Phase, after: &Phase) -> Vec<TcCommand> {
    let mut commands = leaf_changes(
        plan,
        &local_matrix(plan, Some(before)),
        &local_matrix(plan, Some(after)),
    );
    for from in &plan.nodes {
        let isolated = cut_off(plan, &from.name, after);
        if cut_off(plan, &from.name, before) != isolated {
            let own = if isolated { CUT } else { from.link };
            commands.push(default_class(&from.netns, &own));
        }
    }
    commands
}

/// The tc commands that move a netem lab from what plan `before` injects to
/// what `after` does. Per pair: every pair's leaf that differs, and the
/// default class (broadcasts) of every node whose own link differs. With
/// per-node links (a live `set` of a node's link): both root qdiscs of each
/// node whose link differs, as [`netem_commands`] made them.
pub fn netem_plan_changes(before: &Plan, after: &Plan) -> Vec<TcCommand> {
    if !after.per_pair {
        let moved = before.nodes.iter().zip(&after.nodes);
        return moved
            .filter(|(old, new)| old.link != new.link)
            .flat_map(|(_, node)| {
                [
                    (node.netns.as_str(), NODE_IFNAME),
                    (after.switch_netns.as_str(), node.bridge_port.as_str()),
                ]
                .map(|(netns, dev)| {
                    tc_command(
                        netns,
                        &format!("qdisc replace dev {dev} root"),
                        Some(&node.link),
                    )
                })
            })
            .collect();
    }
    let mut commands = leaf_changes(
        after,
        &local_matrix(before, None),
        &local_matrix(after, None),
    );
    for (old, new) in before.nodes.iter().zip(&after.nodes) {
        if old.link != new.link {
            commands.push(default_class(&new.netns, &new.link));
        }
    }
    commands
}

/// Replaces the leaf of every pair whose impairment differs between two
/// matrices of [`local_matrix`]'s shape (a column per destination).
fn leaf_changes(
    plan: &Plan,
    before: &[Vec<Impairment>],
    after: &[Vec<Impairment>],
) -> Vec<TcCommand> {
    let dev = NODE_IFNAME;
    let mut commands = Vec::new();
    let rows = before.iter().zip(after);
    for (i, (from, (was, is))) in plan.nodes.iter().zip(rows).enumerate() {
        for (j, (old, new)) in was.iter().zip(is).enumerate() {
            if i == j || old == new {
                continue;
            }
            let minor = format!("{:x}", j + 16);
            commands.push(tc_command(
                &from.netns,
                &format!("qdisc replace dev {dev} parent 1:{minor} handle {minor}:"),
                Some(new),
            ));
        }
    }
    commands
}

/// Sets what a node's default class (everything but its pairs' unicast) does.
fn default_class(netns: &str, impairment: &Impairment) -> TcCommand {
    tc_command(
        netns,
        &format!("qdisc replace dev {NODE_IFNAME} parent 1:1 handle 2:"),
        Some(impairment),
    )
}

/// One `tc -n NETNS ARGS...` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcCommand {
    /// The namespace.
    pub netns: String,
    /// The arguments after `-n NETNS`.
    pub args: Vec<String>,
}

impl fmt::Display for TcCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tc -n {} {}", self.netns, self.args.join(" "))
    }
}

/// `tc -n NETNS LINE` followed by the netem arguments of `netem`, when given.
fn tc_command(netns: &str, line: &str, netem: Option<&Impairment>) -> TcCommand {
    let mut args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    args.extend(netem.map(netem_args).unwrap_or_default());
    TcCommand {
        netns: netns.to_owned(),
        args,
    }
}

/// The rate given to a jittery link that keeps its frames in order: far
/// beyond what a veth carries, so it adds 0.12 us to a 1500-byte frame.
const KEEP_ORDER_RATE: &str = "100gbit";

/// netem's arguments for an impairment, every option it has, times in
/// microseconds and probabilities in percent so nothing is rounded away.
pub fn netem_args(impairment: &Impairment) -> Vec<String> {
    let mut args = vec!["netem".to_owned()];
    let us = |d: Duration| format!("{}us", d.as_micros());
    let percent = |p: f64| format!("{}%", crate::units::round(p * 100.0, 6));
    let mut push = |words: Vec<String>| args.extend(words);
    if let Some(limit) = impairment.limit {
        push(vec!["limit".to_owned(), limit.to_string()]);
    }
    if !impairment.delay.is_zero() || !impairment.jitter.is_zero() {
        let mut words = vec!["delay".to_owned(), us(impairment.delay)];
        if !impairment.jitter.is_zero() {
            words.push(us(impairment.jitter));
            if impairment.delay_correlation > 0.0 {
                words.push(percent(impairment.delay_correlation));
            }
            if impairment.distribution != Distribution::Uniform {
                words.push("distribution".to_owned());
                words.push(impairment.distribution.name().to_owned());
            }
        }
        push(words);
    }
    if impairment.loss.mean() > 0.0 {
        push(
            ["loss".to_owned()]
                .into_iter()
                .chain(impairment.loss.netem_args())
                .collect(),
        );
    }
    let chance = |name: &str, c: Chance| {
        let mut words = vec![name.to_owned(), percent(c.probability)];
        if c.correlation > 0.0 {
            words.push(percent(c.correlation));
        }
        words
    };
    if impairment.duplicate.is_some() {
        push(chance("duplicate", impairment.duplicate));
    }
    if impairment.reorder.chance.is_some() {
        let mut words = chance("reorder", impairment.reorder.chance);
        words.extend(["gap".to_owned(), impairment.reorder.gap.to_string()]);
        push(words);
    }
    if impairment.corrupt.is_some() {
        push(chance("corrupt", impairment.corrupt));
    }
    if let Some(rate) = impairment.rate {
        push(
            ["rate".to_owned()]
                .into_iter()
                .chain(rate.netem_args())
                .collect(),
        );
    } else if !impairment.jitter.is_zero() && !impairment.jitter_reorders {
        // netem holds a frame behind the one before it only when it has a
        // rate; one no veth reaches keeps the link in order and nothing else.
        push(vec!["rate".to_owned(), KEEP_ORDER_RATE.to_owned()]);
    }
    if let Some(slot) = impairment.slot {
        push(
            ["slot".to_owned()]
                .into_iter()
                .chain(slot.netem_args())
                .collect(),
        );
    }
    args
}

/// The tc commands that give a plan's impairments, following the egress model.
///
/// Per-node links: one root netem on the node's `eth0` and one on its bridge
/// port, each with the node's link impairment, so B -> A crosses d_B then d_A.
/// With `[[pair]]` overrides: each node's `eth0` gets an htb with one class per
/// destination (u32 match on the destination address; in a host's share the
/// remote nodes too, after its own) whose netem leaf carries that ordered
/// pair's whole expected impairment, and the bridge ports (and the VXLAN
/// device) get nothing; unmatched traffic (ARP, broadcasts) takes the node's
/// own link.
pub fn netem_commands(plan: &Plan) -> Vec<TcCommand> {
    let mut commands = Vec::new();
    let mut push = |netns: &str, line: String, netem: Option<&Impairment>| {
        commands.push(tc_command(netns, &line, netem));
    };
    if !plan.per_pair {
        for node in plan.nodes.iter().filter(|n| !n.link.is_none()) {
            for (netns, dev) in [
                (&node.netns, NODE_IFNAME),
                (&plan.switch_netns, node.bridge_port.as_str()),
            ] {
                push(
                    netns,
                    format!("qdisc replace dev {dev} root"),
                    Some(&node.link),
                );
            }
        }
        return commands;
    }
    let dev = NODE_IFNAME;
    for from in &plan.nodes {
        let netns = from.netns.as_str();
        push(
            netns,
            format!("qdisc replace dev {dev} root handle 1: htb default 1"),
            None,
        );
        push(
            netns,
            format!("class add dev {dev} parent 1: classid 1:1 htb rate 10gbit"),
            None,
        );
        if !from.link.is_none() {
            push(
                netns,
                format!("qdisc add dev {dev} parent 1:1 handle 2:"),
                Some(&from.link),
            );
        }
        for (index, (to, address)) in plan.destinations().enumerate() {
            let Some(pair) = plan.pair_from_here(&from.name, to) else {
                continue;
            };
            let minor = format!("{:x}", index + 16);
            let class = format!("1:{minor}");
            push(
                netns,
                format!("class add dev {dev} parent 1: classid {class} htb rate 10gbit"),
                None,
            );
            if !pair.impairment.is_none() {
                push(
                    netns,
                    format!("qdisc add dev {dev} parent {class} handle {minor}:"),
                    Some(&pair.impairment),
                );
            }
            push(
                netns,
                format!(
                    "filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip dst {address}/32 flowid {class}"
                ),
                None,
            );
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::super::wire_matrix;
    use super::*;
    use crate::lab::plan::shape::Loss;

    #[test]
    fn netem_arguments_in_microseconds() {
        let jittery = Impairment {
            delay: Duration::from_micros(2500),
            jitter: Duration::from_millis(1),
            loss: Loss::random(0.01),
            ..Default::default()
        };
        // In order unless the file lets jitter reorder: a rate no veth reaches.
        assert_eq!(
            netem_args(&jittery),
            ["netem", "delay", "2500us", "1000us", "loss", "1%", "rate", "100gbit"]
        );
        let free = Impairment {
            jitter_reorders: true,
            ..jittery
        };
        assert_eq!(
            netem_args(&free),
            ["netem", "delay", "2500us", "1000us", "loss", "1%"]
        );
        assert_eq!(
            netem_args(&Impairment {
                loss: Loss::random(0.5),
                ..Default::default()
            }),
            ["netem", "loss", "50%"]
        );
    }

    #[test]
    fn every_shape_is_given_to_netem_in_its_words() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"40ms\"\njitter = \"5ms\"\n\
             distribution = \"normal\"\ndelay_correlation = 0.25\n\
             loss_model = { gemodel = [0.01, 0.3] }\nduplicate = 0.01\nreorder = 0.25\n\
             reorder_correlation = 0.5\nreorder_gap = 5\ncorrupt = 0.001\nrate = \"10mbit\"\n\
             rate_packet_overhead = 14\nlimit = 500\nslot = { min = \"1ms\", max = \"2ms\", packets = 8 }\n\
             [[node]]\nname = \"b\"\n",
        );
        let args = netem_args(&plan.nodes[0].link).join(" ");
        assert_eq!(
            args,
            "netem limit 500 delay 40000us 5000us 25% distribution normal \
             loss gemodel 1% 30% 100% 0% duplicate 1% reorder 25% 50% gap 5 corrupt 0.1% \
             rate 10000000bit 14 slot 1000us 2000us packets 8"
        );
    }

    #[test]
    fn per_node_links_get_netem_on_both_egresses() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"5ms\"\n[[node]]\nname = \"b\"\n",
        );
        let commands: Vec<String> = lines(netem_commands(&plan));
        assert_eq!(
            commands,
            [
                "tc -n sdss-t-a qdisc replace dev eth0 root netem delay 5000us",
                "tc -n sdss-t qdisc replace dev p0 root netem delay 5000us",
            ]
        );
    }

    /// Commands as they would be typed.
    fn lines(commands: Vec<TcCommand>) -> Vec<String> {
        commands.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn per_pair_labs_classify_by_destination() {
        let plan = Plan::from_text(
            "name = \"t\"\nsubnet = \"10.0.0.0/24\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[pair]]\nfrom = \"a\"\nto = \"b\"\ndelay = \"7ms\"\n",
        );
        let commands: Vec<String> = lines(netem_commands(&plan));
        assert!(commands.contains(
            &"tc -n sdss-t-a qdisc replace dev eth0 root handle 1: htb default 1".to_owned()
        ));
        assert!(
            commands.contains(
                &"tc -n sdss-t-a qdisc add dev eth0 parent 1:11 handle 11: netem delay 7000us"
                    .to_owned()
            ),
            "{commands:#?}"
        );
        assert!(commands.contains(
            &"tc -n sdss-t-a filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.2/32 flowid 1:11".to_owned()
        ));
        // b -> a is unimpaired: a class and a filter, no netem leaf.
        assert!(!commands
            .iter()
            .any(|c| c.starts_with("tc -n sdss-t-b") && c.contains("netem")));
        assert!(!commands.iter().any(|c| c.contains("sdss-t ")));
    }

    #[test]
    fn calibration_moves_the_changed_leaves_and_default_classes_to_the_lab() {
        let plan = Plan::from_text(
            "name = \"t\"\nsubnet = \"10.0.0.0/24\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n\
             [[node]]\nname = \"b\"\ndelay = \"2ms\"\n[[node]]\nname = \"c\"\n",
        )
        .calibrated();
        let calibrating = crate::lab::plan::calibration::phase(&plan);
        assert!(calibrating.per_pair, "built with the classes to change");
        let commands: Vec<String> = lines(netem_plan_changes(&calibrating, &plan));
        // Every pair is at 1 ms: a <-> c stays, the four others change;
        // a's and b's broadcasts get their links, c has none.
        assert_eq!(commands.len(), 6, "{commands:#?}");
        assert!(commands.contains(
            &"tc -n sdss-t-a qdisc replace dev eth0 parent 1:11 handle 11: netem delay 3000us"
                .to_owned()
        ));
        assert!(commands.contains(
            &"tc -n sdss-t-c qdisc replace dev eth0 parent 1:11 handle 11: netem delay 2000us"
                .to_owned()
        ));
        assert!(commands.contains(
            &"tc -n sdss-t-b qdisc replace dev eth0 parent 1:1 handle 2: netem delay 2000us"
                .to_owned()
        ));
        let unchanged = [
            "tc -n sdss-t-a qdisc replace dev eth0 parent 1:12",
            "tc -n sdss-t-c qdisc replace dev eth0 parent 1:10",
        ];
        assert!(
            !commands
                .iter()
                .any(|c| unchanged.iter().any(|u| c.starts_with(u))),
            "{commands:#?}"
        );
        assert!(netem_plan_changes(&plan, &plan).is_empty());
        assert_eq!(
            wire_matrix(&plan, None)[0][1].first.delay,
            Duration::from_millis(3)
        );
    }

    #[test]
    fn a_set_node_of_a_lab_with_per_node_links_gets_both_root_qdiscs_again() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n[[node]]\nname = \"b\"\n",
        );
        assert!(!plan.per_pair);
        let change = crate::lab::plan::timeline::Change::SetLink {
            node: "b".to_owned(),
            values: crate::lab::plan::impairment::LinkValues {
                delay: Some(Duration::from_millis(40)),
                ..Default::default()
            },
        };
        let after = plan.with_change(&change).unwrap();
        assert_eq!(
            lines(netem_plan_changes(&plan, &after)),
            [
                "tc -n sdss-t-b qdisc replace dev eth0 root netem delay 40000us",
                "tc -n sdss-t qdisc replace dev p1 root netem delay 40000us",
            ]
        );
    }

    #[test]
    fn a_live_change_replaces_only_the_changed_leaves_and_a_cut_stops_broadcasts() {
        let plan = Plan::from_text(
            "name = \"t\"\nsubnet = \"10.0.0.0/24\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n\
             [[node]]\nname = \"b\"\ndelay = \"2ms\"\n[[node]]\nname = \"c\"\ndelay = \"3ms\"\n\
             [[event]]\nat = \"1s\"\naction = \"set\"\nnode = \"c\"\ndelay = \"9ms\"\n\
             [[event]]\nat = \"2s\"\naction = \"cut\"\nnode = \"c\"\n",
        );
        let phases = &plan.timeline.phases;
        let step: Vec<String> = lines(netem_changes(&plan, &phases[0], &phases[1]));
        // c's pairs change, a <-> b does not: a -> c, b -> c, c -> a, c -> b.
        assert_eq!(step.len(), 4, "{step:#?}");
        assert!(step.contains(
            &"tc -n sdss-t-c qdisc replace dev eth0 parent 1:10 handle 10: netem delay 10000us"
                .to_owned()
        ));
        assert!(step.contains(
            &"tc -n sdss-t-a qdisc replace dev eth0 parent 1:12 handle 12: netem delay 10000us"
                .to_owned()
        ));
        let cut: Vec<String> = lines(netem_changes(&plan, &phases[1], &phases[2]));
        assert!(
            cut.contains(
                &"tc -n sdss-t-c qdisc replace dev eth0 parent 1:1 handle 2: netem loss 100%"
                    .to_owned()
            ),
            "{cut:#?}"
        );
        assert!(
            cut.iter().filter(|c| c.ends_with("loss 100%")).count() == 5,
            "{cut:#?}"
        );
        // The emulator is told the same: c's row and column drop every frame.
        let matrix = wire_matrix(&plan, Some(&phases[2]));
        assert_eq!(matrix[2][0].first.loss, Loss::ALL);
        assert_eq!(matrix[0][2].first.loss, Loss::ALL);
        assert_eq!(matrix[0][1].first.delay, Duration::from_millis(3));
    }
}
