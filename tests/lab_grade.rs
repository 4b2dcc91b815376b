//! Grading real implementations: the Python fixtures in `tests/grade/` (one
//! correct node written from the assignment, one fixture per fault) run in one
//! lab together (with an sdss node graded the same way), and each one's
//! checklist is asserted check by check; then `sdss lab grade -- CMD` grades
//! the correct one in its default lab.

mod lab_support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use lab_support::*;
use sdss::lab::judge::{Checklist, Verdict};
use sdss::lab::report::Report;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grade")
        .join(name)
        .display()
        .to_string()
}

/// Every check the grader makes, in order.
const ALL_CHECKS: [&str; 22] = [
    "announce.format",
    "announce.port",
    "announce.cadence",
    "announce.own",
    "announce.heard",
    "server.reachable",
    "server.port_zero",
    "server.speaks_first",
    "server.closes",
    "server.encoding",
    "server.utc",
    "server.robust",
    "client.prompt",
    "client.refresh",
    "client.joined",
    "client.killed",
    "client.silent_peer",
    "client.malformed",
    "process.alive",
    "process.cpu",
    "process.memory",
    "process.limits",
];

/// Each fixture, its node name, and the checks its fault must fail (all
/// others must pass). A node nobody hears cannot have its announcements
/// judged, nor be reached through them.
const FIXTURES: [(&str, &str, &[&str]); 10] = [
    ("correct", "correct.py", &[]),
    ("float32", "fault_float32.py", &["server.encoding"]),
    ("localtime", "fault_local_time.py", &["server.utc"]),
    ("every", "fault_every_broadcast.py", &["client.refresh"]),
    ("fixedport", "fault_fixed_port.py", &["server.port_zero"]),
    (
        "wrongport",
        "fault_wrong_port.py",
        &["announce.port", "server.reachable"],
    ),
    (
        "clientfirst",
        "fault_client_first.py",
        &["server.speaks_first"],
    ),
    ("busy", "fault_busy_loop.py", &["process.cpu"]),
    // Its connections to itself live under a millisecond, between two
    // readings of /proc: only their SYNs, seen as they happen, show them.
    (
        "selfconn",
        "fault_self_connect.py",
        &["announce.own", "server.closes"],
    ),
    (
        "dest",
        "fault_destination.py",
        &[
            "announce.format",
            "announce.port",
            "announce.cadence",
            "announce.own",
            "announce.heard",
            "server.reachable",
        ],
    ),
];

fn assert_grade(list: &Checklist, failing: &[&str]) {
    assert_verdicts(list, failing, &[]);
}

/// Asserts the checks in `failing` fail, those in `warned` warn, and all others pass.
fn assert_verdicts(list: &Checklist, failing: &[&str], warned: &[&str]) {
    let ids: Vec<&str> = list.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ALL_CHECKS, "{}", list.render());
    let expected: BTreeSet<&str> = failing.iter().copied().collect();
    for check in &list.checks {
        let want = if expected.contains(check.id.as_str()) {
            Verdict::Fail
        } else if warned.contains(&check.id.as_str()) {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
        assert_eq!(
            check.verdict,
            want,
            "node {} check {}: {}\n{}",
            list.node,
            check.id,
            check.evidence,
            list.render()
        );
        assert!(!check.evidence.is_empty(), "{}", list.render());
    }
    assert_eq!(list.ok(), failing.is_empty());
}

#[test]
fn every_fixture_fails_exactly_its_checks() {
    if !sandboxed("every_fixture_fails_exactly_its_checks") {
        return;
    }
    let scratch = Scratch::new("grade");
    let lab = unique("gall");
    let mut toml = format!(
        "name = \"{lab}\"\n[defaults]\nrefresh_every = 2\n[verify]\nsamples = 2\nwarmup = 1\n[grade]\nduration = \"24s\"\nkill = \"c\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n"
    );
    // sdss itself, graded like a submission: it must pass its own grader.
    toml.push_str("[[node]]\nname = \"itself\"\ngrade = true\n");
    for (name, file, _) in FIXTURES {
        toml.push_str(&format!(
            "[[node]]\nname = \"{name}\"\ncommand = [\"python3\", \"{}\", \"{{lab}}\"]\ngrade = true\n",
            fixture(file)
        ));
    }
    let file = scratch.lab("grade.toml", &toml);
    let output = run(&["lab", "run", "--json", file.to_str().unwrap()]);
    // Some fixtures fail, so the lab does.
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    assert_eq!(
        report.grading.len(),
        FIXTURES.len() + 1,
        "{}",
        report.render()
    );
    let itself = report.grading.iter().find(|l| l.node == "itself").unwrap();
    assert_grade(itself, &[]);
    for (name, _, failing) in FIXTURES {
        let list = report
            .grading
            .iter()
            .find(|l| l.node == name)
            .unwrap_or_else(|| panic!("no checklist for {name}: {}", report.render()));
        assert_grade(list, failing);
    }
    // Every program ran confined, and said so.
    for list in &report.grading {
        let limits = &list.check("process.limits").unwrap().evidence;
        assert!(limits.contains("confined: 512 MiB memory"), "{limits}");
    }
    // The text report carries the same checklists.
    let rendered = report.render();
    assert!(rendered.contains("score correct: 100.0%"), "{rendered}");
    // The fixtures carry the lab's name as an argument, to be found here.
    assert_clean(&lab, Some(&format!(".py {lab}")));
}

