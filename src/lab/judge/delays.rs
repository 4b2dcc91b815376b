//! Grading: what the nodes reported against what the plan injected. Pure: events
//! in, report out, so every verdict (and every reason a pair was not measured) is
//! unit-tested without a kernel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::aside::{self, SetAside};
use super::shaped;
pub use super::spread::{percentile, spread_beyond, SPREAD_FLOOR_MS, SPREAD_TOLERANCES};
use crate::lab::plan::Plan;
use crate::lab::scenario::late::{LateAnswers, Spoil};
use crate::lab::scenario::stream::Observations;
use crate::node::event::{NodeEvent, RemovalCause};

/// The verdict on one ordered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairVerdict {
    /// Measured within tolerance.
    Pass,
    /// Measured outside tolerance, or not measured.
    Fail,
    /// Not gradable: the observer's output is not sdss JSON.
    Skipped,
}

/// One row of the report: the delay `to` measured for `from` (B -> A = from -> to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// The measured peer (sender of the timestamp).
    pub from: String,
    /// The measuring node.
    pub to: String,
    /// Expected one-way delay, ms.
    pub expected_ms: f64,
    /// Median of the graded samples, ms.
    pub measured_ms: Option<f64>,
    /// `measured - floor - expected`, ms.
    pub error_ms: Option<f64>,
    /// The pair's floor, measured at zero delay (`[verify] calibrate`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_ms: Option<f64>,
    /// Allowed absolute error, ms.
    pub tolerance_ms: f64,
    /// 95th percentile (nearest rank) of the graded samples, ms: with the
    /// default five samples, their maximum.
    #[serde(default)]
    pub p95_ms: Option<f64>,
    /// Largest graded sample, ms.
    #[serde(default)]
    pub max_ms: Option<f64>,
    /// A passing pair whose p95 is far from its expected delay ([`spread_beyond`]):
    /// a warning, not a failure, as the median is what is graded.
    #[serde(default)]
    pub spread: bool,
    /// Samples the median was taken over.
    pub samples: usize,
    /// All samples received, warm-up included.
    pub total_samples: usize,
    /// Samples after warm-up set aside because the emulator delivered their
    /// answer late (not graded, not in `samples`).
    #[serde(default)]
    pub set_aside: usize,
    /// The verdict.
    pub verdict: PairVerdict,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last samples in arrival order, warm-up included ([`series_kept`] of
    /// them), for the plots (sample `i` is number `total_samples - series.len() + i`).
    /// The report keeps them only for the pairs it plots, so that 100 nodes
    /// do not make the JSON report megabytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Sample>,
}

/// One sample of a pair: when the node printed it and what it measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds after the nodes started (Unix seconds until
    /// [`Verification::since`]); none when the node printed no time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    /// The delay, ms.
    pub ms: f64,
}

/// Samples kept per pair over all pairs, for plotting.
const SERIES_BUDGET: usize = 16_384;

/// Samples kept per pair for plotting: bounded, whatever the lab's length;
/// up to 512 in a small lab, so that a timeline's plot spans its phases.
pub fn series_kept(pairs: usize) -> usize {
    (SERIES_BUDGET / pairs.max(1)).clamp(32, 512)
}

/// Counts over all pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Rows.
    pub pairs: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Summary {
    /// Whether the lab passes: nothing failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

/// The verification of every ordered pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// One row per ordered pair, in plan order.
    pub pairs: Vec<PairResult>,
    /// Counts.
    pub summary: Summary,
    /// Samples each pair needs to be graded (`[verify] samples`).
    pub samples_wanted: usize,
    /// Samples set aside over all pairs, when the emulator's late deliveries were
    /// known (none with netem or no delays: nothing is set aside there).
    pub set_aside: Option<SetAside>,
}

impl Verification {
    /// Whether every gradable pair has enough samples: waiting longer changes
    /// nothing but the figures.
    pub fn converged(&self) -> bool {
        self.pairs
            .iter()
            .all(|p| p.verdict == PairVerdict::Skipped || p.samples >= self.samples_wanted)
    }

    /// Pairs that have all their samples.
    pub fn complete(&self) -> usize {
        self.pairs
            .iter()
            .filter(|p| p.samples >= self.samples_wanted)
            .count()
    }

