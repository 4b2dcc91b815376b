//! `sdss lab watch` on a real five-node lab, stdout not a terminal: plain
//! text, a frame per refresh, naming the pairs, and a clean end.

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
    down();
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
