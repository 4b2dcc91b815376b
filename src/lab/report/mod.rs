//! What `lab up`, `lab verify` and `lab run` print: the plan (for `--dry-run`)
//! and the verification report, as a table for people or one JSON document;
//! and what `lab status` prints ([`status`]); the same report as one HTML page
//! ([`html`]), and the lab's topology for `lab graph` ([`graph`]).

pub mod boxes;
mod dot;
#[cfg(test)]
mod fixtures;
pub mod graph;
mod hosts;
pub mod html;
mod links;
pub(crate) mod markup;
mod nodes;
pub mod paint;
mod plan;
mod plots;
pub mod progress;
mod star;
mod status;
mod time_plot;
mod timeline_text;
pub mod watch;

pub use graph::{render_graph, GraphFormat};
pub use hosts::HostsReport;
pub use html::render_html;
pub use nodes::{render_nodes, NodeState, NodeStatus, NODE_FIELDS};
pub use plan::render_plan;
pub use status::{render_status, LabPhase, LabStatus, StatusFormat, STATUS_FIELDS};

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::lab::builder::emulator::{PortCounters, LATE};
use crate::lab::builder::sandbox::outcome::BoxOutcome;
use crate::lab::judge::aside::SetAside;
use crate::lab::judge::delays::{median, PairResult, PairVerdict, Summary, Verification};
use crate::lab::judge::links::LinkVerdicts;
use crate::lab::judge::timeline::TimelineVerdicts;
use crate::lab::judge::Checklist;
use crate::lab::plan::backend::{BackendKind, NetemSupport};

use crate::lab::plan::Plan;
use crate::table::{Align, Table};

use timeline_text::{render_timeline, spread_line};

/// The verification report of a lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The lab.
    pub lab: String,
    /// The sdss version that made the report.
    #[serde(default)]
    pub version: String,
    /// When the report was made (RFC 3339, UTC).
    #[serde(default)]
    pub created: String,
    /// The backend that injected the delays.
    pub backend: BackendKind,
    /// Why this backend, when it was not the file's intent (e.g. a zero-delay run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_note: Option<String>,
    /// Whether the kernel has netem.
    pub netem: Option<NetemSupport>,
    /// Absolute tolerance floor, ms.
    pub tolerance_ms: f64,
    /// Relative tolerance, percent.
    pub tolerance_percent: f64,
    /// Samples graded per pair.
    pub samples: u32,
    /// Samples discarded first.
    pub warmup: u32,
    /// Seconds from node start to this grade.
    pub elapsed_s: f64,
    /// Whether every pair got its samples before the time limit.
    pub converged: bool,
    /// One row per ordered pair.
    pub pairs: Vec<PairResult>,
    /// Counts.
    pub summary: Summary,
    /// One checklist per node graded against the assignment (`grade = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grading: Vec<Checklist>,
    /// What the userspace emulator did with the frames, when it carried the lab:
    /// late or dropped frames explain delays no node could have measured right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<PortCounters>,
    /// Samples set aside because the emulator delivered their answer late, over
    /// all pairs (each pair's own count is its `set_aside`); absent when no late
    /// deliveries were known (netem, no delays): nothing was set aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<SetAside>,
    /// The timeline as played, its expectations and each phase's delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineVerdicts>,
    /// In a lab over several hosts: where the nodes live, the underlay, the lost hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostsReport>,
    /// How each program nobody here wrote ran (confined or not, its limits
    /// and what it hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<BoxOutcome>,
    /// What the link probe measured of each pair's link, beside what was
    /// asked (`[verify] link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<LinkVerdicts>,
}

/// What calibration measured, in one line: the floors' spread, and the pairs
/// that have none (not measured while calibrating, so graded without).
fn calibration_line(pairs: &[PairResult]) -> String {
    let floors: Vec<f64> = pairs.iter().filter_map(|p| p.floor_ms).collect();
    let missing = pairs.len() - floors.len();
    let max = floors.iter().copied().fold(0.0, f64::max);
    format!(
        "calibrated: each pair's floor, what it measured beyond 1 ms before the delays were applied, \
         is subtracted (FLOOR): median {:.3} ms, max {max:.3} ms{}",
        median(&floors),
        if missing > 0 {
            format!("; {missing} pair(s) had no floor and are graded without")
        } else {
            String::new()
        }
    )
}

