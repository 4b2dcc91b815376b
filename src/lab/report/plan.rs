//! The plan as `--dry-run` prints it: what would be created, the expected
//! delay matrix, and the timeline with the matrix of every phase.

use std::fmt::Write;
use std::path::Path;

use super::star::describe_link;
use crate::lab::file::backend::BackendChoice;
use crate::lab::plan::backend::needs_netem;
use crate::lab::plan::timeline::PairState;
use crate::lab::plan::{Plan, Program};
use crate::table::{Align, Table};
use crate::units::format_duration;

/// The plan as `--dry-run` prints it: namespaces, addresses, programs and the
/// expected one-way delay matrix (rows: sender, columns: receiver).
pub fn render_plan(plan: &Plan, sdss: &Path, backend: BackendChoice) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} from {}: {} nodes on {}, switch namespace {}; nothing is created in the host's namespace",
        plan.lab,
        plan.source.display(),
        plan.nodes.len(),
        plan.subnet,
        plan.switch_netns
    );
    // As `backend::settle` chooses: `auto` takes none only when nothing is
    // injected and no event changes a link.
    let backend = match backend {
        BackendChoice::None => "none: veth links on a bridge, the file's delays not injected",
        BackendChoice::Auto if !needs_netem(BackendChoice::Auto, plan) => {
            "none (nothing to inject): veth links on a bridge in the switch namespace"
        }
        BackendChoice::Auto => {
            "auto: netem on veth links and a bridge where the kernel has sch_netem, else the userspace emulator (a TAP eth0 per node)"
        }
        BackendChoice::Netem => "netem on veth links and a bridge (an error where the kernel lacks sch_netem)",
        BackendChoice::Emulator => "the userspace emulator: a TAP eth0 per node, switched and delayed by sdss lab-emulator",
    };
    let _ = writeln!(out, "delay backend {backend}");
    for host in &plan.hosts {
        let nodes: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| n.host.as_deref() == Some(host.name.as_str()))
            .map(|n| n.name.as_str())
            .collect();
        let own = host
            .backend
            .map(|b| format!(", its own backend {b:?}").to_lowercase())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "host {} (reached as {:?}, underlay {}{own}): {}",
            host.name,
            host.ssh,
            host.underlay,
            nodes.join(", ")
        );
    }
    if plan.spans_hosts() {
        let _ = writeln!(
            out,
            "segment: VXLAN {} between the hosts (UDP 4789, eth0 MTU 1450); each host builds its own share; the underlay's delay is measured at up and added to every cross-host pair below",
            plan.vni()
        );
    }
    // The matrix and the phases below align to the node names too.
    let name_w = plan
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut table = Table::new(&[
        ("NODE", Align::Left, 4),
        ("NAMESPACE", Align::Left, 9),
        ("ADDRESS (eth0)", Align::Left, 18),
        ("PORT", Align::Left, 5),
        ("LINK", Align::Left, 22),
        ("RUNS", Align::Left, 0),
    ])
    .indent("  ");
    for node in &plan.nodes {
        let link = describe_link(&node.link);
        let runs = match &node.program {
            Program::Sdss { .. } => format!(
                "{}{}",
                node.argv(plan, sdss).join(" "),
                if node.confined(plan, sdss) {
                    " [confined]"
                } else {
                    ""
                }
            ),
            Program::Command { .. } => format!(
                "{}{}{}",
                node.argv(plan, sdss).join(" "),
                if node.confined(plan, sdss) {
                    " [confined]"
                } else {
                    ""
                },
                if node.grade {
                    " (graded against the assignment)"
                } else if node.graded {
                    ""
                } else {
                    " (not graded)"
                }
            ),
            Program::Probe => "(the grading probe: no process)".to_owned(),
        };
        table.row(vec![
            node.name.clone(),
            node.netns.clone(),
            format!("{}/{}", node.address, plan.subnet.prefix_len()),
            node.bridge_port.to_string(),
            link,
            runs,
        ]);
    }
    out.push_str(&table.render());
    if plan.nodes.iter().any(|n| n.confined(plan, sdss)) {
        let _ = writeln!(
            out,
            "confined programs run as an unprivileged user, in mount and PID namespaces of their own, with a seccomp filter, within {} ([sandbox]; --no-sandbox for programs you trust)",
            plan.sandbox.limits.describe()
        );
    }
    let _ = writeln!(
        out,
        "expected one-way delay in ms, {} (row: sender B, column: receiver A; A measures B -> A){}:",
        if plan.expected.iter().any(|p| p.overridden) { "per-pair entries marked *" } else { "egress model d_B + d_A" },
        if plan.expected.iter().any(|p| shaped(&p.impairment)) {
            ", each pair's whole shape after"
        } else {
            ""
        }
    );
    let cell_w = plan
        .expected
        .iter()
        .map(|p| cell(p.impairment.delay, p.overridden).len())
        .chain(plan.nodes.iter().map(|n| n.name.len()))
        .max()
        .unwrap_or(6)
        .max(6);
    let measured: Vec<&crate::lab::plan::NodePlan> = plan
        .nodes
        .iter()
        .filter(|n| n.program != Program::Probe)
        .collect();
    let _ = write!(out, "  {:<name_w$}", "B \\ A");
    for to in &measured {
        let _ = write!(out, "  {:>cell_w$}", to.name);
    }
    let _ = writeln!(out);
    for from in &measured {
        let _ = write!(out, "  {:<name_w$}", from.name);
        for to in &measured {
            let text = plan
                .expected(&from.name, &to.name)
                .map_or("-".to_owned(), |p| cell(p.impairment.delay, p.overridden));
            let _ = write!(out, "  {text:>cell_w$}");
        }
        let _ = writeln!(out);
    }
    for pair in plan.expected.iter().filter(|p| shaped(&p.impairment)) {
        let links = [&pair.from, &pair.to].map(|n| plan.node(n).map(|n| n.link));
        let shape = match links {
            // Without per-pair classes each link applies its own shape in
            // turn; where both do more than a delay, say both.
            [Some(from), Some(to)]
                if !plan.per_pair && !pair.overridden && shaped(&from) && shaped(&to) =>
            {
                format!(
                    "{}'s link: {}; then {}'s link: {}",
                    pair.from,
                    describe_link(&from),
                    pair.to,
                    describe_link(&to)
                )
            }
            _ => describe_link(&pair.impairment),
        };
        let _ = writeln!(out, "  {} -> {}: {shape}", pair.from, pair.to);
    }
    if let Some(g) = &plan.grading {
        let graded: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| n.grade)
            .map(|n| n.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "grading {} for {} (up to {} more while one waits on the silent peer): silent peer at {}, {} joins at {}, malformed burst at {}, {}; ephemeral ports {}-{}; seed {}",
            graded.join(", "),
            format_duration(g.duration),
            format_duration(crate::lab::plan::GradeSettings::STUCK_OPEN),
            format_duration(g.silent_at),
            crate::lab::scenario::grading::JOINER,
            format_duration(g.joined_at),
            format_duration(g.burst_at),
            g.kill.as_ref().map_or("no node killed".to_owned(), |k| format!("{k} killed at {}", format_duration(g.kill_at))),
            g.port_range.0,
            g.port_range.1,
            g.seed
        );
    }
    let v = &plan.verify;
    let _ = writeln!(
        out,
        "verify: median of {} samples after {} warm-up, tolerance max({}, {}%), time limit {}; nodes announce every {}, measure every {} announcements",
        v.samples,
        v.warmup,
        format_duration(v.tolerance),
        v.tolerance_percent,
        format_duration(v.time_limit),
        format_duration(plan.node_settings.interval),
        plan.node_settings.refresh_every
    );
    if let Some(p) = &v.link {
        let _ = writeln!(
            out,
            "link probe: {} packets/s of {} bytes for {} on each of {} ordered pairs, once the nodes are graded",
            p.rate,
            p.size,
            format_duration(p.duration),
            plan.expected.len()
        );
    }
    out.push_str(&render_phases(plan, name_w));
    out
}

