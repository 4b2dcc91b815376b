//! The text report's lines after the table: the spread warning, and the
//! timeline as played with each phase's delays and each expectation.

use std::fmt::Write;

use crate::lab::judge::delays::{PairResult, SPREAD_FLOOR_MS, SPREAD_TOLERANCES};
use crate::lab::judge::timeline::TimelineVerdicts;

/// The timeline's part of the report: events as played, each phase's delays,
/// each expectation with its evidence.
pub(super) fn render_timeline(timeline: &TimelineVerdicts) -> String {
    let decides = if timeline.expects.is_empty() {
        "the table decides"
    } else {
        "the table and the expectations decide"
    };
    let mut out = format!(
        "\ntimeline (the table above is the phase before the first event; later phases are \
         shown for context: {decides}):\n"
    );
    for played in &timeline.played {
        let took = played
            .took_ms
            .map(|ms| format!(" (links changed in {ms:.1} ms)"))
            .unwrap_or_default();
        let error = played
            .error
            .as_ref()
            .map(|e| format!(" FAILED: {e}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  +{:.1} s  {}{took}{error}", played.at_s, played.what);
    }
    // Context, not a verdict: no pass or FAIL word, which the exit code
    // would not follow.
    // Phase 0 is the table above, judged there.
    for phase in timeline.phases.iter().filter(|p| p.phase > 0) {
        let judged = if phase.judged == 0 {
            "no pair to judge (cut, stopped or too few samples)".to_owned()
        } else {
            format!(
                "{} of {} pairs within tolerance",
                phase.passed, phase.judged
            )
        };
        let _ = writeln!(
            out,
            "  phase {} (after {}): {judged}",
            phase.phase, phase.began
        );
        for failure in &phase.failures {
            let _ = writeln!(out, "      outside: {failure}");
        }
    }
    for expect in &timeline.expects {
        let _ = writeln!(
            out,
            "  {} expect {}",
            if expect.held { "pass" } else { "FAIL" },
            expect.what
        );
        for evidence in &expect.evidence {
            let _ = writeln!(out, "      {evidence}");
        }
    }
    if !timeline.expects.is_empty() {
        let _ = writeln!(
            out,
            "expectations: {} of {} held",
            timeline.expects.iter().filter(|x| x.held).count(),
            timeline.expects.len()
        );
    }
    out
}

/// Pairs named in the spread warning, at most.
const SPREAD_NAMED: usize = 5;

/// The warning about passing pairs whose spread is far beyond their tolerance
/// (a warning: the median is graded, and it held), if any.
pub(super) fn spread_line(pairs: &[PairResult]) -> Option<String> {
    let flagged: Vec<&PairResult> = pairs.iter().filter(|p| p.spread).collect();
    if flagged.is_empty() {
        return None;
    }
    let named: Vec<String> = flagged
        .iter()
        .take(SPREAD_NAMED)
        .map(|p| {
            format!(
                "{} -> {} p95 {:.3} ms, expected {:.3}",
                p.from,
                p.to,
                p.p95_ms.unwrap_or(0.0),
                p.expected_ms
            )
        })
        .collect();
    let more = flagged.len().saturating_sub(SPREAD_NAMED);
    Some(format!(
        "warning: {} pair(s) pass on their median but spread far beyond it (SPREAD: p95 more than {} tolerances and {} ms, plus twice any jitter, from the expected delay): {}{}",
        flagged.len(),
        SPREAD_TOLERANCES,
        SPREAD_FLOOR_MS,
        named.join("; "),
        if more > 0 { format!("; and {more} more") } else { String::new() }
    ))
}