/// The sdss version that makes reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Now, as the report says when it was made.
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Share of late frames beyond which the report warns that the machine did not
/// keep up with the emulator (a healthy five-node lab stays far below it).
const LATE_WARNING: f64 = 0.01;

/// The report's lines about the emulator's frames: one summary, and, when pairs
/// failed, a warning if frames were late or dropped often enough to explain it.
fn emulator_lines(counters: &PortCounters, pairs_failed: bool) -> Vec<String> {
    let late = if counters.forwarded == 0 {
        0.0
    } else {
        counters.late as f64 / counters.forwarded as f64
    };
    let mut lines = vec![format!(
        "emulator: {} frames delivered, {} ({:.1}%) late by more than {} us, {} dropped by a full queue, {} by the links' loss, {} by cut links",
        counters.forwarded,
        counters.late,
        late * 100.0,
        LATE.as_micros(),
        counters.overflowed,
        counters.lost,
        counters.cut,
    )];
    if pairs_failed && (late > LATE_WARNING || counters.overflowed > 0) {
        lines.push(
            "warning: the machine did not keep up with the emulator, so the failures may be its own, \
             not the nodes': fewer nodes or a longer [defaults] interval lighten the load"
                .to_owned(),
        );
    }
    lines
}

impl Report {
    /// Builds a report from verification.
    pub fn new(
        plan: &Plan,
        backend: BackendKind,
        netem: Option<NetemSupport>,
        backend_note: Option<String>,
        verification: Verification,
        elapsed_s: f64,
    ) -> Report {
        let converged = verification.converged();
        let mut pairs = verification.pairs;
        // Only the plotted pairs keep their samples: bounded JSON and pages.
        let plotted: Vec<(String, String)> = plots::plotted(&pairs)
            .iter()
            .map(|p| (p.from.clone(), p.to.clone()))
            .collect();
        for pair in &mut pairs {
            if !plotted
                .iter()
                .any(|(f, t)| *f == pair.from && *t == pair.to)
            {
                pair.series = Vec::new();
            }
        }
        Report {
            lab: plan.lab.clone(),
            version: VERSION.to_owned(),
            created: now_rfc3339(),
            backend,
            backend_note,
            netem,
            tolerance_ms: crate::units::millis(plan.verify.tolerance),
            tolerance_percent: plan.verify.tolerance_percent,
            samples: plan.verify.samples,
            warmup: plan.verify.warmup,
            elapsed_s: (elapsed_s * 10.0).round() / 10.0,
            converged,
            set_aside: verification.set_aside,
            pairs,
            summary: verification.summary,
            grading: Vec::new(),
            emulator: None,
            timeline: None,
            hosts: None,
            boxes: Vec::new(),
            links: None,
        }
    }

    /// Adds how each program ran.
    pub fn with_boxes(mut self, boxes: Vec<BoxOutcome>) -> Report {
        self.boxes = boxes;
        self
    }

    /// Adds the hosts part of a lab over several hosts.
    pub fn with_hosts(mut self, hosts: HostsReport) -> Report {
        self.hosts = Some(hosts);
        self
    }

    /// Adds the emulator's counters (totals over its ports).
    pub fn with_emulator(mut self, totals: Option<PortCounters>) -> Report {
        self.emulator = totals;
        self
    }

    /// Whether the lab passes: every pair passes, or, in a lab with graded
    /// nodes, every graded node's checklist (the delay pairs are then context:
    /// a faulty node cannot be measured, and the killed node stops measuring).
    pub fn ok(&self) -> bool {
        let hosts = self.hosts.as_ref().is_none_or(|h| h.lost.is_empty());
        let timeline = self.timeline.as_ref().is_none_or(TimelineVerdicts::ok);
        let links = self.links.as_ref().is_none_or(LinkVerdicts::ok);
        hosts
            && timeline
            && links
            && if self.grading.is_empty() {
                self.summary.ok()
            } else {
                self.grading.iter().all(Checklist::ok)
            }
    }