    /// Each pair's floor, in the plan's order: what it measured beyond its
    /// delay, for a pair with all its samples (calibration, at 1 ms).
    pub fn floors(&self) -> Vec<Option<Duration>> {
        self.pairs
            .iter()
            .map(|row| {
                row.error_ms
                    .filter(|_| row.samples >= self.samples_wanted)
                    .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3))
            })
            .collect()
    }

    /// The samples' times as seconds after the nodes started at `started_at`
    /// (Unix seconds), as the report shows them.
    pub fn since(mut self, started_at: f64) -> Verification {
        for pair in &mut self.pairs {
            for sample in &mut pair.series {
                sample.at_s = sample.at_s.map(|t| round3(t - started_at));
            }
        }
        self
    }
}

#[derive(Default)]
struct PeerView {
    discovered: bool,
    delays: Vec<f64>,
    /// Per delay: its event's `ts` and the peer's timestamp server port.
    stamps: Vec<(Option<f64>, u16)>,
    /// Exchanges that succeeded without a usable time (a 4-byte float answer).
    timeless: usize,
    last_removal: Option<(RemovalCause, String)>,
}

/// A late answer sets its sample aside when its lateness exceeds this share
/// (one over it) of the pair's tolerance: less cannot move a sample out.
const SPOIL_SHARE_OF_TOLERANCE: u128 = 4;

/// Verifies every ordered pair of the plan against the nodes' observations
/// (keyed by node name), setting nothing aside.
pub fn verify(plan: &Plan, observations: &HashMap<String, Observations>) -> Verification {
    verify_aside(plan, &[], observations, None)
}

