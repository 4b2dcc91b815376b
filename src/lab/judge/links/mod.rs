//! Judging the link probe: what each ordered pair's packets showed against
//! what its link was told to do. Pure: records in, figures and verdicts out.
//!
//! Each figure is judged by a statistic that fits it: a share (loss,
//! duplicates, reorders) passes when the expected probability lies in the 99%
//! Wilson interval of the share measured over the packets sent; a delay
//! quantile when it is within the lab's tolerance of the expected one; a rate
//! when it is within [`RATE_TOLERANCE`] of the expected one.

pub mod expect;
mod lab;
mod law;
mod series;

pub use lab::{judge_lab, LinkVerdicts, CONFIDENCE};

use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::plan::VerifySettings;
use crate::lab::scenario::link_probe::record::PairRecord;
use expect::{Estimate, Expectation, Expected, Probing, QUANTILES};

/// The normal quantile of a two-sided 99% interval.
pub const Z99: f64 = 2.575_829_303_548_901;

/// How far a measured rate may be from the expected one, as a share.
pub const RATE_TOLERANCE: f64 = 0.05;

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureVerdict {
    /// The measured figure fits the expected one.
    Pass,
    /// It does not.
    Fail,
    /// Reported, not judged (its `note` says why).
    NotJudged,
}

/// One measured figure of a pair, beside the expected one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name: `delay.p10`, `loss`, `loss.burst`, `duplicate`, ...
    pub name: String,
    /// Its unit: `ms`, `share`, `packets`, `packets/s`.
    pub unit: String,
    /// What the link should show.
    pub expected: Option<f64>,
    /// What the probe measured.
    pub measured: Option<f64>,
    /// What the measurement allows the expected figure to be.
    pub interval: Option<(f64, f64)>,
    /// The verdict.
    pub verdict: FigureVerdict,
    /// What the expected figure assumes, or why it is not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every figure of one ordered pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairLinks {
    /// The sender.
    pub from: String,
    /// The receiver.
    pub to: String,
    /// Packets sent.
    pub sent: u64,
    /// Distinct packets received.
    pub received: u64,
    /// The figures, in a fixed order.
    pub figures: Vec<Figure>,
    /// The one-way delay's distribution, measured and expected, at the
    /// quantiles of [`CURVE`]: what the report draws.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
}

/// The quantiles of a pair's delay curve.
pub const CURVE: [f64; 21] = [
    0.01, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75,
    0.80, 0.85, 0.90, 0.95, 0.99,
];

/// One point of a pair's delay curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The quantile, 0 to 1.
    pub q: f64,
    /// The measured delay at it, ms.
    pub measured_ms: Option<f64>,
    /// The delay the shape gives at it, ms (none where not modelled).
    pub expected_ms: Option<f64>,
}

impl PairLinks {
    /// Whether no figure failed.
    pub fn ok(&self) -> bool {
        self.figures
            .iter()
            .all(|f| f.verdict != FigureVerdict::Fail)
    }

    /// A figure by name.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The pair as text: one line per figure.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} -> {}: {} of {} packets received\n",
            self.from, self.to, self.received, self.sent
        );
        for f in &self.figures {
            let verdict = match f.verdict {
                FigureVerdict::Pass => "pass",
                FigureVerdict::Fail => "FAIL",
                FigureVerdict::NotJudged => "  - ",
            };
            let number = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
            let _ = write!(
                out,
                "  {verdict}  {:<10} measured {} expected {} {}",
                f.name,
                number(f.measured),
                number(f.expected),
                f.unit
            );
            if let Some((low, high)) = f.interval {
                let _ = write!(out, ", allowed [{low:.4}, {high:.4}]");
            }
            if let Some(note) = &f.note {
                let _ = write!(out, " ({note})");
            }
            out.push('\n');
        }
        out
    }
}

/// What a probe sending as `probing` should measure on `path`: its
/// combined impairment's figures, or its links' in turn where it has stages.
pub fn expected(path: &Expectation, probing: &Probing) -> Expected {
    let at_once = expect::expected(path, probing);
    match path.stages {
        Some(stages) => series::in_turn(at_once, probing, stages),
        None => at_once,
    }
}

/// Judges one pair's record against its path at 99% confidence.
/// `jitter_reorders`: whether the backend lets jitter reorder frames (netem
/// does, the emulator not).
pub fn judge(
    record: &PairRecord,
    path: &Expectation,
    jitter_reorders: bool,
    verify: &VerifySettings,
) -> PairLinks {
    judge_at(record, path, jitter_reorders, verify, Z99)
}