    /// The report as a table with a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let netem = self
            .netem
            .as_ref()
            .map_or("not probed".to_owned(), ToString::to_string);
        // Who made it and when goes first: the last line is the verdict.
        let _ = writeln!(
            out,
            "lab {}: delay backend {}; netem {} (sdss {}, {})",
            self.lab, self.backend, netem, self.version, self.created
        );
        if let Some(note) = &self.backend_note {
            let _ = writeln!(out, "  note: {note}");
        }
        if let Some(hosts) = &self.hosts {
            out.push_str(&hosts.render(&self.pairs));
        }
        let pairs_failed = self.summary.failed > 0;
        for line in self
            .emulator
            .iter()
            .flat_map(|counters| emulator_lines(counters, pairs_failed))
        {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(aside) = &self.set_aside {
            let _ = writeln!(out, "  {}", aside.line());
        }
        out.push_str(&boxes::render(&self.boxes));
        let _ = writeln!(
            out,
            "graded: median of the last {} samples after {} warm-up, tolerance max({} ms, {}%), after {:.1} s{}",
            self.samples,
            self.warmup,
            crate::units::format_ms(self.tolerance_ms),
            crate::units::format_ms(self.tolerance_percent),
            self.elapsed_s,
            if self.converged { "" } else { " (time limit reached)" }
        );
        let calibrated = self.pairs.iter().any(|p| p.floor_ms.is_some());
        if calibrated {
            let _ = writeln!(out, "{}", calibration_line(&self.pairs));
        }
        // The floor column shows only when the lab was calibrated.
        let mut columns = vec![
            ("FROM", Align::Left, 4),
            ("TO", Align::Left, 4),
            ("EXPECTED", Align::Right, 9),
            ("MEASURED", Align::Right, 9),
            ("P95", Align::Right, 7),
            ("MAX", Align::Right, 7),
        ];
        if calibrated {
            columns.push(("FLOOR", Align::Right, 7));
        }
        // So does the set-aside column, when a sample was set aside.
        let aside = self.pairs.iter().any(|p| p.set_aside > 0);
        columns.extend([
            ("ERROR", Align::Right, 8),
            ("TOL", Align::Right, 7),
            ("SAMPLES", Align::Right, 7),
        ]);
        if aside {
            columns.push(("ASIDE", Align::Right, 5));
        }
        columns.push(("RESULT", Align::Left, 0));
        let num = |v: Option<f64>, signed: bool| match v {
            Some(v) if signed => format!("{v:+.3}"),
            Some(v) => format!("{v:.3}"),
            None => "-".to_owned(),
        };
        let mut table = Table::new(&columns);
        for pair in &self.pairs {
            let verdict = match pair.verdict {
                PairVerdict::Pass => "pass",
                PairVerdict::Fail => "FAIL",
                PairVerdict::Skipped => "skipped",
            };
            let reason = pair
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            let mut cells = vec![
                pair.from.clone(),
                pair.to.clone(),
                format!("{:.3}", pair.expected_ms),
                num(pair.measured_ms, false),
                num(pair.p95_ms, false),
                num(pair.max_ms, false),
            ];
            if calibrated {
                cells.push(num(pair.floor_ms, false));
            }
            cells.extend([
                num(pair.error_ms, true),
                format!("{:.3}", pair.tolerance_ms),
                format!("{}/{}", pair.samples, pair.total_samples),
            ]);
            if aside {
                cells.push(pair.set_aside.to_string());
            }
            let spread = if pair.spread { ", SPREAD" } else { "" };
            cells.push(format!("{verdict}{spread}{reason}"));
            table.row(cells);
        }
        out.push_str(&table.render());
        // Under the table, above the summary line: a lab of pairs alone ends with that.
        if let Some(line) = spread_line(&self.pairs) {
            let _ = writeln!(out, "{line}");
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{}: {} pairs, {} pass, {} fail{}",
            if s.ok() { "PASS" } else { "FAIL" },
            s.pairs,
            s.passed,
            s.failed,
            if s.skipped > 0 {
                format!(", {} skipped", s.skipped)
            } else {
                String::new()
            }
        );
        if let Some(timeline) = &self.timeline {
            out.push_str(&render_timeline(timeline));
        }
        if let Some(links) = &self.links {
            let _ = writeln!(out);
            out.push_str(&links.render());
        }
        for checklist in &self.grading {
            let _ = writeln!(out);
            out.push_str(&checklist.render());
        }
        if let Some(line) = self.verdict_line() {
            let _ = writeln!(out, "\n{line}");
        }
        out
    }

