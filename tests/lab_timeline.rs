//! Timelines on the userspace emulator: the three example labs play their
//! events (a delay step, a crash and restart, a partition and its heal) and
//! every expectation holds; an expectation that cannot hold fails the run.

mod lab_support;

use std::sync::Mutex;

use lab_support::*;

/// One emulated lab at a time, as in `lab_emulator.rs`: on two cores, two labs
/// would grade the machine's load rather than the timeline.
static ONE_EMULATED_LAB: Mutex<()> = Mutex::new(());

/// Runs a shipped lab and checks that its timeline played and held.
fn every_expectation_holds(file: &str, stem: &str, link_changes: usize) {
    let _one = ONE_EMULATED_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new(stem);
    let lab = unique(stem);
    let (output, report) = run_on_emulator(&shipped(&scratch, file, &lab), &[]);
    let rendered = report.render();
    assert_eq!(output.status.code(), Some(0), "{rendered}");
    let timeline = report.timeline.as_ref().expect("a timeline in the report");
    assert!(
        timeline.played.iter().all(|p| p.error.is_none()),
        "{rendered}"
    );
    assert_eq!(
        timeline
            .played
            .iter()
            .filter(|p| p.took_ms.is_some())
            .count(),
        link_changes,
        "each link change says how long it took: {rendered}"
    );
    assert!(!timeline.expects.is_empty());
    for expect in &timeline.expects {
        assert!(
            expect.held,
            "{}: {:?}\n{rendered}",
            expect.what, expect.evidence
        );
        assert!(!expect.evidence.is_empty(), "{}", expect.what);
    }
    for phase in &timeline.phases {
        assert!(
            phase.failures.is_empty(),
            "phase {}: {rendered}",
            phase.phase
        );
    }
    assert!(rendered.contains("expectations held"), "{rendered}");
    assert_clean(&lab, Some(&emulator_of(&lab)));
}

#[test]
fn a_delay_step_is_followed_by_every_pair_through_it() {
    if sandboxed("a_delay_step_is_followed_by_every_pair_through_it") {
        every_expectation_holds("delay-step.toml", "tlstep", 2);
    }
}

#[test]
fn a_crashed_node_is_removed_and_its_restart_discovered() {
    if sandboxed("a_crashed_node_is_removed_and_its_restart_discovered") {
        every_expectation_holds("failover.toml", "tlfail", 0);
    }
}

#[test]
fn a_partition_separates_the_sides_and_the_heal_rejoins_them() {
    if sandboxed("a_partition_separates_the_sides_and_the_heal_rejoins_them") {
        every_expectation_holds("partition.toml", "tlsplit", 2);
    }
}

#[test]
fn an_expectation_that_cannot_hold_fails_the_run_with_its_evidence() {
    if !sandboxed("an_expectation_that_cannot_hold_fails_the_run_with_its_evidence") {
        return;
    }
    let _one = ONE_EMULATED_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("tlnever");
    let lab = unique("tlnever");
    // c is killed and never started again: nobody can discover it.
    let file = scratch.lab(
        "never.toml",
        &format!(
            r#"name = "{lab}"
[defaults]
interval = "250ms"
refresh_every = 4
[verify]
samples = 3
warmup = 1
[[node]]
name = "a"
delay = "1ms"
[[node]]
name = "b"
delay = "2ms"
[[node]]
name = "c"
delay = "3ms"
[[event]]
name = "crash"
at = "8s"
action = "kill"
node = "c"
[[expect]]
what = "discovered"
node = "c"
after = "crash"
within = "3s"
"#
        ),
    );
    let (output, report) = run_on_emulator(&file, &[]);
    let rendered = report.render();
    assert_eq!(output.status.code(), Some(1), "{rendered}");
    assert_eq!(report.summary.failed, 0, "the delays before the crash pass");
    let expect = &report.timeline.as_ref().unwrap().expects[0];
    assert!(!expect.held, "{rendered}");
    assert!(
        expect.evidence.iter().all(|e| e.contains("not by the end")),
        "{:?}",
        expect.evidence
    );
    assert!(
        rendered.trim_end().ends_with("0 of 1 expectations held") && rendered.contains("\nFAIL: "),
        "{rendered}"
    );
    assert_clean(&lab, Some(&emulator_of(&lab)));
}

/// Two nodes, no delays, `b` cut at `at`.
fn cut_lab(scratch: &Scratch, lab: &str, at: &str) -> std::path::PathBuf {
    scratch.lab(
        "cut.toml",
        &format!(
            "name = \"{lab}\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n\
             [[event]]\nname = \"cut\"\nat = \"{at}\"\naction = \"cut\"\nnode = \"b\"\n"
        ),
    )
}

#[test]
fn a_first_event_before_the_pairs_can_have_their_samples_is_refused_with_the_time_needed() {
    if !sandboxed(
        "a_first_event_before_the_pairs_can_have_their_samples_is_refused_with_the_time_needed",
    ) {
        return;
    }
    let scratch = Scratch::new("tlearly");
    let lab = unique("tlearly");
    let file = cut_lab(&scratch, &lab, "5s");
    for dry in [true, false] {
        let mut args = vec!["lab", "run", file.to_str().unwrap()];
        if dry {
            args.push("--dry-run");
        }
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let said = text(&output);
        assert!(
            said.contains("the first event (cut: cut b's link) at 5s")
                && said.contains("move the event to 7s or later"),
            "{said}"
        );
    }
    assert_clean(&lab, None);
}

#[test]
fn a_cut_lab_is_judged_at_its_first_event_ends_with_its_timeline_and_counts_the_cut_apart() {
    if !sandboxed(
        "a_cut_lab_is_judged_at_its_first_event_ends_with_its_timeline_and_counts_the_cut_apart",
    ) {
        return;
    }
    let _one = ONE_EMULATED_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new("tlcut");
    let lab = unique("tlcut");
    let file = cut_lab(&scratch, &lab, "8s");
    // No delay, but a cut: `auto` takes a backend that can cut.
    let started = std::time::Instant::now();
    let page = scratch.0.join("cut.html");
    let output = run(&[
        "lab",
        "run",
        "--json",
        "--html",
        page.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    let report: sdss::lab::report::Report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    let rendered = report.render();
    // Judged when the cut came, and over once the timeline was watched: not
    // held to the 60 s time limit waiting for samples the cut stopped.
    assert!(took.as_secs() < 40, "{took:?}: {rendered}");
    let last = rendered.trim_end().lines().last().unwrap();
    let code = output.status.code();
    assert_eq!(
        last.starts_with("PASS"),
        code == Some(0),
        "{code:?}: {rendered}"
    );
    assert!(
        last.ends_with("of 2 pairs pass") && !rendered.contains("0 of 0"),
        "no expectation, no count of them: {rendered}"
    );
    // The page plots the pairs against time: the cut as a named line, the
    // pairs hatched after it, in their plots and in the phase's map.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("class=\"event\"") && html.contains(">cut</text>"));
    assert_eq!(
        html.matches("<rect class=\"cut\"").count(),
        2,
        "{}",
        page.display()
    );
    assert!(html.contains("class=\"phasemap\""), "{}", page.display());
    let emulator = report.emulator.expect("the emulator carried the lab");
    assert!(emulator.cut > 0, "{rendered}");
    assert_eq!(emulator.lost, 0, "a cut is no link's loss: {rendered}");
    assert_clean(&lab, Some(&emulator_of(&lab)));
}
