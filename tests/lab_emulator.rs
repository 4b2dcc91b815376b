//! The shipped delayed labs run verified on the userspace link emulator (this
//! machine's and CI's kernels have no netem), and verification fails when the
//! emulator injects other delays than the lab file claims.

mod lab_support;

use std::sync::{Mutex, MutexGuard};

use lab_support::*;
use sdss::lab::judge::delays::PairVerdict;

/// One emulated lab at a time: each emulator spins a core near every frame's due
/// time, and two of them beside a dozen nodes on a 2-core machine would grade the
/// machine's load rather than the emulator.
static ONE_EMULATED_LAB: Mutex<()> = Mutex::new(());

/// [`ONE_EMULATED_LAB`], held, when `test` may run here (it says why not otherwise).
fn one_emulated_lab(test: &str) -> Option<MutexGuard<'static, ()>> {
    sandboxed(test).then(|| ONE_EMULATED_LAB.lock().unwrap_or_else(|e| e.into_inner()))
}

fn assert_every_pair_passes(file: &str, stem: &str, pairs: usize) {
    let _one = ONE_EMULATED_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new(stem);
    let lab = unique(stem);
    let (output, report) = run_on_emulator(&shipped(&scratch, file, &lab), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", report.render());
    assert_eq!(report.backend.to_string(), "emulator");
    assert_eq!(report.summary.pairs, pairs);
    assert_eq!(report.summary.passed, pairs, "{}", report.render());
    for pair in &report.pairs {
        assert!(pair.expected_ms >= 2.0, "{pair:?}: the lab injects delay");
        assert_eq!(pair.verdict, PairVerdict::Pass, "{pair:?}");
    }
    // The report carries what the emulator did: it delivered the lab's frames.
    let frames = report
        .emulator
        .expect("the emulator's counters in the report");
    assert!(frames.forwarded > 0 && frames.received > 0, "{frames:?}");
    assert_eq!(frames.errors, 0, "{frames:?}");
    assert!(
        report.render().contains("emulator: "),
        "{}",
        report.render()
    );
    // The lab followed the emulator's log of late answers: what it set aside
    // (normally nothing on a five-node lab) is counted among the samples.
    let aside = report
        .set_aside
        .expect("the samples set aside, on the emulator");
    assert!(aside.of >= pairs && aside.samples <= aside.of, "{aside:?}");
    assert!(aside.window_ms >= 50.0, "{aside:?}");
    assert_clean(&lab, Some(&emulator_of(&lab)));
}

/// The five-node lab `claimed` with node e's link at 20 ms, not the 40 ms it claims.
fn e_at_twenty_ms(scratch: &Scratch, claimed: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(claimed)
        .unwrap()
        .replace("delay = \"40ms\"", "delay = \"20ms\"");
    scratch.lab("told.toml", &text)
}

#[test]
fn the_five_node_lab_passes_on_the_emulator() {
    if sandboxed("the_five_node_lab_passes_on_the_emulator") {
        assert_every_pair_passes("five-nodes.toml", "emufive", 20);
    }
}

#[test]
fn the_per_pair_matrix_lab_passes_on_the_emulator() {
    if sandboxed("the_per_pair_matrix_lab_passes_on_the_emulator") {
        assert_every_pair_passes("matrix.toml", "emumatrix", 6);
    }
}

#[test]
fn an_emulator_told_other_delays_than_the_file_claims_fails_verification() {
    let Some(_one) =
        one_emulated_lab("an_emulator_told_other_delays_than_the_file_claims_fails_verification")
    else {
        return;
    };
    let scratch = Scratch::new("emulie");
    let lab = unique("emulie");
    let claimed = shipped(&scratch, "five-nodes.toml", &lab);
    let told = e_at_twenty_ms(&scratch, &claimed);
    // Under another name and subnet than the file's, and left up when it fails.
    let copy = format!("{lab}k");
    let (output, report) = run_on_emulator(
        &claimed,
        &[
            "--inject-from",
            told.to_str().unwrap(),
            "--name",
            &copy,
            "--subnet",
            "198.18.77.0/24",
            "--keep-on-fail",
        ],
    );
    let kept = run(&["lab", "status", &copy, "--format", "csv"]);
    let waited = run(&["lab", "verify", &copy, "--wait", "--timeout", "20s"]);
    let down = run(&["lab", "down", &copy]);
    assert!(down.status.success(), "{}", text(&down));
    assert_clean(&copy, Some(&emulator_of(&copy)));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("left running to inspect") && said.contains(&format!("sdss lab down {copy}")),
        "{said}"
    );
    assert!(
        String::from_utf8_lossy(&kept.stdout).contains(&format!("\n{copy},running,5,5,emulator,")),
        "{}",
        text(&kept)
    );
    // Every pair has its samples already: graded at once, failing as the run did.
    assert_eq!(waited.status.code(), Some(1), "{}", text(&waited));
    assert!(!text(&waited).contains("waiting for"), "{}", text(&waited));
    assert_eq!(output.status.code(), Some(1), "{}", report.render());
    assert_eq!(report.lab, copy);
    assert_eq!(report.summary.failed, 8, "{}", report.render());
    for pair in &report.pairs {
        let touches_e = pair.from == "e" || pair.to == "e";
        let expected = if touches_e {
            PairVerdict::Fail
        } else {
            PairVerdict::Pass
        };
        assert_eq!(pair.verdict, expected, "{pair:?}");
        if touches_e {
            let error = pair.measured_ms.unwrap() - pair.expected_ms;
            assert!((error + 20.0).abs() < 1.0, "{pair:?}: 20 ms short");
        }
    }
    assert_clean(&lab, Some(&emulator_of(&lab)));
}

