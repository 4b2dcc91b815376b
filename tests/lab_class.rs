//! Grading a class: `sdss lab grade --class DIR` over folders made of the
//! fixtures of `tests/grade/`. A program's verdicts in a class run, labs at
//! once, are the ones it gets alone (one lab at a time); a result is kept
//! and reused; a grading past its time bound is stopped, its lab removed; a
//! submission that floods, forks and crashes stalls no one; Ctrl-C stops
//! every lab and leaves nothing behind.

mod lab_support;

use std::path::{Path, PathBuf};

use lab_support::*;
use sdss::lab::class::score::{FindingKind, SubmissionResult};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grade")
        .join(name)
}

/// A class folder: each submission its fixture as `solution.py`, beside the
/// `correct.py` the fault fixtures import; `empty` has nothing to start.
fn class(scratch: &Scratch, fixtures: &[(&str, &str)]) -> PathBuf {
    let dir = scratch.0.join("class");
    for (name, file) in fixtures {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture("correct.py"), folder.join("correct.py")).unwrap();
        std::fs::copy(fixture(file), folder.join("solution.py")).unwrap();
    }
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("empty/README.md"), "nothing here\n").unwrap();
    dir
}

fn results(dir: &Path) -> Vec<SubmissionResult> {
    let mut all: Vec<SubmissionResult> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())
        .collect();
    all.sort_by(|a, b| a.submission.cmp(&b.submission));
    all
}

fn verdicts(result: &SubmissionResult) -> Vec<(String, String)> {
    result
        .checks
        .iter()
        .map(|c| (c.id.clone(), format!("{:?}", c.verdict)))
        .collect()
}

/// A correct program, a server fault and a fault only a SYN watch sees: the
/// class graded twice (one lab at a time, then at once) within CI's time.
const CLASS: [(&str, &str); 3] = [
    ("alice", "correct.py"),
    ("bob", "fault_wrong_port.py"),
    ("carol", "fault_self_connect.py"),
];

