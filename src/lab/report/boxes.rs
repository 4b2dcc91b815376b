//! How each program nobody here wrote ran, in the text report.

use std::fmt::Write as _;

use crate::lab::builder::sandbox::outcome::BoxOutcome;

/// Lines for the text report.
pub fn render(boxes: &[BoxOutcome]) -> String {
    let mut out = String::new();
    for b in boxes {
        match (&b.limits, b.uid) {
            (Some(limits), Some(uid)) => {
                let _ = writeln!(
                    out,
                    "  program {}: confined as uid {uid}, own mount and PID namespaces, {}",
                    b.node,
                    limits.describe()
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  program {}: not confined (runs as root, as sdss does: [sandbox] enabled = false or --no-sandbox)",
                    b.node
                );
            }
        }
        for hit in &b.limits_hit {
            let _ = writeln!(out, "    limit hit: {} at t={:.1}s", hit.text, hit.at);
        }
    }
    out
}
