//! Each netem shape alone, and several together, on the userspace emulator
//! (and on netem in the VM), measured by the link probe: one lab whose
//! sender `a` reaches one node per shape, each node's link holding just that
//! shape (one shaped stage, exactly what was asked); every judged figure
//! passes, and the figure each shape is about is judged, not skipped.

mod lab_support;

use std::time::Duration;

use lab_support::*;
use sdss::lab::builder::netns;
use sdss::lab::judge::links::expect::Expectation;
use sdss::lab::judge::links::{judge_at, z_of, FigureVerdict};
use sdss::lab::plan::Plan;
use sdss::lab::scenario::link_probe::{measure, Endpoint, Probe, ProbeSettings, PROBE_PORT};
use tokio_util::sync::CancellationToken;

/// Downs the lab however the test ends.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let down = run(&["lab", "down", &self.0]);
        if !std::thread::panicking() {
            assert!(down.status.success(), "{}", text(&down));
        }
    }
}

/// Each receiver's name, the shape of the pair from `a` to it, and the
/// figures that shape must have judged (and passed).
const SHAPES: &[(&str, &str, &[&str])] = &[
    ("plain", "delay = \"30ms\"", &["delay.p50", "loss"]),
    (
        "normal",
        "delay = \"30ms\"\njitter = \"{J1}\"\ndistribution = \"normal\"",
        &["delay.p10", "delay.p50", "delay.p90"],
    ),
    (
        "correlated",
        "delay = \"30ms\"\njitter = \"{J2}\"\ndelay_correlation = 0.5",
        &["delay.p50"],
    ),
    (
        "lossy",
        "delay = \"30ms\"\nloss = 0.05",
        &["loss", "loss.burst", "delay.p50"],
    ),
    (
        // netem's correlated draw: 30% at 25% is about 23% in the long run.
        "corrloss",
        "delay = \"30ms\"\nloss = 0.3\nloss_correlation = 0.25",
        &["loss"],
    ),
    (
        "gemodel",
        "delay = \"30ms\"\nloss_model = { gemodel = [0.02, 0.3, 1.0, 0.0] }",
        &["loss", "loss.burst"],
    ),
    (
        "fourstate",
        "delay = \"30ms\"\nloss_model = { state = [0.01, 0.5, 0.0, 1.0, 0.01] }",
        &["loss"],
    ),
    (
        "dup",
        "delay = \"30ms\"\nduplicate = 0.05",
        &["duplicate", "loss"],
    ),
    (
        "reordered",
        // 35 ms over frames 10 ms apart: one sent at once overtakes three,
        // with 5 ms to spare either side (at 30 ms it would tie the fourth).
        "delay = \"35ms\"\nreorder = 0.2\nreorder_gap = 3",
        &["reorder"],
    ),
    ("corrupt", "delay = \"30ms\"\ncorrupt = 0.05", &["loss"]),
    (
        "slow",
        "delay = \"30ms\"\nrate = \"50kbit\"\nlimit = 20",
        &["rate", "loss"],
    ),
    (
        "slotted",
        "delay = \"30ms\"\nslot = { min = \"5ms\", max = \"10ms\" }",
        &["loss", "duplicate"],
    ),
    (
        "together",
        "delay = \"30ms\"\nloss = 0.02\nduplicate = 0.02\ncorrupt = 0.01",
        &["loss", "duplicate", "delay.p50"],
    ),
];

/// The lab: each shape's jitters `jitters` (for `{J1}` and `{J2}`), judged
/// within `tolerance`.
fn lab_file(lab: &str, tolerance: &str, jitters: [&str; 2]) -> String {
    let node = |name: &str| {
        format!("[[node]]\nname = \"{name}\"\ncommand = [\"sleep\", \"3600\"]\njson = true\n")
    };
    let mut text = format!(
        "name = \"{lab}\"\nsubnet = \"198.18.84.0/24\"\n[verify]\ntime_limit = \"30s\"\ntolerance = \"{tolerance}\"\n{}",
        node("a")
    );
    // Each shape on its receiver's link, crossed by the pair from `a` (whose
    // link is plain): one shaped stage, on netem the receiver's bridge port,
    // alone in its qdisc tree (a duplicating netem must be).
    for (name, shape, _) in SHAPES {
        text += &node(name);
        text += &shape
            .replace("{J1}", jitters[0])
            .replace("{J2}", jitters[1]);
        text += "\n";
    }
    text
}

#[test]
fn each_shape_alone_and_together_passes_the_probe_on_the_emulator() {
    let Some(_one) =
        one_at_a_time("each_shape_alone_and_together_passes_the_probe_on_the_emulator")
    else {
        return;
    };
    each_shape_passes_the_probe("emulator", "0.5ms", ["6ms", "8ms"]);
}