/// The timeline of `--dry-run`: each event, then the expected matrix of the
/// phase it begins (`cut`: separated, `down`: a node that does not run), and
/// the expectations.
fn render_phases(plan: &Plan, name_w: usize) -> String {
    let timeline = &plan.timeline;
    let mut out = String::new();
    if timeline.events.is_empty() && timeline.expects.is_empty() {
        return out;
    }
    let measured: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.program != Program::Probe)
        .map(|n| n.name.as_str())
        .collect();
    let cell_w = measured.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
    for (index, phase) in timeline.phases.iter().enumerate().skip(1) {
        let _ = writeln!(
            out,
            "at {}: {}; expected delay in ms from then on (row: sender):",
            format_duration(phase.from),
            crate::lab::plan::timeline::describe_event(plan, index - 1)
        );
        let _ = write!(out, "  {:<name_w$}", "B \\ A");
        for to in &measured {
            let _ = write!(out, "  {to:>cell_w$}");
        }
        let _ = writeln!(out);
        for from in &measured {
            let _ = write!(out, "  {from:<name_w$}");
            for to in &measured {
                let text = if from == to {
                    "-".to_owned()
                } else if !phase.running.contains(*from) || !phase.running.contains(*to) {
                    "down".to_owned()
                } else {
                    match phase.pair(from, to) {
                        Some(PairState::Linked(i)) => format!("{:.3}", i.delay.as_secs_f64() * 1e3),
                        Some(PairState::Separated) => "cut".to_owned(),
                        None => "-".to_owned(),
                    }
                };
                let _ = write!(out, "  {text:>cell_w$}");
            }
            let _ = writeln!(out);
        }
    }
    let length = timeline.length();
    let _ = writeln!(
        out,
        "{} expectations; the run lasts at least {}",
        timeline.expects.len(),
        format_duration(length)
    );
    out
}

fn cell(delay: std::time::Duration, overridden: bool) -> String {
    format!(
        "{:.3}{}",
        delay.as_secs_f64() * 1000.0,
        if overridden { "*" } else { "" }
    )
}

/// Whether a pair does more than a fixed delay, so its whole shape is listed.
fn shaped(link: &crate::lab::plan::impairment::Impairment) -> bool {
    !link.jitter.is_zero() || link.is_shaped() || link.loss.mean() > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::Topology;

    fn backend_line(text: &str, choice: BackendChoice) -> String {
        let path = Path::new("lab.toml");
        let plan = Plan::new(&Topology::parse(path, text).unwrap(), path);
        let shown = render_plan(&plan, Path::new("sdss"), choice);
        shown.lines().nth(1).unwrap().to_owned()
    }

    #[test]
    fn the_dry_run_names_the_backend_the_run_takes() {
        let still = "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n";
        let cut = format!("{still}[[event]]\nat = \"5s\"\naction = \"cut\"\nnode = \"b\"\n");
        // No delay, but a cut to make: the run takes netem or the emulator.
        let line = backend_line(&cut, BackendChoice::Auto);
        assert!(line.starts_with("delay backend auto: netem"), "{line}");
        let line = backend_line(still, BackendChoice::Auto);
        assert!(line.starts_with("delay backend none (nothing"), "{line}");
        let line = backend_line(still, BackendChoice::Emulator);
        assert!(
            line.starts_with("delay backend the userspace emulator"),
            "{line}"
        );
    }
}
