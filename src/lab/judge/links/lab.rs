//! Judging a whole lab's links: every probed pair against its path, with
//! the chance figures' intervals widened so that the lab as a whole, not
//! each figure, is wrongly failed at most one time in a hundred.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::expect::Expectation;
use super::{judge_at, z_of, FigureVerdict, PairLinks};
use crate::lab::plan::{LinkProbing, Plan};
use crate::lab::scenario::link_probe::record::PairRecord;
use crate::table::{Align, Table};

/// How sure a lab's verdict is: a lab whose links all do what was asked
/// fails by chance at most this far from one (Bonferroni over its figures).
pub const CONFIDENCE: f64 = 0.99;

/// Chance figures judged per pair: loss, its runs, duplicates, reorders.
const CHANCE_FIGURES: usize = 4;

/// The link probe's verdicts on a lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkVerdicts {
    /// How the probe sent.
    pub probing: LinkProbing,
    /// The confidence of each chance figure's interval.
    pub figure_confidence: f64,
    /// Each ordered pair, in the plan's order.
    pub pairs: Vec<PairLinks>,
}

impl LinkVerdicts {
    /// Whether every pair's figures passed.
    pub fn ok(&self) -> bool {
        self.pairs.iter().all(PairLinks::ok)
    }

    /// Pairs with a failing figure.
    pub fn failed(&self) -> usize {
        self.pairs.iter().filter(|p| !p.ok()).count()
    }

    /// A table of every pair's main figures, each failing figure in full,
    /// the figures not judged and why, and a verdict line.
    pub fn render(&self) -> String {
        let p = &self.probing;
        let mut out = format!(
            "links: {} packets/s of {} bytes for {:.1} s on each ordered pair; delays within the lab's tolerance, shares at {:.2}% each ({:.0}% over the lab)\n",
            p.rate,
            p.size,
            p.duration.as_secs_f64(),
            self.figure_confidence * 100.0,
            CONFIDENCE * 100.0,
        );
        let columns = [
            ("FROM", Align::Left, 4),
            ("TO", Align::Left, 4),
            ("RECEIVED", Align::Right, 9),
            ("P10", Align::Right, 7),
            ("P50", Align::Right, 7),
            ("P90", Align::Right, 7),
            ("LOSS", Align::Right, 7),
            ("DUP", Align::Right, 7),
            ("REORDER", Align::Right, 7),
            ("RATE", Align::Right, 7),
            ("RESULT", Align::Left, 0),
        ];
        let mut table = Table::new(&columns);
        for pair in &self.pairs {
            let cell = |name: &str, digits: usize| {
                let figure = pair.figure(name);
                let value = figure
                    .and_then(|f| f.measured)
                    .map_or("-".to_owned(), |v| format!("{v:.digits$}"));
                match figure.map(|f| f.verdict) {
                    Some(FigureVerdict::Fail) => format!("{value}!"),
                    _ => value,
                }
            };
            let failing: Vec<&str> = pair
                .figures
                .iter()
                .filter(|f| f.verdict == FigureVerdict::Fail)
                .map(|f| f.name.as_str())
                .collect();
            table.row(vec![
                pair.from.clone(),
                pair.to.clone(),
                format!("{}/{}", pair.received, pair.sent),
                cell("delay.p10", 2),
                cell("delay.p50", 2),
                cell("delay.p90", 2),
                cell("loss", 4),
                cell("duplicate", 4),
                cell("reorder", 4),
                cell("rate", 1),
                if failing.is_empty() {
                    "pass".to_owned()
                } else {
                    format!("FAIL: {}", failing.join(", "))
                },
            ]);
        }
        out.push_str(&table.render());
        for pair in self.pairs.iter().filter(|p| !p.ok()) {
            for f in pair
                .figures
                .iter()
                .filter(|f| f.verdict == FigureVerdict::Fail)
            {
                let number = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
                let _ = write!(
                    out,
                    "  FAIL {} -> {} {}: measured {} {}, expected {}",
                    pair.from,
                    pair.to,
                    f.name,
                    number(f.measured),
                    f.unit,
                    number(f.expected),
                );
                if let Some((low, high)) = f.interval {
                    let _ = write!(out, ", allowed [{low:.4}, {high:.4}]");
                }
                out.push('\n');
            }
        }
        let mut notes: Vec<String> = Vec::new();
        for pair in &self.pairs {
            for f in &pair.figures {
                if let Some(note) = &f.note {
                    let line = format!("{}: {note}", f.name);
                    if !notes.contains(&line) {
                        notes.push(line);
                    }
                }
            }
        }
        for note in notes {
            let _ = writeln!(out, "  note {note}");
        }
        let _ = writeln!(
            out,
            "{}: {} pairs' links, {} pass, {} fail",
            if self.ok() { "PASS" } else { "FAIL" },
            self.pairs.len(),
            self.pairs.len() - self.failed(),
            self.failed()
        );
        out
    }
}

