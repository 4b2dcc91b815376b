//! Other people's programs run boxed: a hostile submission, graded in a lab
//! beside a second submission and three sdss nodes, is refused each thing it
//! tries, hits its limits, and leaves nothing behind, while the sdss nodes
//! go on measuring each other.

mod lab_support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lab_support::*;
use sdss::lab::report::Report;
use sdss::lab::scenario::grading::parse_stamped;
use sdss::node::event::NodeEvent;

/// Longest a pair of sdss nodes may go without a measurement while the
/// hostile program forks, allocates and writes beside them.
const LONGEST_GAP_SECS: f64 = 3.0;

fn grade_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grade")
        .join(name)
}

#[test]
fn a_hostile_submission_is_refused_everything_while_the_lab_goes_on() {
    if !sandboxed("a_hostile_submission_is_refused_everything_while_the_lab_goes_on") {
        return;
    }
    let scratch = Scratch::new("hostile");
    let lab = unique("ghost");
    // Two submissions, each in a folder of its own.
    let mallory = scratch.0.join("mallory");
    let bob = scratch.0.join("bob");
    std::fs::create_dir_all(&mallory).unwrap();
    std::fs::create_dir_all(&bob).unwrap();
    std::fs::copy(grade_fixture("hostile.py"), mallory.join("hostile.py")).unwrap();
    let secret = bob.join("secret.txt");
    std::fs::write(&secret, "bob's answer\n").unwrap();
    // A process outside the lab that it must not be able to signal.
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    let toml = format!(
        "name = \"{lab}\"\n[defaults]\nrefresh_every = 2\n[verify]\nsamples = 2\nwarmup = 1\n\
         [grade]\nduration = \"20s\"\nkill = \"\"\n\
         [[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n\
         [[node]]\nname = \"mallory\"\ngrade = true\ncommand = [\"python3\", \"{}\", \"{lab}\", \"{}\", \"{}\"]\n",
        mallory.join("hostile.py").display(),
        secret.display(),
        bystander.id()
    );
    let file = scratch.lab("hostile.toml", &toml);
    let up = run(&["lab", "up", "--json", file.to_str().unwrap()]);
    let said = run(&["lab", "logs", &lab, "mallory", "--stderr"]);
    let logs: HashMap<&str, String> = ["a", "b", "c"]
        .into_iter()
        .map(|n| {
            (
                n,
                String::from_utf8_lossy(&run(&["lab", "logs", &lab, n, "--json"]).stdout)
                    .into_owned(),
            )
        })
        .collect();
    let down = run(&["lab", "down", &lab]);
    assert!(down.status.success(), "{}", text(&down));
    assert_clean(&lab, Some(&format!("hostile.py {lab}")));

    // It fails its checklist: no node, and over its limits.
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    let report: Report =
        serde_json::from_slice(&up.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&up)));

    // Each attempt is in its own log, refused.
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    println!("{said}");
    let attempts: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("hostile: "))
        .collect();
    for attempt in [
        "/etc",
        "/root",
        "secret",
        "/run/sdss",
        "setns",
        "interface",
        "unshare",
        "UDP",
        "kill",
        "fork",
        "allocate",
        "write",
    ] {
        let line = attempts
            .iter()
            .find(|l| l.contains(attempt))
            .unwrap_or_else(|| panic!("no attempt at {attempt:?} in its log:\n{said}"));
        assert!(line.contains("refused"), "{line}\n{said}");
    }
    assert!(!said.contains("SUCCEEDED"), "an attempt succeeded:\n{said}");

    // Grading completed, with the limits it hit.
    let list = report
        .grading
        .iter()
        .find(|l| l.node == "mallory")
        .unwrap_or_else(|| panic!("no checklist: {}", report.render()));
    let limits = list.check("process.limits").unwrap();
    println!("{}", list.render());
    assert_eq!(
        limits.verdict,
        sdss::lab::judge::Verdict::Fail,
        "{}",
        limits.evidence
    );
    for hit in ["memory limit", "task limit"] {
        assert!(limits.evidence.contains(hit), "{hit}: {}", limits.evidence);
    }

    // Nothing it tried reached past its box.
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "bob's answer\n");
    let left: Vec<_> = std::fs::read_dir(&mallory)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["hostile.py"], "its folder changed");
    for path in ["/etc/owned", "/root/owned"] {
        assert!(!Path::new(path).exists(), "{path} was written");
    }

    // Meanwhile the sdss nodes measured each other without a gap.
    for (node, text) in &logs {
        let mut last: HashMap<IpAddr, f64> = HashMap::new();
        let mut gaps: Vec<(IpAddr, f64)> = Vec::new();
        for (at, event) in parse_stamped(text) {
            if let NodeEvent::Neighbor(n) = event {
                if let Some(before) = last.insert(n.ip, at) {
                    gaps.push((n.ip, at - before));
                }
            }
        }
        assert!(last.len() >= 2, "{node} measured {} peers", last.len());
        let worst = gaps.iter().map(|g| g.1).fold(0.0, f64::max);
        assert!(
            worst <= LONGEST_GAP_SECS,
            "{node} went {worst:.1} s without measuring a peer: {gaps:?}"
        );
    }
}