#[test]
fn a_class_run_gives_each_submission_the_verdicts_it_gets_alone() {
    let Some(_alone) =
        one_at_a_time("a_class_run_gives_each_submission_the_verdicts_it_gets_alone")
    else {
        return;
    };
    let scratch = Scratch::new("class");
    let dir = class(&scratch, &CLASS);
    let name = unique("gcl");
    let grade = |results: &str, jobs: Option<&str>| {
        let results = scratch.0.join(results);
        let mut args = vec![
            "lab",
            "grade",
            "--class",
            dir.to_str().unwrap(),
            "--name",
            &name,
            "--seed",
            "7",
            "--results",
            results.to_str().unwrap(),
        ];
        if let Some(jobs) = jobs {
            args.extend(["--jobs", jobs]);
        }
        let started = std::time::Instant::now();
        let output = run(&args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        (results, output, started.elapsed())
    };
    let (alone, _, _) = grade("alone", Some("1"));
    let (together, output, _) = grade("together", Some("4"));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{table}");
    let (alone, together) = (results(&alone), results(&together));
    assert_eq!(alone.len(), 4, "{alone:?}");
    for (one, other) in alone.iter().zip(&together) {
        assert_eq!(one.submission, other.submission);
        assert_eq!(one.seed, 7);
        assert_eq!(
            verdicts(one),
            verdicts(other),
            "{}: alone and at once differ",
            one.submission
        );
    }
    let failed = |name: &str| -> Vec<String> {
        let result = together.iter().find(|r| r.submission == name).unwrap();
        result.failed().map(|c| c.id.clone()).collect()
    };
    assert_eq!(failed("alice"), Vec::<String>::new());
    assert_eq!(failed("bob"), ["announce.port", "server.reachable"]);
    assert_eq!(failed("carol"), ["announce.own", "server.closes"]);
    let empty = together.iter().find(|r| r.submission == "empty").unwrap();
    assert_eq!(empty.findings[0].kind, FindingKind::NothingToStart);
    assert_eq!(empty.percent(), 0.0);
    assert!(
        table.contains("alice") && table.contains("100.0%"),
        "{table}"
    );
    assert!(
        scratch.0.join("together/feedback/bob.txt").exists(),
        "a feedback file per submission"
    );
    for index in 0..4 {
        assert_clean(&format!("{name}x{index}"), None);
    }

    // Graded again with the same seed, nothing is regraded.
    let (_, output, took) = grade("together", None);
    let said = text(&output);
    assert_eq!(said.matches("(graded before)").count(), 4, "{said}");
    assert!(took.as_secs() < 10, "{took:?}: {said}");
}

#[test]
fn a_grading_past_its_time_bound_is_stopped_its_lab_removed_and_the_class_goes_on() {
    let Some(_alone) = one_at_a_time(
        "a_grading_past_its_time_bound_is_stopped_its_lab_removed_and_the_class_goes_on",
    ) else {
        return;
    };
    let scratch = Scratch::new("class-bound");
    let dir = class(&scratch, &[("alice", "correct.py")]);
    std::fs::write(dir.join("class.toml"), "[grade]\ntimeout = \"6s\"\n").unwrap();
    let name = unique("gcb");
    let output = run(&[
        "lab",
        "grade",
        "--class",
        dir.to_str().unwrap(),
        "--name",
        &name,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let graded = results(&dir.join(".grades"));
    let alice = graded.iter().find(|r| r.submission == "alice").unwrap();
    assert_eq!(alice.findings[0].kind, FindingKind::TimedOut, "{alice:?}");
    assert!(alice.findings[0].detail.contains("6s"), "{alice:?}");
    assert_eq!(graded.len(), 2, "the empty folder is graded too");
    for index in 0..2 {
        assert_clean(&format!("{name}x{index}"), Some("solution.py"));
    }
}

#[test]
fn an_unruly_submission_gets_its_findings_and_stalls_no_one() {
    let Some(_alone) = one_at_a_time("an_unruly_submission_gets_its_findings_and_stalls_no_one")
    else {
        return;
    };
    let scratch = Scratch::new("class-unruly");
    let dir = class(
        &scratch,
        &[("alice", "correct.py"), ("unruly", "unruly.py")],
    );
    let name = unique("gcu");
    let output = run(&[
        "lab",
        "grade",
        "--class",
        dir.to_str().unwrap(),
        "--name",
        &name,
        "--jobs",
        "3",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let graded = results(&dir.join(".grades"));
    let by = |name: &str| graded.iter().find(|r| r.submission == name).unwrap();
    assert_eq!(by("alice").failed().count(), 0, "{:?}", by("alice"));
    let unruly = by("unruly");
    assert!(
        unruly.findings.is_empty(),
        "graded, not stopped: {unruly:?}"
    );
    let alive = unruly.check("process.alive").unwrap();
    assert_eq!(format!("{:?}", alive.verdict), "Fail", "{alive:?}");
    assert!(alive.evidence.contains("unruly crashes"), "{alive:?}");
    for index in 0..3 {
        assert_clean(&format!("{name}x{index}"), Some("solution.py"));
    }
}

#[test]
fn ctrl_c_stops_every_lab_of_a_class_run_and_leaves_nothing_behind() {
    let Some(_alone) =
        one_at_a_time("ctrl_c_stops_every_lab_of_a_class_run_and_leaves_nothing_behind")
    else {
        return;
    };
    let scratch = Scratch::new("class-int");
    let dir = class(&scratch, &[("alice", "correct.py"), ("bob", "correct.py")]);
    let name = unique("gci");
    let child = sdss()
        .args(["lab", "grade", "--class", dir.to_str().unwrap()])
        .args(["--name", &name, "--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both labs up: their namespaces exist.
    let prefix = format!("sdss-{name}x");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while namespaces(&prefix)
        .iter()
        .filter(|n| n.ends_with("-student"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the labs never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("interrupted"), "{}", text(&output));
    for index in 0..3 {
        assert_clean(&format!("{name}x{index}"), Some("solution.py"));
    }
    // Nothing half-graded is kept: the next run grades both.
    let graded = results(&dir.join(".grades"));
    assert!(graded.iter().all(|r| r.submission == "empty"), "{graded:?}");
}