#[test]
fn a_calibrated_lab_subtracts_each_pairs_floor_and_still_catches_a_wrong_link() {
    let Some(_one) = one_emulated_lab(
        "a_calibrated_lab_subtracts_each_pairs_floor_and_still_catches_a_wrong_link",
    ) else {
        return;
    };
    let scratch = Scratch::new("emucal");
    let lab = unique("emucal");
    let claimed = shipped(&scratch, "five-nodes.toml", &lab);
    // Calibration measures what the path adds, not what a link lacks: node
    // e's link has 20 ms, not the 40 ms claimed, and its pairs still fail.
    let told = e_at_twenty_ms(&scratch, &claimed);
    let (output, report) = run_on_emulator(
        &claimed,
        &["--calibrate", "--inject-from", told.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", report.render());
    for pair in &report.pairs {
        let floor = pair
            .floor_ms
            .unwrap_or_else(|| panic!("{pair:?}: no floor"));
        assert!(
            (0.0..1.0).contains(&floor),
            "{pair:?}: a floor of microseconds"
        );
        let measured = pair.measured_ms.unwrap();
        let error = pair.error_ms.unwrap();
        assert!(
            (error - (measured - floor - pair.expected_ms)).abs() < 0.002,
            "{pair:?}: the error is taken beyond the floor"
        );
        let touches_e = pair.from == "e" || pair.to == "e";
        if touches_e {
            assert!((error + 20.0).abs() < 1.0, "{pair:?}: 20 ms short");
            assert_eq!(pair.verdict, PairVerdict::Fail, "{pair:?}");
        } else {
            assert_eq!(pair.verdict, PairVerdict::Pass, "{pair:?}");
        }
    }
    assert!(
        report.render().contains("calibrated: each pair's floor"),
        "{}",
        report.render()
    );
    assert_clean(&lab, Some(&emulator_of(&lab)));
}

#[test]
fn calibrating_a_lab_without_delays_is_refused_with_the_reason() {
    if !sandboxed("calibrating_a_lab_without_delays_is_refused_with_the_reason") {
        return;
    }
    let scratch = Scratch::new("emucalnone");
    let lab = unique("emucalnone");
    let file = shipped(&scratch, "five-nodes.toml", &lab);
    let output = run(&[
        "lab",
        "run",
        "--calibrate",
        "--delay-backend",
        "none",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("the none delay backend injects no delay"),
        "{}",
        text(&output)
    );
    assert_clean(&lab, None);
}