/// Verifies every ordered pair, grading each only on the samples whose answer
/// the emulator delivered on time when its `late` deliveries are known: the
/// rest are set aside (counted), and a pair left with too few fails with a
/// reason that names the machine. `floors` are calibration's, one per
/// expected pair in the plan's order (empty without calibration): what each
/// pair's path and nodes add by themselves, subtracted from what they measure.
pub fn verify_aside(
    plan: &Plan,
    floors: &[Option<Duration>],
    observations: &HashMap<String, Observations>,
    late: Option<&LateAnswers>,
) -> Verification {
    let index: HashMap<&str, usize> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let window = aside::window(plan);
    let by_ip: HashMap<IpAddr, &str> = plan
        .nodes
        .iter()
        .map(|n| (IpAddr::V4(n.address), n.name.as_str()))
        .collect();
    let mut views: HashMap<(&str, &str), PeerView> = HashMap::new();
    for (observer, seen) in observations {
        for (at, event) in seen.events.iter().enumerate() {
            let ip = match event {
                NodeEvent::Discovered { ip, .. } | NodeEvent::Removed { ip, .. } => *ip,
                NodeEvent::Neighbor(report) => report.ip,
                _ => continue,
            };
            let Some(peer) = by_ip.get(&ip) else {
                continue;
            };
            let view = views.entry((peer, observer.as_str())).or_default();
            match event {
                NodeEvent::Neighbor(report) => {
                    view.discovered = true;
                    match report.delay_ms {
                        Some(delay) => {
                            view.delays.push(delay);
                            view.stamps.push((seen.time(at), report.port));
                        }
                        None => view.timeless += 1,
                    }
                }
                NodeEvent::Removed { cause, reason, .. } => {
                    view.last_removal = Some((*cause, reason.clone()));
                }
                _ => view.discovered = true,
            }
        }
    }

    let verify = &plan.verify;
    let mut total = SetAside {
        window_ms: ms(window),
        missed: late.map_or(0, |l| l.missed),
        ..SetAside::default()
    };
    let mut pairs = Vec::with_capacity(plan.expected.len());
    for (at, pair) in plan.expected.iter().enumerate() {
        let (expected, tolerance) = shaped::judged(verify, &pair.impairment, verify.samples);
        let tolerance = tolerance + pair.slack;
        let mut row = PairResult {
            from: pair.from.clone(),
            to: pair.to.clone(),
            expected_ms: ms(expected),
            measured_ms: None,
            error_ms: None,
            floor_ms: floors.get(at).copied().flatten().map(ms),
            tolerance_ms: ms(tolerance),
            p95_ms: None,
            max_ms: None,
            spread: false,
            samples: 0,
            total_samples: 0,
            set_aside: 0,
            verdict: PairVerdict::Fail,
            reason: None,
            series: Vec::new(),
        };
        let observer = plan.node(&pair.to);
        if observer.is_some_and(|n| !n.graded) {
            row.verdict = PairVerdict::Skipped;
            row.reason = Some(format!(
                "{} runs a custom command whose output is not sdss JSON (set json = true to grade it)",
                pair.to
            ));
            pairs.push(row);
            continue;
        }
        let seen = observations.get(&pair.to);
        let started = seen.is_some_and(|s| {
            s.events
                .iter()
                .any(|e| matches!(e, NodeEvent::Started { .. }))
        });
        let view = views.get(&(pair.from.as_str(), pair.to.as_str()));
        row.total_samples = view.map_or(0, |v| v.delays.len());
        if let Some(view) = view {
            let kept = view
                .delays
                .len()
                .saturating_sub(series_kept(plan.expected.len()));
            row.series = view.delays[kept..]
                .iter()
                .zip(&view.stamps[kept..])
                .map(|(ms, (at_s, _))| Sample {
                    at_s: *at_s,
                    ms: *ms,
                })
                .collect();
        }
        if !started {
            let exited = seen.and_then(|s| s.exited.clone());
            row.reason = Some(match exited {
                Some(how) => format!("not measured: {} never started ({how})", pair.to),
                None => format!("not measured: {} printed no started event", pair.to),
            });
            pairs.push(row);
            continue;
        }
        let Some(view) = view.filter(|v| v.discovered) else {
            row.reason = Some(format!(
                "not discovered: {} never heard {}'s announcements",
                pair.to, pair.from
            ));
            pairs.push(row);
            continue;
        };
        let warmup = verify.warmup as usize;
        let wanted = verify.samples as usize;
        // How late each sample's answer was, if the emulator delivered it
        // late enough to matter: by more than a quarter of the tolerance
        // (a lateness of 60 us moves no sample of a 500 us tolerance out).
        let mattering = tolerance.as_micros() / SPOIL_SHARE_OF_TOLERANCE;
        let spoiled = |i: usize| {
            let (ts, port) = view.stamps[i];
            let (from, to) = (index.get(pair.from.as_str())?, index.get(pair.to.as_str())?);
            late?
                .spoiled(*from, *to, port, ts?, window)
                .filter(|s| u128::from(s.late_us) + u128::from(s.held_us) > mattering)
        };
        let mut on_time = Vec::new();
        let mut spoils = Vec::new();
        for (i, delay) in view.delays.iter().enumerate().skip(warmup) {
            match spoiled(i) {
                Some(spoil) => spoils.push(spoil),
                None => on_time.push(*delay),
            }
        }
        row.set_aside = spoils.len();
        total.samples += spoils.len();
        total.of += spoils.len() + on_time.len();
        let graded = &on_time[on_time.len().saturating_sub(wanted)..];
        row.samples = graded.len();
        // Too few on time, but enough had the machine kept up.
        let machine = (graded.len() < wanted && graded.len() + spoils.len() >= wanted)
            .then(|| machine_reason(&spoils, graded.len(), wanted));
        if let (Some(reason), true) = (&machine, graded.is_empty()) {
            row.reason = Some(reason.clone());
            pairs.push(row);
            continue;
        }
        if graded.is_empty() {
            row.reason = Some(match (&view.last_removal, view.delays.len()) {
                (Some((cause, reason)), 0) => {
                    format!("not measured: {} ({reason})", describe_cause(*cause))
                }
                (_, 0) if view.timeless > 0 => format!(
                    "not measured: {} exchange(s) succeeded but the peer's time was unusable (see the observer's warnings)",
                    view.timeless
                ),
                (_, 0) => "not measured: discovered, but no exchange completed".to_owned(),
                (_, n) if spoils.is_empty() => {
                    format!("not measured: only {n} warm-up sample(s), none graded")
                }
                (_, _) => format!(
                    "too few samples: none on time of {wanted} after {warmup} warm-up{}",
                    aside_note(&spoils)
                ),
            });
            pairs.push(row);
            continue;
        }
        let measured = median(graded);
        let error = measured - row.floor_ms.unwrap_or(0.0) - row.expected_ms;
        let p95 = percentile(graded, 0.95);
        row.measured_ms = Some(round3(measured));
        row.error_ms = Some(round3(error));
        row.p95_ms = Some(round3(p95));
        row.max_ms = Some(round3(graded.iter().copied().fold(f64::MIN, f64::max)));
        if let Some(reason) = machine {
            row.reason = Some(reason);
        } else if graded.len() < wanted {
            row.reason = Some(format!(
                "too few samples: {} of {wanted} after {warmup} warm-up{}",
                graded.len(),
                aside_note(&spoils)
            ));
        } else if error.abs() <= row.tolerance_ms {
            row.verdict = PairVerdict::Pass;
            let p95_error = p95 - row.floor_ms.unwrap_or(0.0) - row.expected_ms;
            row.spread = spread_beyond(p95_error, row.tolerance_ms, ms(pair.impairment.jitter));
        } else {
            row.reason = Some(format!(
                "off by {:+.3} ms, more than the {:.3} ms tolerance",
                error, row.tolerance_ms
            ));
        }
        pairs.push(row);
    }
    let summary = Summary {
        pairs: pairs.len(),
        passed: pairs
            .iter()
            .filter(|p| p.verdict == PairVerdict::Pass)
            .count(),
        failed: pairs
            .iter()
            .filter(|p| p.verdict == PairVerdict::Fail)
            .count(),
        skipped: pairs
            .iter()
            .filter(|p| p.verdict == PairVerdict::Skipped)
            .count(),
    };
    Verification {
        pairs,
        summary,
        samples_wanted: verify.samples as usize,
        set_aside: late.map(|_| total),
    }
}