#[test]
fn lab_grade_grades_a_trusted_program_unconfined_in_a_default_lab() {
    if !sandboxed("lab_grade_grades_a_trusted_program_unconfined_in_a_default_lab") {
        return;
    }
    let lab = unique("gone");
    let correct = fixture("correct.py");
    let output = run(&[
        "lab",
        "grade",
        "--json",
        "--no-sandbox",
        "--name",
        &lab,
        "--",
        "python3",
        &correct,
        &lab,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: Report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    assert_eq!(report.grading.len(), 1);
    assert_grade(&report.grading[0], &[]);
    assert_eq!(
        report.grading[0].command,
        ["python3", correct.as_str(), lab.as_str()]
    );
    let limits = &report.grading[0].check("process.limits").unwrap().evidence;
    assert!(limits.starts_with("not confined"), "{limits}");
    assert_clean(&lab, Some(&format!(".py {lab}")));
}

/// Grades one fragile fixture in a lab of its own (three sdss nodes, the
/// default scenario) and returns its checklist, printed.
fn grade_alone(test: &str, stem: &str, file: &str) -> Option<Checklist> {
    if !sandboxed(test) {
        return None;
    }
    let lab = unique(stem);
    let path = fixture(file);
    // It runs the interop fixture beside its own folder: its folder is tests/.
    let tests = env!("CARGO_MANIFEST_DIR").to_owned() + "/tests";
    let output = run(&[
        "lab", "grade", "--json", "--name", &lab, "--dir", &tests, "--", "python3", &path, &lab,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    assert_clean(&lab, Some(&format!(".py {lab}")));
    let list = report.grading.into_iter().next().expect("one checklist");
    println!("{}", list.render());
    Some(list)
}

#[test]
fn a_text_client_first_server_is_judged_before_the_lab_can_kill_it() {
    let Some(list) = grade_alone(
        "a_text_client_first_server_is_judged_before_the_lab_can_kill_it",
        "gfra",
        "fragile_text_client_first.py",
    ) else {
        return;
    };
    assert_verdicts(
        &list,
        &["server.speaks_first", "server.robust"],
        &["server.encoding"],
    );
    let evidence = |id: &str| list.check(id).unwrap().evidence.clone();
    assert!(
        evidence("server.speaks_first")
            .contains("once the lab wrote its time as text, it answered"),
        "{}",
        list.render()
    );
    assert!(
        evidence("server.encoding").contains("ascii"),
        "{}",
        list.render()
    );
    assert!(
        evidence("server.robust").contains("a client that wrote nothing and closed"),
        "{}",
        list.render()
    );
}

#[test]
fn a_client_stuck_on_the_silent_peer_is_reported_stuck_since_then() {
    let Some(list) = grade_alone(
        "a_client_stuck_on_the_silent_peer_is_reported_stuck_since_then",
        "gfrd",
        "fragile_inline.py",
    ) else {
        return;
    };
    // It never meets the joiner (t=7.9 s): it has been stuck since t=6 s.
    assert_verdicts(
        &list,
        &[
            "client.prompt",
            "client.joined",
            "client.killed",
            "client.silent_peer",
            "client.malformed",
        ],
        &[],
    );
    for id in ["client.silent_peer", "client.malformed", "client.killed"] {
        let evidence = &list.check(id).unwrap().evidence;
        assert!(
            evidence.contains("stuck since the silent peer appeared")
                && evidence.contains("its last connection was to the silent peer"),
            "{id}: {}",
            list.render()
        );
    }
}

#[test]
fn a_client_that_reaches_the_silent_peer_late_and_waits_there_is_stuck() {
    let Some(list) = grade_alone(
        "a_client_that_reaches_the_silent_peer_late_and_waits_there_is_stuck",
        "gfrl",
        "fragile_late_stuck.py",
    ) else {
        return;
    };
    // Behind on the broadcasts, it measured the sdss nodes after the silent
    // peer appeared (t=6 s) and reached it only then, late in the run.
    let silent = list.check("client.silent_peer").unwrap();
    assert_eq!(silent.verdict, Verdict::Fail, "{}", list.render());
    for part in [
        "stuck since it connected to the silent peer at t=",
        "that connection was still open at the end, 12.0 s later",
        "connections to sdss nodes)",
        // It reached it less than 12 s before the end: the lab watched on.
        "; the watch was extended by ",
    ] {
        assert!(silent.evidence.contains(part), "{part}: {}", list.render());
    }
}

#[test]
fn a_client_that_gives_up_on_the_silent_peer_after_the_end_is_not_stuck() {
    let Some(list) = grade_alone(
        "a_client_that_gives_up_on_the_silent_peer_after_the_end_is_not_stuck",
        "gfrt",
        "fragile_slow_timeout.py",
    ) else {
        return;
    };
    // Behind as fragile_late_stuck.py, it reaches the silent peer late in the
    // run and gives up on it 6 s later, past the run's end: the watch is
    // extended until it does, and it is not called stuck there.
    let silent = list.check("client.silent_peer").unwrap();
    assert!(
        silent.verdict != Verdict::Fail || !silent.evidence.contains("stuck"),
        "{}",
        list.render()
    );
    assert!(
        !silent.evidence.contains("too young to tell"),
        "{}",
        list.render()
    );
}