/// Judges each probed pair of `plan` (its delays as the backend injects
/// them) against the path the plan gives it; a record of a pair the plan
/// does not have is left out.
pub fn judge_lab(plan: &Plan, probing: LinkProbing, records: &[PairRecord]) -> LinkVerdicts {
    let figures = (CHANCE_FIGURES * records.len()).max(1);
    let figure_confidence = 1.0 - (1.0 - CONFIDENCE) / figures as f64;
    let z = z_of(figure_confidence);
    let pairs = records
        .iter()
        .filter_map(|record| {
            let planned = plan.expected(&record.from, &record.to)?;
            let path = Expectation::of_pair(plan, planned);
            let reorders = path.impairment.jitter_reorders;
            Some(judge_at(record, &path, reorders, &plan.verify, z))
        })
        .collect();
    LinkVerdicts {
        probing,
        figure_confidence,
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lab::scenario::link_probe::record::Arrival;

    const LAB: &str = "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"10ms\"\nloss = 0.2\n[[node]]\nname = \"b\"\n[verify]\nlink = true\n";

    /// `sent` packets 10 ms apart from `from` to `to`, each arriving `delay`
    /// later unless `lost` says so.
    fn record(
        from: &str,
        to: &str,
        sent: u64,
        delay: Duration,
        lost: impl Fn(u64) -> bool,
    ) -> PairRecord {
        let spacing = Duration::from_millis(10);
        PairRecord {
            from: from.to_owned(),
            to: to.to_owned(),
            sent,
            arrivals: (0..sent)
                .filter(|&seq| !lost(seq))
                .map(|seq| Arrival {
                    seq,
                    sent: spacing * seq as u32,
                    received: spacing * seq as u32 + delay,
                })
                .collect(),
            overflow: 0,
            spacing,
            payload_bytes: 64,
        }
    }

    #[test]
    fn a_lab_passes_when_each_link_loses_as_asked_and_fails_on_the_one_that_does_not() {
        let plan = Plan::from_text(LAB);
        let probing = plan.verify.link.unwrap();
        let ten = Duration::from_millis(10);
        // a's link: 10 ms and 20% loss, each way, drawn independently.
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let lost: Vec<bool> = (0..1000).map(|_| rng.f64() < 0.2).collect();
            move |seq: u64| lost[seq as usize]
        };
        let good = [
            record("a", "b", 1000, ten, draws(1)),
            record("b", "a", 1000, ten, draws(2)),
        ];
        let verdicts = judge_lab(&plan, probing, &good);
        assert!(verdicts.ok(), "{}", verdicts.render());
        assert_eq!(verdicts.pairs.len(), 2);
        assert!(verdicts.figure_confidence > 0.99 && verdicts.figure_confidence < 1.0);
        let rendered = verdicts.render();
        assert!(
            rendered.contains("PASS: 2 pairs' links, 2 pass, 0 fail"),
            "{rendered}"
        );

        // b -> a lost nothing: the loss its link was given is not there.
        let bad = [good[0].clone(), record("b", "a", 1000, ten, |_| false)];
        let verdicts = judge_lab(&plan, probing, &bad);
        assert!(!verdicts.ok());
        assert_eq!(verdicts.failed(), 1);
        let rendered = verdicts.render();
        assert!(
            rendered.contains("FAIL b -> a loss: measured 0.0000 share, expected 0.2000"),
            "{rendered}"
        );
        assert!(
            rendered.contains("FAIL: 2 pairs' links, 1 pass, 1 fail"),
            "{rendered}"
        );
    }

    #[test]
    fn each_pair_carries_its_delay_curve_measured_and_expected() {
        let plan = Plan::from_text(LAB);
        let ten = Duration::from_millis(10);
        let verdicts = judge_lab(
            &plan,
            plan.verify.link.unwrap(),
            &[record("a", "b", 500, ten, |_| false)],
        );
        let curve = &verdicts.pairs[0].curve;
        assert_eq!(curve.len(), super::super::CURVE.len());
        for point in curve {
            assert_eq!(point.measured_ms, Some(10.0));
            assert!(
                (point.expected_ms.unwrap() - 10.0).abs() < 1e-6,
                "{point:?}"
            );
        }
    }

    #[test]
    fn more_pairs_widen_each_figures_interval() {
        let plan = Plan::from_text(LAB);
        let probing = plan.verify.link.unwrap();
        let ten = Duration::from_millis(10);
        let one = judge_lab(&plan, probing, &[record("a", "b", 10, ten, |_| false)]);
        let two = judge_lab(
            &plan,
            probing,
            &[
                record("a", "b", 10, ten, |_| false),
                record("b", "a", 10, ten, |_| false),
            ],
        );
        assert!(two.figure_confidence > one.figure_confidence);
    }
}