/// The normal quantile `z` of a two-sided interval of this confidence, to
/// four places (`0.99`: [`Z99`]).
pub fn z_of(confidence: f64) -> f64 {
    let target = (1.0 + confidence.clamp(0.0, 1.0 - 1e-15)) / 2.0;
    let (mut low, mut high) = (0.0, 40.0);
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if law::normal_cdf(mid) < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// [`judge`] with the intervals of the shares and runs at `z` ([`z_of`]):
/// a test that judges many figures at once widens them, as a share of the
/// correct figures equal to one minus the confidence fails by chance.
pub fn judge_at(
    record: &PairRecord,
    path: &Expectation,
    jitter_reorders: bool,
    verify: &VerifySettings,
    z: f64,
) -> PairLinks {
    let probing = Probing {
        spacing: record.spacing,
        wire_bytes: record.wire_bytes(),
        jitter_reorders,
    };
    let expected = expected(path, &probing);
    let measured = measure(record);
    let n = record.sent;
    let mut figures = Vec::new();
    for (i, q) in QUANTILES.iter().enumerate() {
        figures.push(delay_figure(
            format!("delay.p{}", (q * 100.0).round()),
            measured.delays.get(i).copied().flatten(),
            &expected.delay[i],
            verify,
        ));
    }
    figures.push(share_figure(
        "loss",
        measured.lost as f64,
        n as f64 / expected.loss_inflation,
        (n, z),
        &expected.loss,
    ));
    figures.push(burst_figure(&measured, &expected, z));
    figures.push(share_figure(
        "duplicate",
        measured.duplicated as f64,
        n as f64,
        (n, z),
        &expected.duplicate,
    ));
    figures.push(share_figure(
        "reorder",
        measured.reordered as f64,
        n as f64 / expected.reorder_inflation,
        (n, z),
        &expected.reorder,
    ));
    figures.push(rate_figure(measured.rate, &expected.rate));
    let expected_curve = expect::delay_quantiles(path, &probing, &CURVE);
    let curve = CURVE
        .iter()
        .zip(&measured.curve)
        .zip(&expected_curve)
        .map(|((&q, measured), expected)| CurvePoint {
            q,
            measured_ms: measured.map(crate::units::millis),
            expected_ms: expected.value.map(|e| e * 1e3),
        })
        .collect();
    PairLinks {
        from: record.from.clone(),
        to: record.to.clone(),
        sent: record.sent,
        received: measured.received,
        figures,
        curve,
    }
}

/// What one pair's arrivals show.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// One-way delay quantiles (p10, p50, p90) of each packet's first copy.
    pub delays: [Option<Duration>; 3],
    /// Distinct packets received.
    pub received: u64,
    /// Packets sent of which no copy arrived.
    pub lost: u64,
    /// Runs of consecutive lost packets.
    pub loss_runs: u64,
    /// Packets that arrived more than once.
    pub duplicated: u64,
    /// Packets whose first copy arrived after a later packet.
    pub reordered: u64,
    /// Packets per second between the first and the last arrival.
    pub rate: Option<f64>,
    /// One-way delay at each quantile of [`CURVE`].
    pub curve: Vec<Option<Duration>>,
}

