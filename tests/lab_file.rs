//! Lab files and `--dry-run`: no kernel, no root.

mod lab_support;

use lab_support::*;

#[test]
fn every_shipped_lab_plans_and_the_five_node_matrix_follows_the_egress_model() {
    for lab in ["two-nodes", "five-nodes", "matrix", "lossy", "grade"] {
        let path = format!("{}/labs/{lab}.toml", env!("CARGO_MANIFEST_DIR"));
        let output = run(&["lab", "run", "--dry-run", &path]);
        assert!(output.status.success(), "{lab}: {}", text(&output));
    }
    let path = format!("{}/labs/five-nodes.toml", env!("CARGO_MANIFEST_DIR"));
    let output = run(&["lab", "up", "--dry-run", &path]);
    let plan = String::from_utf8_lossy(&output.stdout);
    // Row e (40 ms link) to column d (20 ms link): 60 ms; a -> b: 1 + 5.
    assert!(
        plan.contains("  e     41.000  45.000  50.000  60.000       -"),
        "{plan}"
    );
    assert!(
        plan.contains("  a          -   6.000  11.000  21.000  41.000"),
        "{plan}"
    );
    assert!(plan.contains("sdss-five-e  198.18.5.5/24"), "{plan}");
}

#[test]
fn dry_run_json_is_the_plan() {
    let path = format!("{}/labs/matrix.toml", env!("CARGO_MANIFEST_DIR"));
    let output = run(&["lab", "up", "--dry-run", "--json", &path]);
    assert!(output.status.success(), "{}", text(&output));
    let plan: sdss::lab::plan::Plan = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan.lab, "matrix");
    let xy = plan.expected("x", "y").unwrap();
    assert_eq!(xy.impairment.delay, std::time::Duration::from_millis(30));
    assert!(xy.overridden);
}

#[test]
fn errors_name_file_line_column_and_exit_2() {
    let scratch = Scratch::new("errors");
    let cases = [
        (
            "name = \"x\"\n[[node]]\nname = \"a\"\ndealy = \"5ms\"\n",
            ":4:1: unknown field `dealy`",
        ),
        (
            "name = \"x\"\n[[node]]\nname = \"a\"\ndelay = \"5\"\n",
            ":4:9: ",
        ),
        (
            "name = \"x\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n",
            ":5:8: duplicate node name",
        ),
        (
            "name = \"x\"\nsubnet = \"224.0.0.0/24\"\n[[node]]\nname = \"a\"\n",
            ":2:10: subnet 224.0.0.0/24 overlaps multicast",
        ),
        (
            "name = \"x\"\n[[node]]\nname = \"a\"\nloss = 1.5\n",
            ":4:8: loss 1.5 is out of range",
        ),
        (
            "name = \"x\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n\
             [[event]]\nat = \"9s\"\naction = \"partition\"\ngroups = [[\"a\", \"b\"], [\"b\"]]\n",
            ":9:10: groups: node \"b\" is in group 1 and group 2",
        ),
        (
            "name = \"x\"\n[[node]]\nname = \"server\"\n\
             [[event]]\nat = \"9s\"\naction = \"kill\"\nnode = \"sever\"\n",
            ":7:8: no node is named \"sever\": did you mean \"server\"? expected one of server",
        ),
    ];
    for (index, (body, expected)) in cases.iter().enumerate() {
        let file = scratch.lab(&format!("bad{index}.toml"), body);
        let output = run(&["lab", "up", "--dry-run", file.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("bad{index}.toml{expected}")),
            "{stderr}"
        );
    }
}

/// The example labs the lab tests run are graded with tolerances that a
/// loaded machine meets; this shows that each still catches a wrong link:
/// for every node's link, some pair through it is off by at least twice its
/// tolerance when that link loses its delay, and so is every `[[pair]]`.
#[test]
fn every_example_lab_fails_a_link_that_lost_its_delay() {
    use std::time::Duration;
    for lab in [
        "two-nodes",
        "five-nodes",
        "matrix",
        "lossy",
        "delay-step",
        "failover",
        "partition",
    ] {
        let path = format!("{}/labs/{lab}.toml", env!("CARGO_MANIFEST_DIR"));
        let output = run(&["lab", "up", "--dry-run", "--json", &path]);
        assert!(output.status.success(), "{lab}: {}", text(&output));
        let plan: sdss::lab::plan::Plan = serde_json::from_slice(&output.stdout).unwrap();
        let caught =
            |lost: Duration, expected: Duration| lost >= 2 * plan.verify.tolerance_for(expected);
        for node in plan.nodes.iter().filter(|n| !n.link.delay.is_zero()) {
            let through = plan
                .expected
                .iter()
                .filter(|p| !p.overridden && (p.from == node.name || p.to == node.name));
            assert!(
                through
                    .clone()
                    .any(|p| caught(node.link.delay, p.impairment.delay)),
                "{lab}: node {}'s {:?} link could be lost unnoticed",
                node.name,
                node.link.delay
            );
        }
        for pair in plan.expected.iter().filter(|p| p.overridden) {
            let delay = pair.impairment.delay;
            assert!(
                delay.is_zero() || caught(delay, delay),
                "{lab}: pair {} -> {} ({delay:?}) could be lost unnoticed",
                pair.from,
                pair.to
            );
        }
    }
}

/// A bad value on the command line is refused at once, saying what it expects
/// (a negative duration reaches the parser rather than reading as an option).
#[test]
fn bad_command_line_values_say_what_they_expect() {
    let lab = format!("{}/labs/two-nodes.toml", env!("CARGO_MANIFEST_DIR"));
    let cases: &[(&[&str], &str)] = &[
        (
            &["lab", "run", "--dry-run", "--tolerance", "-1s", &lab],
            "a duration is a non-negative number with a unit: 500us, 20ms, 1.5s, 2m",
        ),
        (
            &["node", "--interval", "-1s"],
            "a duration is a non-negative number with a unit",
        ),
        (
            &["lab", "grade", "--duration", "5s", "--", "true"],
            "sdss: --duration: duration 5s is too short: expected at least 12 s",
        ),
        (
            &["node", "--broadcast-port", "0"],
            "port 0 is no port peers can reach",
        ),
    ];
    for (args, says) in cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("-- -1"),
            "{args:?}: a misleading tip: {stderr}"
        );
    }
}