/// The shipped `labs/shapes.toml`, every shape on four nodes' links, each
/// pair crossing two of them: its nodes' delays verify and the link probe
/// (`[verify] link`) passes every pair's figures; a pair the probe judges
/// shows its loss, duplicates and reorders.
#[test]
fn the_shipped_shapes_lab_verifies_its_nodes_and_its_links_on_the_emulator() {
    let Some(_one) =
        one_at_a_time("the_shipped_shapes_lab_verifies_its_nodes_and_its_links_on_the_emulator")
    else {
        return;
    };
    let scratch = Scratch::new("shipshapes");
    let lab = unique("shp");
    let file = shipped(&scratch, "shapes.toml", &lab);
    let (output, report) = run_on_emulator(&file, &[]);
    eprintln!("{}", report.render());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let links = report.links.as_ref().expect("the file asks for the probe");
    assert_eq!(links.pairs.len(), 12);
    assert!(links.ok(), "{}", links.render());
    let figure = |from: &str, to: &str, name: &str| {
        let pair = links
            .pairs
            .iter()
            .find(|p| p.from == from && p.to == to)
            .unwrap();
        pair.figure(name).unwrap().clone()
    };
    // Each shape's own figure is judged on a pair through it.
    for (from, to, name) in [
        ("reordered", "pareto", "loss"),
        ("normal", "slow", "duplicate"),
        ("pareto", "slow", "loss"),
    ] {
        let f = figure(from, to, name);
        assert_eq!(
            f.verdict,
            FigureVerdict::Pass,
            "{from} -> {to} {name}: {f:?}"
        );
        assert!(f.expected.unwrap() > 0.0, "{from} -> {to} {name}: {f:?}");
    }
    assert_clean(&lab, Some(&emulator_of(&lab)));
    let _ = std::fs::remove_dir_all(&scratch.0);
}

/// The same on netem, in the VM `scripts/vm-netem.sh` boots (this machine's
/// kernel has no netem). A software-emulated VM adds a delay of its own, a
/// few ms at p90: judged within 8 ms, with jitters of 15 and 20 ms that
/// still tell a shape from a plain link.
#[test]
#[ignore = "netem: scripts/vm-netem.sh runs it in a VM whose kernel has sch_netem"]
fn each_shape_alone_and_together_passes_the_probe_on_netem() {
    let Some(_one) = one_at_a_time("each_shape_alone_and_together_passes_the_probe_on_netem")
    else {
        return;
    };
    each_shape_passes_the_probe("netem", "8ms", ["15ms", "20ms"]);
}

fn each_shape_passes_the_probe(backend: &str, tolerance: &str, jitters: [&str; 2]) {
    let scratch = Scratch::new("lshapes");
    let lab = unique("ls");
    let file = scratch.lab("ls.toml", &lab_file(&lab, tolerance, jitters));
    let dry = run(&["lab", "up", "--dry-run", "--json", file.to_str().unwrap()]);
    assert!(dry.status.success(), "{}", text(&dry));
    let plan: Plan = serde_json::from_slice(&dry.stdout).expect("the plan as JSON");
    let up = run(&[
        "lab",
        "up",
        "--no-verify",
        "--delay-backend",
        backend,
        file.to_str().unwrap(),
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let down = Down(lab.clone());

    let endpoints: Vec<Endpoint> = plan
        .nodes
        .iter()
        .map(|n| Endpoint {
            node: n.name.clone(),
            netns: netns::open(&n.netns, None).expect("the node's namespace"),
            address: n.address,
        })
        .collect();
    let index = |name: &str| plan.nodes.iter().position(|n| n.name == name).unwrap();
    let probes: Vec<Probe> = SHAPES
        .iter()
        .map(|(name, _, _)| Probe {
            from: index("a"),
            to: index(name),
        })
        .collect();
    // 10 ms apart, a third of the 30 ms delay.
    let settings = ProbeSettings {
        rate: 100.0,
        duration: Duration::from_secs(20),
        payload_bytes: 64,
        drain: Duration::from_millis(500),
        port: PROBE_PORT,
    };
    let records =
        measure(&endpoints, &probes, &settings, &CancellationToken::new()).expect("the probe runs");
    // About thirty chance figures: at 99.99% a correct lab fails one run in
    // 300, and a shape not applied still fails by far (0 of 2000 against 5%).
    let z = z_of(0.9999);
    let mut failed = Vec::new();
    for ((name, _, figures), record) in SHAPES.iter().zip(&records) {
        let planned = plan.expected("a", name).expect("a planned pair");
        let pair = judge_at(
            record,
            &Expectation::single(planned.impairment),
            false,
            &plan.verify,
            z,
        );
        eprint!("{name}:\n{}", pair.render());
        if !pair.ok() {
            failed.push(pair.render());
        }
        for figure in *figures {
            if pair.figure(figure).map(|f| f.verdict) != Some(FigureVerdict::Pass) {
                failed.push(format!(
                    "{name}: {figure} not judged a pass\n{}",
                    pair.render()
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));

    // A backend that dropped the option: the plain link's records judged
    // against each shape's plan fail on the figure that shape is about. (A
    // slot's delays are not judged, so a dropped slot goes unseen.)
    let plain = &records[0];
    for (name, figure) in [
        ("normal", "delay.p10"),
        ("correlated", "delay.p10"),
        ("lossy", "loss"),
        ("corrloss", "loss"),
        ("gemodel", "loss"),
        ("fourstate", "loss"),
        ("dup", "duplicate"),
        ("reordered", "reorder"),
        ("corrupt", "loss"),
        ("slow", "rate"),
        ("together", "duplicate"),
    ] {
        let told = plan.expected("a", name).expect("a planned pair").impairment;
        let pair = judge_at(plain, &Expectation::single(told), false, &plan.verify, z);
        let caught = pair.figure(figure).expect("the figure");
        eprintln!("{name} asked, plain link built: {caught:?}");
        assert_eq!(
            caught.verdict,
            FigureVerdict::Fail,
            "{name}: {figure}\n{}",
            pair.render()
        );
    }

    drop(endpoints);
    drop(down);
    assert_clean(
        &lab,
        (backend == "emulator")
            .then(|| emulator_of(&lab))
            .as_deref(),
    );
}
