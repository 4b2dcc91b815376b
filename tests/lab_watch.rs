//! `sdss lab watch` on a real five-node lab, stdout not a terminal: plain
//! text, a frame per refresh, naming the pairs, and a clean end; and the
//! day-two commands on the same lab: `lab set` moves a link live (watch and
//! verify judge by it), `lab status --nodes`, `lab logs --tail`.

mod lab_support;

use lab_support::*;

#[test]
fn watch_prints_plain_frames_of_a_running_lab() {
    if !sandboxed("watch_prints_plain_frames_of_a_running_lab") {
        return;
    }
    let scratch = Scratch::new("watch");
    let lab = unique("watch");
    let file = shipped(&scratch, "five-nodes.toml", &lab);
    let up = run(&["lab", "up", file.to_str().unwrap()]);
    let down = || {
        let down = run(&["lab", "down", &lab]);
        assert!(down.status.success(), "{}", text(&down));
        assert_clean(&lab, None);
    };
    // 1: up, with a pair that failed (a loaded machine); still a lab to watch.
    let passed = up.status.code() == Some(0);
    if !passed && up.status.code() != Some(1) {
        down();
        panic!("lab up failed: {}", text(&up));
    }
    let watch = run(&["lab", "watch", &lab, "--count", "3"]);
    let day_two = std::panic::catch_unwind(|| day_two(&lab, &file));
    down();
    if let Err(panic) = day_two {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(watch.status.code(), Some(0), "{}", text(&watch));
    let out = String::from_utf8_lossy(&watch.stdout);
    assert!(!out.contains('\x1b'), "escape codes in plain output: {out}");
    let frames: Vec<&str> = out.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 3, "{out}");
    for frame in &frames {
        let first = frame.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("lab {lab} at t=")) && first.contains("20 pairs, "),
            "{frame}"
        );
    }
    // The lab converged before `up` returned: every pair passes, in numbers.
    let last = frames[2];
    assert!(!passed || last.contains("20 within tolerance"), "{last}");
    assert!(last.contains("  B \\ A"), "{last}");
    for name in ["a", "b", "c", "d", "e"] {
        assert!(
            last.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "no row for {name}: {last}"
        );
    }
    assert!(watch.stderr.is_empty(), "{}", text(&watch));
    // And a lab that is not up: one line, exit 2.
    let gone = run(&["lab", "watch", &lab]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone));
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not up"), "{err}");
}

/// `lab set` on the running lab (named by its file), then `status --nodes`
/// and `logs --tail` while its nodes measure the new link, `watch` showing
/// the new expected value, and `verify` passing against it in the end.
fn day_two(lab: &str, file: &std::path::Path) {
    let file = file.to_str().unwrap();
    // a's link goes from 1 ms to 30 ms: a <-> b is expected at 35 ms.
    let set = run(&["lab", "set", file, "a", "--delay", "30ms"]);
    assert_eq!(set.status.code(), Some(0), "{}", text(&set));
    let said = String::from_utf8_lossy(&set.stdout);
    assert!(said.contains("set a's link: delay 30ms"), "{said}");
    assert!(said.contains("  b -> a: expected 6ms -> 35ms"), "{said}");
    // The file's rules, the file's words.
    let bad = run(&["lab", "set", lab, "a", "--loss", "1.5"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("loss 1.5 is out of range"),
        "{}",
        text(&bad)
    );
    // Old samples against the new expectation: a's pairs are off, by 35 ms and more.
    let watch = run(&["lab", "watch", lab, "--count", "1"]);
    let frame = String::from_utf8_lossy(&watch.stdout);
    assert!(
        ["35.000", "40.000", "50.000", "70.000"]
            .iter()
            .any(|v| frame.contains(&format!("expected {v}"))),
        "{frame}"
    );
    let status = run(&["lab", "status", lab, "--nodes"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_eq!(table.lines().count(), 6, "{table}");
    let a = table
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_default();
    assert!(
        a.contains(" running ") && a.contains(" ms from "),
        "{table}"
    );
    let json = run(&["lab", "status", lab, "--nodes", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(5), "{rows}");
    assert_eq!(rows[0]["neighbours"], 4, "{rows}");
    let logs = run(&["lab", "logs", lab, "a", "--tail", "5"]);
    let lines = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(lines.lines().count(), 5, "{lines}");
    assert!(lines.contains(" measured "), "{lines}");
    let raw = run(&["lab", "logs", file, "a", "--tail", "2", "--json"]);
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert_eq!(raw.lines().count(), 2, "{raw}");
    assert!(raw.lines().all(|l| l.starts_with("{\"ts\":")), "{raw}");
    // The new samples replace the old within a few seconds of measuring.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let verify = run(&["lab", "verify", lab]);
        if verify.status.code() == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never passed against the new delay: {}",
            text(&verify)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
