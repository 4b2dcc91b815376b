//! Real labs with real sdss nodes: a zero-delay lab converges and passes, nodes
//! that misreport fail verification, netem labs run where the kernel has netem.

mod lab_support;

use lab_support::*;
use sdss::lab::judge::delays::PairVerdict;
use sdss::lab::report::Report;

/// A lab of `nodes` sdss nodes measuring often enough to converge in seconds.
fn fast_lab(lab: &str, nodes: usize, extra: &str) -> String {
    let mut text = format!(
        "name = \"{lab}\"\n[defaults]\ninterval = \"200ms\"\nrefresh_every = 3\n[verify]\nsamples = 3\nwarmup = 1\ntime_limit = \"30s\"\n"
    );
    for i in 0..nodes {
        text.push_str(&format!("[[node]]\nname = \"n{i}\"\n"));
    }
    text.push_str(extra);
    text
}

fn report(output: &std::process::Output) -> Report {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

#[test]
fn a_zero_delay_lab_converges_and_passes() {
    if !sandboxed("a_zero_delay_lab_converges_and_passes") {
        return;
    }
    let scratch = Scratch::new("zero");
    let lab = unique("zero");
    let file = scratch.lab("zero.toml", &fast_lab(&lab, 3, ""));
    let output = run(&["lab", "run", "--json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = report(&output);
    assert_eq!(report.summary.pairs, 6);
    assert_eq!(report.summary.passed, 6, "{}", report.render());
    assert!(report.converged);
    assert_eq!(report.backend.to_string(), "none");
    // Nothing to inject: the backend does not depend on netem, so it is not probed.
    assert!(report.netem.is_none(), "{:?}", report.netem);
    for pair in &report.pairs {
        assert!(pair.measured_ms.unwrap() < 0.5, "{pair:?}");
        assert_eq!(pair.samples, 3);
    }
    assert_clean(&lab, None);
}

#[test]
fn up_verify_logs_then_down() {
    if !sandboxed("up_verify_logs_then_down") {
        return;
    }
    let scratch = Scratch::new("upverify");
    let lab = unique("uv");
    let file = scratch.lab("uv.toml", &fast_lab(&lab, 2, ""));
    let up = run(&["lab", "up", file.to_str().unwrap()]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    assert!(
        String::from_utf8_lossy(&up.stdout).contains("PASS: 2 pairs, 2 pass, 0 fail"),
        "{}",
        text(&up)
    );
    // The lab is left running: grade it again, read a node's events.
    let verify = run(&["lab", "verify", &lab, "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert_eq!(report(&verify).summary.passed, 2);
    // As the node shows itself on a terminal, and as it wrote its events.
    let logs = run(&["lab", "logs", &lab, "n0"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains(" started node "),
        "{}",
        text(&logs)
    );
    let raw = run(&["lab", "logs", &lab, "n0", "--json"]);
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("\"event\":\"started\""),
        "{}",
        text(&raw)
    );
    let down = run(&["lab", "down", file.to_str().unwrap()]);
    assert!(down.status.success(), "{}", text(&down));
    assert_clean(&lab, None);
}

#[test]
fn nodes_that_misreport_fail_verification() {
    if !sandboxed("nodes_that_misreport_fail_verification") {
        return;
    }
    let scratch = Scratch::new("liar");
    let lab = unique("liar");
    // n1 is a real sdss node whose reported delays are all rewritten to 25 ms.
    let liar = "[[node]]\nname = \"liar\"\njson = true\ncommand = [\"sh\", \"-c\", \"exec {sdss} node --json --interval 200ms --refresh-every 3 | sed -u 's/\\\"delay_ms\\\":[0-9.e+-]*/\\\"delay_ms\\\":25.0/'\"]\n";
    let file = scratch.lab("liar.toml", &fast_lab(&lab, 1, liar));
    let output = run(&["lab", "run", "--json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = report(&output);
    let lie = report.pairs.iter().find(|p| p.to == "liar").unwrap();
    assert_eq!(lie.verdict, PairVerdict::Fail, "{}", report.render());
    assert_eq!(lie.measured_ms, Some(25.0));
    assert!(
        lie.reason.as_deref().unwrap().starts_with("off by +25"),
        "{lie:?}"
    );
    let honest = report.pairs.iter().find(|p| p.to == "n0").unwrap();
    assert_eq!(honest.verdict, PairVerdict::Pass, "{}", report.render());
    assert_eq!(report.summary.failed, 1);
    assert_clean(&lab, Some("sed -u s/"));
}

#[test]
fn a_node_that_never_answers_is_a_failure_with_a_reason() {
    if !sandboxed("a_node_that_never_answers_is_a_failure_with_a_reason") {
        return;
    }
    let scratch = Scratch::new("mute");
    let lab = unique("mute");
    let mute = "[[node]]\nname = \"mute\"\ncommand = [\"sleep\", \"7501\"]\n";
    let body = fast_lab(&lab, 1, mute).replace("time_limit = \"30s\"", "time_limit = \"3s\"");
    let file = scratch.lab("mute.toml", &body);
    let output = run(&["lab", "run", "--json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = report(&output);
    let from_mute = report.pairs.iter().find(|p| p.from == "mute").unwrap();
    assert_eq!(from_mute.verdict, PairVerdict::Fail);
    assert!(
        from_mute
            .reason
            .as_deref()
            .unwrap()
            .starts_with("not discovered"),
        "{from_mute:?}"
    );
    let to_mute = report.pairs.iter().find(|p| p.to == "mute").unwrap();
    assert_eq!(to_mute.verdict, PairVerdict::Skipped);
    assert_clean(&lab, Some("sleep 7501"));
}

#[test]
fn netem_labs_pass_where_the_kernel_has_netem() {
    if !sandboxed("netem_labs_pass_where_the_kernel_has_netem") {
        return;
    }
    let scratch = Scratch::new("netem");
    let lab = unique("netem");
    let file = scratch.lab(
        "netem.toml",
        &fast_lab(&lab, 2, "").replacen(
            "[[node]]\nname = \"n0\"\n",
            "[[node]]\nname = \"n0\"\ndelay = \"4ms\"\n",
            1,
        ),
    );
    let output = run(&[
        "lab",
        "run",
        "--json",
        "--backend",
        "netem",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(2) && stderr.contains("no sch_netem") {
        eprintln!(
            "skipping netem_labs_pass_where_the_kernel_has_netem: the kernel has no sch_netem"
        );
        assert_clean(&lab, None);
        return;
    }
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = report(&output);
    assert_eq!(report.backend.to_string(), "netem");
    for pair in &report.pairs {
        assert!((pair.measured_ms.unwrap() - 4.0).abs() < 0.5, "{pair:?}");
    }
    assert_clean(&lab, None);
}