/// What a reason adds about samples set aside, if any were.
fn aside_note(spoils: &[Spoil]) -> String {
    if spoils.is_empty() {
        return String::new();
    }
    format!(
        ", and {} set aside: {}",
        spoils.len(),
        aside::describe(spoils)
    )
}

/// Why a pair with too few samples on time fails: the machine, not the node.
fn machine_reason(spoils: &[Spoil], on_time: usize, wanted: usize) -> String {
    format!(
        "machine: {} sample(s) set aside: {}; too few on time ({on_time} of {wanted})",
        spoils.len(),
        aside::describe(spoils),
    )
}

/// What a `removed` event's cause means, for the report.
fn describe_cause(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Refused => "refused: the exchange's connection was refused",
        RemovalCause::Timeout => "timed out: the exchange did not complete in time",
        RemovalCause::Unreachable => "unreachable: no route or no ARP answer",
        RemovalCause::Reset => "reset by the peer",
        RemovalCause::NoAnswer => "the peer closed without sending its time",
        RemovalCause::Io => "a socket error during the exchange",
        RemovalCause::BadAnswer => "the peer answered bytes that are no time",
        RemovalCause::Silent => "the peer stopped announcing itself",
    }
}

/// Median of a non-empty slice (mean of the two middle values for even lengths).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn ms(duration: Duration) -> f64 {
    crate::units::millis(duration)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "name = \"t\"\nsubnet = \"10.0.0.0/24\"\n[verify]\nsamples = 3\nwarmup = 1\n[[node]]\nname = \"a\"\ndelay = \"5ms\"\n[[node]]\nname = \"b\"\ndelay = \"10ms\"\n";

    fn started(id: &str) -> String {
        format!(
            r#"{{"event":"started","id":"{id}","tcp_port":1,"broadcast_port":35498,"destinations":[],"interval_ms":200,"refresh_every":3,"ts":"2026-01-01T00:00:00Z"}}"#
        )
    }

    fn neighbor(id: &str, ip: &str, delay: f64) -> String {
        format!(
            r#"{{"event":"neighbor","id":"{id}","ip":"{ip}","port":7,"delay_ms":{delay},"rtt_ms":1.0,"offset_ms":0.0,"min_ms":0.0,"mean_ms":0.0,"jitter_ms":0.0,"samples":1,"successes":1,"failures":0,"dialect":"binary_be","ts":"x"}}"#
        )
    }

    fn observed(lines: &[String]) -> Observations {
        Observations::parse(&lines.join("\n"))
    }

    #[test]
    fn a_passing_pair_with_a_far_sample_is_flagged_and_a_ticks_hiccup_is_not() {
        // The partition lab: 6 ms expected, one sample of 23.8 ms among five.
        let plan = Plan::from_text(&TWO.replace("samples = 3", "samples = 5"));
        let mut obs = HashMap::new();
        let stamped = |delay: f64, second: u32| {
            neighbor("bbbbbbbb", "10.0.0.2", delay).replace(
                "\"ts\":\"x\"",
                &format!("\"ts\":\"2026-01-01T00:00:{second:02}Z\""),
            )
        };
        let mut lines = vec![started("aaaaaaaa")];
        for (i, delay) in [15.0, 15.1, 33.0, 14.9, 15.0, 15.2].into_iter().enumerate() {
            lines.push(stamped(delay, 10 + i as u32));
        }
        obs.insert("a".to_owned(), observed(&lines));
        let start = 1_767_225_600.0; // 2026-01-01T00:00:00Z
        let ba = verify(&plan, &obs).since(start).pairs[1].clone();
        assert_eq!(ba.verdict, PairVerdict::Pass, "the median holds: {ba:?}");
        assert_eq!((ba.p95_ms, ba.max_ms), (Some(33.0), Some(33.0)));
        assert!(ba.spread, "{ba:?}");
        assert_eq!(ba.series[2].at_s, Some(12.0), "seconds after the start");
        // 4 ms late once, a scheduler tick: no flag.
        assert!(!spread_beyond(3.9, 0.5, 0.0));
        assert!(spread_beyond(17.8, 0.5, 0.0));
        assert!(
            !spread_beyond(17.8, 0.5, 8.0),
            "a link jittered by 8 ms spreads so"
        );
        assert!(
            !spread_beyond(25.0, 10.0, 0.0),
            "within 3 tolerances of a long delay"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let five = [1.0, 5.0, 2.0, 4.0, 3.0];
        assert_eq!(percentile(&five, 0.95), 5.0);
        assert_eq!(percentile(&five, 0.5), 3.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.95), 95.0);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn passes_within_tolerance_after_warm_up_and_fails_outside() {
        let plan = Plan::from_text(TWO);
        let mut obs = HashMap::new();
        // a measures b (b -> a, expected 15 ms); the 80 ms warm-up sample is ignored.
        obs.insert(
            "a".to_owned(),
            observed(&[
                started("aaaaaaaa"),
                neighbor("bbbbbbbb", "10.0.0.2", 80.0),
                neighbor("bbbbbbbb", "10.0.0.2", 15.1),
                neighbor("bbbbbbbb", "10.0.0.2", 14.9),
                neighbor("bbbbbbbb", "10.0.0.2", 15.2),
            ]),
        );
        // b misreports a by 10 ms.
        obs.insert(
            "b".to_owned(),
            observed(&[
                started("bbbbbbbb"),
                neighbor("aaaaaaaa", "10.0.0.1", 0.0),
                neighbor("aaaaaaaa", "10.0.0.1", 25.0),
                neighbor("aaaaaaaa", "10.0.0.1", 25.0),
                neighbor("aaaaaaaa", "10.0.0.1", 25.0),
            ]),
        );
        let verification = verify(&plan, &obs);
        let ba = &verification.pairs[1];
        assert_eq!((ba.from.as_str(), ba.to.as_str()), ("b", "a"));
        assert_eq!(ba.verdict, PairVerdict::Pass, "{ba:?}");
        assert_eq!(ba.measured_ms, Some(15.1));
        assert_eq!(ba.samples, 3);
        assert_eq!(ba.total_samples, 4);
        let series: Vec<f64> = ba.series.iter().map(|s| s.ms).collect();
        assert_eq!(series, [80.0, 15.1, 14.9, 15.2]);
        assert_eq!(
            (ba.p95_ms, ba.max_ms, ba.spread),
            (Some(15.2), Some(15.2), false)
        );
        let ab = &verification.pairs[0];
        assert_eq!(ab.verdict, PairVerdict::Fail);
        assert_eq!(ab.error_ms, Some(10.0));
        assert!(
            ab.reason
                .as_deref()
                .unwrap()
                .starts_with("off by +10.000 ms"),
            "{ab:?}"
        );
        assert_eq!(
            verification.summary,
            Summary {
                pairs: 2,
                passed: 1,
                failed: 1,
                skipped: 0
            }
        );
        assert!(!verification.summary.ok());
        assert!(verification.converged());
    }

    #[test]
    fn a_calibrated_floor_is_subtracted_from_what_was_measured() {
        let plan = Plan::from_text(TWO);
        // b -> a: 15 ms injected, 40 us of floor measured while calibrating.
        let floors = [None, Some(Duration::from_micros(40))];
        let mut obs = HashMap::new();
        obs.insert(
            "a".to_owned(),
            observed(&[
                started("aaaaaaaa"),
                neighbor("bbbbbbbb", "10.0.0.2", 0.5),
                neighbor("bbbbbbbb", "10.0.0.2", 15.045),
                neighbor("bbbbbbbb", "10.0.0.2", 15.05),
                neighbor("bbbbbbbb", "10.0.0.2", 15.041),
            ]),
        );
        let ba = &verify_aside(&plan, &floors, &obs, None).pairs[1];
        assert_eq!(ba.measured_ms, Some(15.045), "the median as measured");
        assert_eq!(ba.floor_ms, Some(0.04));
        assert_eq!(ba.error_ms, Some(0.005), "{ba:?}");
        assert_eq!(ba.verdict, PairVerdict::Pass);
        assert_eq!(
            verify_aside(&plan, &floors, &obs, None).pairs[0].floor_ms,
            None,
            "a -> b has none"
        );
    }

    #[test]
    fn unmeasured_pairs_are_failures_with_reasons() {
        let plan = Plan::from_text(TWO);
        let mut obs = HashMap::new();
        obs.insert("a".to_owned(), observed(&[started("aaaaaaaa")]));
        obs.insert(
            "b".to_owned(),
            observed(&[
                started("bbbbbbbb"),
                r#"{"event":"discovered","id":"aaaaaaaa","ip":"10.0.0.1","port":7}"#.to_owned(),
                r#"{"event":"removed","id":"aaaaaaaa","ip":"10.0.0.1","cause":"refused","reason":"connection refused"}"#.to_owned(),
                "not json".to_owned(),
            ]),
        );
        let verification = verify(&plan, &obs);
        assert_eq!(verification.summary.failed, 2);
        assert!(
            verification.pairs[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("refused"),
            "{:?}",
            verification.pairs[0]
        );
        assert!(
            verification.pairs[1]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("not discovered"),
            "{:?}",
            verification.pairs[1]
        );
        assert!(!verification.converged());
        assert_eq!(obs["b"].unreadable_lines, 1);
    }

    #[test]
    fn a_node_that_never_started_and_too_few_samples() {
        let plan = Plan::from_text(TWO);
        let mut obs = HashMap::new();
        obs.insert(
            "a".to_owned(),
            Observations {
                exited: Some("exit status 2".to_owned()),
                ..Default::default()
            },
        );
        obs.insert(
            "b".to_owned(),
            observed(&[
                started("bbbbbbbb"),
                neighbor("aaaaaaaa", "10.0.0.1", 15.0),
                neighbor("aaaaaaaa", "10.0.0.1", 15.0),
            ]),
        );
        let verification = verify(&plan, &obs);
        assert!(verification.pairs[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("never started (exit status 2)"));
        let ab = &verification.pairs[0];
        assert_eq!(ab.verdict, PairVerdict::Fail);
        assert_eq!(ab.measured_ms, Some(15.0));
        assert!(
            ab.reason
                .as_deref()
                .unwrap()
                .starts_with("too few samples: 1 of 3"),
            "{ab:?}"
        );
    }

    #[test]
    fn compacted_observations_grade_the_same() {
        let plan = Plan::from_text(TWO);
        let mut lines = vec![started("aaaaaaaa")];
        for i in 0..50 {
            lines.push(neighbor("bbbbbbbb", "10.0.0.2", 15.0 + f64::from(i % 7)));
        }
        lines.push(started("aaaaaaaa"));
        lines.push(r#"{"event":"discovered","id":"bbbbbbbb","ip":"10.0.0.2","port":7}"#.to_owned());
        let full = observed(&lines);
        let mut compacted = full.clone();
        compacted.compact(4);
        assert_eq!(compacted.events.len(), 6, "{:?}", compacted.events);
        let grade = |seen: &Observations| {
            let obs = HashMap::from([("a".to_owned(), seen.clone())]);
            verify(&plan, &obs).pairs[1].clone()
        };
        let (before, after) = (grade(&full), grade(&compacted));
        assert_eq!(before.measured_ms, after.measured_ms);
        assert_eq!(before.verdict, after.verdict);
        assert_eq!(after.total_samples, 4);
    }

    /// A `neighbor` event of the peer at `ip` answering from port 7, printed at
    /// `at` seconds after 2026-01-01T00:00:00Z.
    fn neighbor_at(id: &str, ip: &str, delay: f64, at: u32) -> String {
        neighbor(id, ip, delay).replace(
            r#""ts":"x""#,
            &format!(
                r#""ts":"2026-01-01T00:{:02}:{:02}.250000Z""#,
                at / 60,
                at % 60
            ),
        )
    }

    /// Unix seconds of [`neighbor_at`]'s `at`.
    fn unix(at: u32) -> f64 {
        1_767_225_600.0 + f64::from(at) + 0.25
    }

    /// The emulator delivered b's answer from `port` to a late, `before` seconds
    /// before a's event at `at`.
    fn late_answer(answers: &mut LateAnswers, at: u32, before: f64, port: u16) {
        answers.add(&crate::lab::builder::emulator::LateDelivery {
            at_us: ((unix(at) - before) * 1e6) as u64,
            from: 1,
            to: 0,
            source_port: port,
            late_us: 1_300,
            held_us: 30,
        });
    }

    /// b's samples as a measured them (b -> a, 15 ms expected), and a's of b.
    fn two_observing(a_saw: &[(f64, u32)]) -> HashMap<String, Observations> {
        let mut a = vec![started("aaaaaaaa")];
        a.extend(
            a_saw
                .iter()
                .map(|(delay, at)| neighbor_at("bbbbbbbb", "10.0.0.2", *delay, *at)),
        );
        let mut b = vec![started("bbbbbbbb")];
        b.extend((0..4).map(|_| neighbor("aaaaaaaa", "10.0.0.1", 15.0)));
        HashMap::from([
            ("a".to_owned(), observed(&a)),
            ("b".to_owned(), observed(&b)),
        ])
    }

    #[test]
    fn events_keep_their_time_through_parsing_and_compaction() {
        let mut seen = observed(&[
            started("aaaaaaaa"),
            neighbor_at("bbbbbbbb", "10.0.0.2", 1.0, 10),
            neighbor_at("bbbbbbbb", "10.0.0.2", 2.0, 20),
        ]);
        assert_eq!(
            seen.times,
            [Some(unix(0) - 0.25), Some(unix(10)), Some(unix(20))]
        );
        seen.compact(1);
        assert_eq!(seen.events.len(), 2);
        assert_eq!(seen.times, [Some(unix(0) - 0.25), Some(unix(20))]);
    }

    #[test]
    fn exactly_the_samples_whose_answer_was_late_in_the_window_are_set_aside() {
        let plan = Plan::from_text(TWO);
        let window = aside::window(&plan).as_secs_f64();
        // Warm-up, two good samples, two spoiled by late answers, one good.
        let obs = two_observing(&[
            (80.0, 10),
            (15.0, 20),
            (15.1, 30),
            (40.0, 40),
            (55.0, 50),
            (15.2, 60),
        ]);
        let mut answers = LateAnswers::default();
        late_answer(&mut answers, 40, 0.001, 7);
        late_answer(&mut answers, 50, window * 0.9, 7);
        // Not b's answer: b's client writing its time to a's server.
        late_answer(&mut answers, 30, 0.001, 45_000);
        // b's answer, late, but before the window of the sample at 60.
        late_answer(&mut answers, 60, window + 0.01, 7);
        // The warm-up sample is not graded whatever its answer.
        late_answer(&mut answers, 10, 0.001, 7);
        let verification = verify_aside(&plan, &[], &obs, Some(&answers));
        let ba = &verification.pairs[1];
        assert_eq!(ba.verdict, PairVerdict::Pass, "{ba:?}");
        assert_eq!((ba.samples, ba.set_aside, ba.total_samples), (3, 2, 6));
        assert_eq!(ba.measured_ms, Some(15.1), "graded on 15.0, 15.1, 15.2");
        assert_eq!(
            ba.series.iter().map(|s| s.ms).collect::<Vec<_>>(),
            [80.0, 15.0, 15.1, 40.0, 55.0, 15.2],
            "plots keep all"
        );
        let total = verification.set_aside.unwrap();
        assert_eq!(
            (total.samples, total.of),
            (2, 8),
            "a's 5 and b's 3 after warm-up"
        );
        assert_eq!(verification.pairs[0].set_aside, 0);
        // Without the emulator's word the spoiled samples fail the pair.
        let blind = verify(&plan, &obs);
        assert_eq!(blind.pairs[1].verdict, PairVerdict::Fail);
        assert_eq!(blind.pairs[1].measured_ms, Some(40.0));
        assert_eq!(blind.set_aside, None, "netem and no delays: nothing known");
    }

    #[test]
    fn convergence_waits_for_samples_on_time_and_the_machine_is_named_when_too_few() {
        let plan = Plan::from_text(TWO);
        let obs = two_observing(&[(80.0, 10), (15.0, 20), (40.0, 30), (15.1, 40)]);
        let mut answers = LateAnswers::default();
        late_answer(&mut answers, 30, 0.002, 7);
        assert!(
            verify(&plan, &obs).converged(),
            "three samples after warm-up"
        );
        let verification = verify_aside(&plan, &[], &obs, Some(&answers));
        assert!(!verification.converged(), "only two on time");
        let ba = &verification.pairs[1];
        assert_eq!(ba.verdict, PairVerdict::Fail);
        assert_eq!((ba.samples, ba.set_aside), (2, 1));
        assert_eq!(ba.measured_ms, Some(15.05), "the median of those on time");
        assert_eq!(
            ba.reason.as_deref(),
            Some("machine: 1 sample(s) set aside: their answer was late (the emulator delivered it up to 1.300 ms late); too few on time (2 of 3)")
        );
        // One more on time, and it converges and passes.
        let obs = two_observing(&[(80.0, 10), (15.0, 20), (40.0, 30), (15.1, 40), (15.2, 50)]);
        let verification = verify_aside(&plan, &[], &obs, Some(&answers));
        assert!(verification.converged());
        assert_eq!(verification.pairs[1].verdict, PairVerdict::Pass);
        // Too few even with those set aside: short of exchanges, not only the machine.
        let obs = two_observing(&[(80.0, 10), (40.0, 30)]);
        let ba = verify_aside(&plan, &[], &obs, Some(&answers)).pairs[1].clone();
        assert_eq!(ba.reason.as_deref(), Some("too few samples: none on time of 3 after 1 warm-up, and 1 set aside: their answer was late (the emulator delivered it up to 1.300 ms late)"));
    }

    #[test]
    fn custom_observers_are_skipped_not_failed() {
        let plan = Plan::from_text(
            "name = \"t\"\n[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\ncommand = [\"peer\"]\n",
        );
        let mut obs = HashMap::new();
        obs.insert(
            "a".to_owned(),
            observed(&[
                started("aaaaaaaa"),
                neighbor("xxxxxxxx", "198.18.0.2", 0.1),
                neighbor("xxxxxxxx", "198.18.0.2", 0.1),
            ]),
        );
        let mut plan = plan;
        plan.verify.samples = 1;
        let verification = verify(&plan, &obs);
        assert_eq!(verification.pairs[0].verdict, PairVerdict::Skipped);
        assert_eq!(verification.pairs[1].verdict, PairVerdict::Pass);
        assert!(verification.summary.ok());
    }
}