/// Counts and quantiles of one record. A sequence number at or past `sent`
/// cannot be the pair's and is ignored.
pub fn measure(record: &PairRecord) -> Measured {
    let sent = record.sent;
    let mut order: Vec<_> = record
        .arrivals
        .iter()
        .filter(|a| a.seq < sent)
        .copied()
        .collect();
    order.sort_by_key(|a| a.received);
    let mut copies = vec![0u8; usize::try_from(sent).unwrap_or(0)];
    let mut delays = Vec::with_capacity(order.len());
    let (mut highest, mut reordered, mut duplicated) = (None::<u64>, 0, 0);
    for a in &order {
        let Some(count) = copies.get_mut(a.seq as usize) else {
            continue;
        };
        *count = count.saturating_add(1);
        if *count > 1 {
            duplicated += u64::from(*count == 2);
            continue;
        }
        delays.push(a.received.saturating_sub(a.sent));
        if highest.is_some_and(|h| a.seq < h) {
            reordered += 1;
        }
        highest = highest.max(Some(a.seq));
    }
    let received = delays.len() as u64;
    let mut loss_runs = 0;
    let mut previous_lost = false;
    for &count in &copies {
        let lost = count == 0;
        loss_runs += u64::from(lost && !previous_lost);
        previous_lost = lost;
    }
    delays.sort_unstable();
    let rate = match (order.first(), order.last()) {
        (Some(first), Some(last)) if received > 1 && last.received > first.received => {
            Some((received - 1) as f64 / (last.received - first.received).as_secs_f64())
        }
        _ => None,
    };
    Measured {
        delays: QUANTILES.map(|q| quantile(&delays, q)),
        curve: CURVE.iter().map(|&q| quantile(&delays, q)).collect(),
        received,
        lost: sent - received,
        loss_runs,
        duplicated,
        reordered,
        rate,
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// The Wilson score interval of `successes` over `trials` at `z`.
pub fn wilson(successes: f64, trials: f64, z: f64) -> (f64, f64) {
    if trials <= 0.0 {
        return (0.0, 1.0);
    }
    let p = (successes / trials).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / trials;
    let centre = (p + z2 / (2.0 * trials)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A share over the packets sent, judged by its Wilson interval at `z` over
/// `trials` (the packets sent, fewer when events come in runs).
fn share_figure(
    name: &str,
    events: f64,
    trials: f64,
    (sent, z): (u64, f64),
    expected: &Estimate,
) -> Figure {
    let measured = (sent > 0).then(|| events / sent as f64);
    let interval = measured.map(|share| {
        let (low, high) = wilson(share * trials, trials, z);
        ((low - PATH_SHARE).max(0.0), (high + PATH_SHARE).min(1.0))
    });
    verdict_in(name, "share", measured, interval, expected)
}

/// What the machine's own path adds to a share, beyond any shape: a veth
/// reorders a frame when its sender moves between CPUs, a busy receiver
/// drops one. One packet in a thousand, added to both ends of an interval,
/// so a clean link is not failed for the kernel's doing while a shape of a
/// few percent, asked and not applied, still is.
pub const PATH_SHARE: f64 = 0.001;

/// A figure that passes when the expected value lies in `interval`.
fn verdict_in(
    name: &str,
    unit: &str,
    measured: Option<f64>,
    interval: Option<(f64, f64)>,
    expected: &Estimate,
) -> Figure {
    let verdict = match (expected.value, interval) {
        (None, _) => FigureVerdict::NotJudged,
        (Some(_), None) => FigureVerdict::Fail,
        (Some(e), Some((low, high))) if (low - 1e-12..=high + 1e-12).contains(&e) => {
            FigureVerdict::Pass
        }
        _ => FigureVerdict::Fail,
    };
    Figure {
        name: name.to_owned(),
        unit: unit.to_owned(),
        expected: expected.value,
        measured,
        interval,
        verdict,
        note: expected.note.clone(),
    }
}

/// A delay quantile, judged within the lab's tolerance of the expected one.
fn delay_figure(
    name: String,
    measured: Option<Duration>,
    expected: &Estimate,
    verify: &VerifySettings,
) -> Figure {
    let ms = crate::units::millis;
    let interval = expected.value.map(|e| {
        let e = Duration::from_secs_f64(e.max(0.0));
        let tolerance = verify.tolerance_for(e);
        (ms(e.saturating_sub(tolerance)), ms(e + tolerance))
    });
    let expected_ms = Estimate {
        value: expected.value.map(|e| e * 1e3),
        note: expected.note.clone(),
    };
    // The interval here is around the expected figure: the measured one must lie in it.
    let mut figure = verdict_in(&name, "ms", measured.map(ms), None, &expected_ms);
    figure.interval = interval;
    figure.verdict = match (expected.value, interval, figure.measured) {
        (None, _, _) => FigureVerdict::NotJudged,
        (Some(_), Some((low, high)), Some(m)) if (low..=high).contains(&m) => FigureVerdict::Pass,
        _ => FigureVerdict::Fail,
    };
    figure
}

/// The mean run of lost packets, judged by a normal interval of the mean of
/// geometric runs (its spread from the expected chance a run goes on).
fn burst_figure(measured: &Measured, expected: &Expected, z: f64) -> Figure {
    let runs = measured.loss_runs;
    let mean = (runs > 0).then(|| measured.lost as f64 / runs as f64);
    if runs == 0 {
        let mut figure = verdict_in("loss.burst", "packets", None, None, &expected.loss_burst);
        figure.verdict = FigureVerdict::NotJudged;
        figure.note = Some("no loss to measure runs of".to_owned());
        return figure;
    }
    let q = expected.loss_continues;
    let half = z * q.sqrt() / (1.0 - q).max(1e-9) / (runs as f64).sqrt();
    let interval = mean.map(|m| ((m - half).max(1.0), m + half));
    verdict_in(
        "loss.burst",
        "packets",
        mean,
        interval,
        &expected.loss_burst,
    )
}

/// A saturating flow's rate, within [`RATE_TOLERANCE`] of the expected one.
fn rate_figure(measured: Option<f64>, expected: &Estimate) -> Figure {
    let interval = measured.map(|m| (m * (1.0 - RATE_TOLERANCE), m * (1.0 + RATE_TOLERANCE)));
    verdict_in("rate", "packets/s", measured, interval, expected)
}

#[cfg(test)]
mod tests;