    /// The last line of a report with more than pairs to judge: every part
    /// that decides the exit code, so that its word and the exit code agree
    /// ([`Report::ok`]). None for a lab of pairs alone, whose summary line
    /// is that line.
    pub fn verdict_line(&self) -> Option<String> {
        let lost = self.hosts.as_ref().map_or(0, |h| h.lost.len());
        if self.timeline.is_none() && self.links.is_none() && self.grading.is_empty() && lost == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if self.grading.is_empty() {
            let s = &self.summary;
            parts.push(format!("{} of {} pairs pass", s.passed, s.pairs));
        } else {
            let passed = self.grading.iter().filter(|c| c.ok()).count();
            parts.push(format!(
                "{passed} of {} graded nodes fail no check",
                self.grading.len()
            ));
        }
        if let Some(timeline) = &self.timeline {
            let failed = timeline.played.iter().filter(|p| p.error.is_some()).count();
            if failed > 0 {
                parts.push(format!("{failed} event(s) not played"));
            }
            let held = timeline.expects.iter().filter(|x| x.held).count();
            if !timeline.expects.is_empty() {
                parts.push(format!(
                    "{held} of {} expectations held",
                    timeline.expects.len()
                ));
            }
        }
        if let Some(links) = &self.links {
            parts.push(format!(
                "{} of {} links as asked",
                links.pairs.len() - links.failed(),
                links.pairs.len()
            ));
        }
        if lost > 0 {
            parts.push(format!("{lost} host(s) lost"));
        }
        let word = if self.ok() { "PASS" } else { "FAIL" };
        Some(format!("{word}: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_and_the_exit_code_agree_when_a_pair_fails_and_nothing_is_expected() {
        let plan =
            Plan::from_text("name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let mut report = fixtures::report_for(&plan);
        report.summary.failed = 1;
        report.summary.passed = 1;
        report.summary.pairs = 2;
        // No expectation, so all of them "held": the pairs still decide.
        report.timeline = Some(TimelineVerdicts::default());
        assert!(!report.ok());
        let rendered = report.render();
        let last = rendered.trim_end().lines().last().unwrap();
        assert_eq!(last, "FAIL: 1 of 2 pairs pass");
        assert!(!rendered.contains("0 of 0"), "{rendered}");
        report.summary.failed = 0;
        report.summary.passed = 2;
        assert!(report.ok());
        let rendered = report.render();
        let last = rendered.trim_end().lines().last().unwrap();
        assert_eq!(last, "PASS: 2 of 2 pairs pass");
        assert!(!rendered.contains("0 of 0"), "{rendered}");
    }

    #[test]
    fn the_table_has_p95_and_max_and_flags_a_spread_pair_that_passes() {
        let plan =
            Plan::from_text("name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let mut report = fixtures::report_for(&plan);
        report.pairs[0].p95_ms = Some(23.8);
        report.pairs[0].max_ms = Some(23.8);
        report.pairs[0].spread = true;
        let text = report.render();
        assert!(text.starts_with("lab t: delay backend emulator; netem not probed (sdss 0.1.0, 2026-12-04T20:00:00Z)"), "{text}");
        let header = text.lines().find(|l| l.starts_with("FROM")).unwrap();
        assert!(header.contains("MEASURED      P95      MAX"), "{text}");
        let ab = text.lines().find(|l| l.starts_with("a ")).unwrap();
        assert!(
            ab.contains("23.800   23.800") && ab.ends_with("pass, SPREAD"),
            "{text}"
        );
        assert!(
            text.contains("warning: 1 pair(s) pass on their median but spread far beyond it"),
            "{text}"
        );
        let last = text.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("FAIL: 2 pairs"),
            "the summary stays last: {text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["pairs"][0]["spread"], true);
        assert_eq!(json["pairs"][0]["p95_ms"], 23.8);
        assert_eq!(json["pairs"][1]["spread"], false);
        assert_eq!(json["version"], "0.1.0");
        assert_eq!(json["pairs"][0]["series"][0]["at_s"], 1.0);
    }

    #[test]
    fn a_lab_of_pairs_alone_ends_with_its_summary_line() {
        let plan =
            Plan::from_text("name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let report = fixtures::report_for(&plan);
        assert_eq!(report.verdict_line(), None);
        let rendered = report.render();
        assert!(
            rendered
                .trim_end()
                .lines()
                .last()
                .unwrap()
                .starts_with("FAIL: 2 pairs"),
            "{rendered}"
        );
    }

    fn counters(forwarded: u64, late: u64, overflowed: u64) -> PortCounters {
        PortCounters {
            forwarded,
            late,
            overflowed,
            lost: 3,
            ..PortCounters::default()
        }
    }

    #[test]
    fn samples_set_aside_show_per_pair_and_in_all_only_when_known() {
        let plan =
            Plan::from_text("name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n");
        let row = |from: &str, to: &str, set_aside| PairResult {
            from: from.to_owned(),
            to: to.to_owned(),
            expected_ms: 2.0,
            measured_ms: Some(2.01),
            error_ms: Some(0.01),
            floor_ms: None,
            tolerance_ms: 0.5,
            samples: 5,
            total_samples: 6 + set_aside,
            set_aside,
            verdict: PairVerdict::Pass,
            reason: None,
            p95_ms: None,
            max_ms: None,
            spread: false,
            series: Vec::new(),
        };
        let verification = |set_aside| Verification {
            pairs: vec![row("a", "b", 0), row("b", "a", 2)],
            summary: Summary {
                pairs: 2,
                passed: 2,
                ..Summary::default()
            },
            samples_wanted: 5,
            set_aside,
        };
        let total = SetAside {
            samples: 2,
            of: 12,
            window_ms: 100.0,
            missed: 0,
        };
        let report = |v| Report::new(&plan, BackendKind::Emulator, None, None, v, 9.0);
        let text = report(verification(Some(total))).render();
        assert!(
            text.contains("  set aside: 2 of 12 samples after warm-up (16.7%)"),
            "{text}"
        );
        let header = text.lines().find(|l| l.starts_with("FROM")).unwrap();
        assert!(header.contains("ASIDE"), "{text}");
        let ba = text.lines().find(|l| l.starts_with("b ")).unwrap();
        assert!(ba.contains("5/8      2  pass"), "{text}");
        let json = serde_json::to_value(report(verification(Some(total)))).unwrap();
        assert_eq!(json["set_aside"]["samples"], 2);
        assert_eq!(json["pairs"][1]["set_aside"], 2);
        // netem or no delays: no late log, no total, no column.
        let mut plain = verification(None);
        plain.pairs[1].set_aside = 0;
        let text = report(plain).render();
        assert!(
            !text.contains("set aside") && !text.contains("ASIDE"),
            "{text}"
        );
    }

    #[test]
    fn a_healthy_emulator_gets_one_line_and_no_warning() {
        let lines = emulator_lines(&counters(10_000, 20, 0), true);
        assert_eq!(
            lines,
            ["emulator: 10000 frames delivered, 20 (0.2%) late by more than 50 us, 0 dropped by a full queue, 3 by the links' loss, 0 by cut links"]
        );
        assert_eq!(emulator_lines(&counters(0, 0, 0), true).len(), 1);
    }

    #[test]
    fn late_or_dropped_frames_explain_failures_and_only_failures() {
        let late = emulator_lines(&counters(10_000, 200, 0), true);
        assert_eq!(late.len(), 2);
        assert!(late[0].contains("200 (2.0%) late"), "{}", late[0]);
        assert!(late[1].starts_with("warning: the machine did not keep up"));
        assert_eq!(emulator_lines(&counters(10_000, 0, 1), true).len(), 2);
        assert_eq!(emulator_lines(&counters(10_000, 200, 1), false).len(), 1);
    }
}
