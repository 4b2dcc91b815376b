//! Labs clean up after themselves: `down` after `kill -9` of `up` at any point,
//! Ctrl-C during `up`, look-alike namespaces left alone, a second `up` refused,
//! two labs side by side. Nodes here are `sleep` commands: what is tested is the
//! lifecycle, not the measurement.

mod lab_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use lab_support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A lab of `nodes` nodes that each run `sleep <marker>`, graded as if they were sdss.
fn sleepers(lab: &str, nodes: usize, marker: u32) -> String {
    let mut text = format!("name = \"{lab}\"\n[verify]\ntime_limit = \"30s\"\n");
    for i in 0..nodes {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\ncommand = [\"sleep\", \"{marker}\"]\njson = true\n"
        ));
    }
    text
}

#[test]
fn kill_9_at_any_point_of_up_then_down_leaves_nothing() {
    if !sandboxed("kill_9_at_any_point_of_up_then_down_leaves_nothing") {
        return;
    }
    let scratch = Scratch::new("kill9");
    for (round, delay_ms) in [0u64, 3, 10, 25, 50, 100, 200, 400, 800]
        .into_iter()
        .enumerate()
    {
        let lab = unique(&format!("k{round}x"));
        let marker = 7000 + round as u32;
        let file = scratch.lab(&format!("{lab}.toml"), &sleepers(&lab, 12, marker));
        let mut up = sdss()
            .args(["lab", "up", "--no-verify"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = up.kill();
        let _ = up.wait();
        let down = run(&["lab", "down", &lab]);
        assert!(down.status.success(), "round {round}: {}", text(&down));
        assert_clean(&lab, Some(&format!("sleep {marker}")));
        // And again: down is idempotent.
        let again = run(&["lab", "down", &lab]);
        assert!(again.status.success(), "{}", text(&again));
    }
}

#[test]
fn ctrl_c_during_up_removes_everything() {
    if !sandboxed("ctrl_c_during_up_removes_everything") {
        return;
    }
    interrupted_up_removes_everything(Signal::SIGINT, 130, 7101);
}

#[test]
fn sigterm_during_up_removes_everything_and_exits_143() {
    if !sandboxed("sigterm_during_up_removes_everything_and_exits_143") {
        return;
    }
    interrupted_up_removes_everything(Signal::SIGTERM, 143, 7102);
}

/// `lab up` of sleepers, interrupted by `signal` once everything exists: it
/// exits `128 + signal` and leaves nothing.
fn interrupted_up_removes_everything(signal: Signal, code: i32, marker: u32) {
    let scratch = Scratch::new(&format!("int{marker}"));
    let lab = unique("int");
    // The sleepers never report: `up` waits for convergence until interrupted.
    let file = scratch.lab("int.toml", &sleepers(&lab, 3, marker));
    let up = sdss()
        .args(["lab", "up"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while namespaces(&format!("sdss-{lab}")).len() < 4
        || processes_with(&format!("sleep {marker}")).len() < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "lab never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(up.id() as i32), signal).unwrap();
    let output = up.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(code), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("interrupted"),
        "{}",
        text(&output)
    );
    assert_clean(&lab, Some(&format!("sleep {marker}")));
}

#[test]
fn lookalike_namespaces_survive_down() {
    if !sandboxed("lookalike_namespaces_survive_down") {
        return;
    }
    let scratch = Scratch::new("lookalike");
    let lab = unique("look");
    let file = scratch.lab("look.toml", &sleepers(&lab, 2, 7201));
    // Someone else's namespaces, named like the lab's: one is exactly the name of
    // a node the lab will not have, one exactly the switch's name of another lab.
    let foreign = [format!("sdss-{lab}-n9"), format!("sdss-{lab}-x")];
    for name in &foreign {
        assert!(std::process::Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap()
            .success());
    }
    let up = run(&["lab", "up", "--no-verify", file.to_str().unwrap()]);
    assert!(up.status.success(), "{}", text(&up));
    let down = run(&["lab", "down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("left alone"),
        "{}",
        text(&down)
    );
    let left = namespaces(&format!("sdss-{lab}"));
    assert_eq!(left, foreign.to_vec());
    // A down with no lab at all still leaves them.
    let again = run(&["lab", "down", &lab]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(namespaces(&format!("sdss-{lab}")), foreign.to_vec());
    for name in &foreign {
        assert!(std::process::Command::new("ip")
            .args(["netns", "del", name])
            .status()
            .unwrap()
            .success());
    }
}

#[test]
fn a_namespace_in_the_way_stops_up_without_touching_it() {
    if !sandboxed("a_namespace_in_the_way_stops_up_without_touching_it") {
        return;
    }
    let scratch = Scratch::new("inway");
    let lab = unique("way");
    let file = scratch.lab("way.toml", &sleepers(&lab, 2, 7301));
    let theirs = format!("sdss-{lab}-n1");
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &theirs])
        .status()
        .unwrap()
        .success());
    let up = run(&["lab", "up", "--no-verify", file.to_str().unwrap()]);
    assert_eq!(up.status.code(), Some(2), "{}", text(&up));
    assert!(
        String::from_utf8_lossy(&up.stderr).contains("not created by this lab"),
        "{}",
        text(&up)
    );
    assert_eq!(namespaces(&format!("sdss-{lab}")), vec![theirs.clone()]);
    assert!(!std::path::Path::new("/run/sdss/labs").join(&lab).exists());
    assert!(std::process::Command::new("ip")
        .args(["netns", "del", &theirs])
        .status()
        .unwrap()
        .success());
}

#[test]
fn two_labs_side_by_side_and_a_second_up_is_refused() {
    if !sandboxed("two_labs_side_by_side_and_a_second_up_is_refused") {
        return;
    }
    let scratch = Scratch::new("side");
    let first = unique("one");
    let second = unique("two");
    let a = scratch.lab("a.toml", &sleepers(&first, 2, 7401));
    let b = scratch.lab("b.toml", &sleepers(&second, 2, 7402));
    for file in [&a, &b] {
        let up = run(&["lab", "up", "--no-verify", file.to_str().unwrap()]);
        assert!(up.status.success(), "{}", text(&up));
    }
    let again = run(&["lab", "up", "--no-verify", a.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already up"),
        "{}",
        text(&again)
    );
    // Other tests' labs come and go meanwhile: none may hide these two.
    let status = run(&["lab", "status"]);
    assert!(status.status.success(), "{}", text(&status));
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(
        listing.contains(&first) && listing.contains(&second),
        "{listing}"
    );
    // The same labs for programs: CSV and JSON, with the same fields.
    let csv = run(&["lab", "status", "--format", "csv"]);
    assert!(csv.status.success(), "{}", text(&csv));
    let csv = String::from_utf8_lossy(&csv.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("lab,phase,nodes_running,nodes,backend,source,created_at")
    );
    for lab in [&first, &second] {
        let row = format!("{lab},running,2,2,");
        assert!(lines.clone().any(|l| l.starts_with(&row)), "{csv}");
    }
    let json = run(&["lab", "status", "--format", "json"]);
    assert!(json.status.success(), "{}", text(&json));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["lab"] == first.as_str())
        .unwrap_or_else(|| panic!("{first} not in {json}"));
    assert_eq!(
        (row["phase"].as_str(), row["nodes"].as_u64()),
        (Some("running"), Some(2))
    );
    // The refused second `up` did not disturb the first lab.
    assert_eq!(namespaces(&format!("sdss-{first}")).len(), 3);
    let exec = run(&[
        "lab",
        "exec",
        &first,
        "n0",
        "--",
        "sh",
        "-c",
        "echo $SDSS_ADDRESS; cat /proc/net/dev | grep -c eth0",
    ]);
    assert!(exec.status.success(), "{}", text(&exec));
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "198.18.0.1\n1\n");
    // As a shell: 127 for a command not found, 126 for a file that cannot run, one line each.
    for (argv, code, says) in [
        ("nosuchcmd", 127, "nosuchcmd: command not found"),
        ("/etc/passwd", 126, "/etc/passwd: permission denied"),
    ] {
        let exec = run(&["lab", "exec", &first, "n0", "--", argv]);
        assert_eq!(exec.status.code(), Some(code), "{}", text(&exec));
        let said = String::from_utf8_lossy(&exec.stderr);
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(said.contains(says), "{said}");
    }
    for lab in [&first, &second] {
        let down = run(&["lab", "down", lab]);
        assert!(down.status.success(), "{}", text(&down));
    }
    assert_clean(&first, Some("sleep 7401"));
    assert_clean(&second, Some("sleep 7402"));
}

#[test]
fn without_root_one_clear_line_and_exit_2() {
    if !sandboxed("without_root_one_clear_line_and_exit_2") {
        return;
    }
    use std::os::unix::process::CommandExt;
    // Run as nobody, from a copy every user can reach: the checkout may sit
    // where other users cannot enter (a clone under /root).
    let sdss = PublicSdss::new();
    let mut command = sdss.command();
    command.args(["lab", "status"]).uid(65534).gid(65534);
    let output = sdss.output(&mut command);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}
