//! Reports for the tests of the report's renderings.

use crate::lab::judge::delays::{PairResult, PairVerdict, Sample, Summary};
use crate::lab::plan::backend::BackendKind;
use crate::lab::plan::Plan;

use super::Report;

/// A report of `plan` where every pair measured its delay plus 0.1 ms, but
/// the last, which failed by 9 ms.
pub fn report_for(plan: &Plan) -> Report {
    let count = plan.expected.len();
    let pairs: Vec<PairResult> = plan
        .expected
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let expected = p.impairment.delay.as_secs_f64() * 1000.0;
            let error = if i + 1 == count { 9.0 } else { 0.1 };
            PairResult {
                from: p.from.clone(),
                to: p.to.clone(),
                expected_ms: expected,
                measured_ms: Some(expected + error),
                error_ms: Some(error),
                floor_ms: None,
                tolerance_ms: 0.5,
                samples: 5,
                total_samples: 6,
                set_aside: 0,
                verdict: if i + 1 == count {
                    PairVerdict::Fail
                } else {
                    PairVerdict::Pass
                },
                reason: (i + 1 == count).then(|| "off by <9 ms> & more".to_owned()),
                p95_ms: Some(expected + error),
                max_ms: Some(expected + error),
                spread: false,
                series: [expected + 3.0, expected, expected + error, expected]
                    .iter()
                    .enumerate()
                    .map(|(i, ms)| Sample {
                        at_s: Some(1.0 + i as f64),
                        ms: *ms,
                    })
                    .collect(),
            }
        })
        .collect();
    Report {
        lab: plan.lab.clone(),
        version: "0.1.0".to_owned(),
        created: "2026-12-04T20:00:00Z".to_owned(),
        backend: BackendKind::Emulator,
        backend_note: None,
        netem: None,
        tolerance_ms: 0.5,
        tolerance_percent: 5.0,
        samples: 5,
        warmup: 1,
        elapsed_s: 7.5,
        converged: true,
        summary: Summary {
            pairs: count,
            passed: count - 1,
            failed: 1,
            skipped: 0,
        },
        pairs,
        grading: Vec::new(),
        emulator: None,
        boxes: Vec::new(),
        links: None,
        set_aside: None,
        timeline: None,
        hosts: None,
    }
}
