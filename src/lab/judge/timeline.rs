//! Verdicts on a lab's timeline: each expectation, with when it became true
//! for each observer, and the delays of each phase against the values in
//! force then. Pure: the nodes' stamped events and the times events were
//! played go in, verdicts come out.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::lab::file::Expectation;
use crate::lab::plan::timeline::{Expect, PairState, Phase};
use crate::lab::plan::Plan;
use crate::lab::scenario::played::Played;
use crate::node::event::NodeEvent;
use crate::units::{format_ms, millis};

use super::delays::{median, Sample};
use super::shaped;

/// A delay has settled once the median of this many consecutive samples is within tolerance.
pub const SETTLED_SAMPLES: usize = 3;

/// The verdict on one expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectVerdict {
    /// What it asked, in words.
    pub what: String,
    /// Whether it held.
    pub held: bool,
    /// Per observer (or pair): when it became true, or that it did not.
    pub evidence: Vec<String>,
}

/// The delays of one phase against the values in force then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseDelays {
    /// Which phase (0: before the first event).
    pub phase: usize,
    /// What began it.
    pub began: String,
    /// Pairs expected to be measured in it, and judged (enough settled samples).
    pub judged: usize,
    /// Of those, within tolerance.
    pub passed: usize,
    /// The others, in words.
    pub failures: Vec<String>,
    /// Every ordered pair's delays in the phase, for its heat map.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<PhaseCell>,
}

/// One ordered pair in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCell {
    /// Sender.
    pub from: String,
    /// Receiver, who measures.
    pub to: String,
    /// The delay expected then, ms; none when the pair is cut or partitioned
    /// or one end does not run: nothing is to be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_ms: Option<f64>,
    /// The median of the phase's samples, ms, when it had enough to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<f64>,
    /// The tolerance it was judged with, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_ms: Option<f64>,
}

/// Everything judged of a timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineVerdicts {
    /// The events as played.
    pub played: Vec<Played>,
    /// One per expectation.
    pub expects: Vec<ExpectVerdict>,
    /// One per phase long enough to judge.
    pub phases: Vec<PhaseDelays>,
}

impl TimelineVerdicts {
    /// Whether every event was played and every expectation held.
    pub fn ok(&self) -> bool {
        self.played.iter().all(|p| p.error.is_none()) && self.expects.iter().all(|x| x.held)
    }
}

/// The stamped events of every observer (seconds after the nodes started).
pub type Stamped = HashMap<String, Vec<(f64, NodeEvent)>>;

/// The last `keep` samples `to` took of `from` over the whole run, for the
/// plots of a timeline lab (the delays' table stops at the first event).
pub fn series(plan: &Plan, events: &Stamped, from: &str, to: &str, keep: usize) -> Vec<Sample> {
    let Some(ip) = plan.node(from).map(|n| IpAddr::V4(n.address)) else {
        return Vec::new();
    };
    let all: Vec<Sample> = events
        .get(to)
        .into_iter()
        .flatten()
        .filter_map(|(t, e)| match e {
            NodeEvent::Neighbor(r) if r.ip == ip => r.delay_ms.map(|ms| Sample {
                at_s: Some((t * 1e3).round() / 1e3),
                ms: (ms * 1e3).round() / 1e3,
            }),
            _ => None,
        })
        .collect();
    all[all.len().saturating_sub(keep)..].to_vec()
}

/// Judges the timeline. `settle` is how long after a change samples still
/// show the old state (one refresh period); `end_s` when watching stopped.
pub fn judge(
    plan: &Plan,
    played: &[Played],
    events: &Stamped,
    settle: f64,
    end_s: f64,
) -> TimelineVerdicts {
    let timeline = &plan.timeline;
    let ip_of: HashMap<&str, IpAddr> = plan
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), IpAddr::V4(n.address)))
        .collect();
    let at_of = |event: Option<usize>| {
        event.map_or(Some(0.0), |i| {
            played
                .iter()
                .find(|p| p.event == i && p.error.is_none())
                .map(|p| p.at_s)
        })
    };
    let judge = Judge {
        plan,
        events,
        ip_of: &ip_of,
        end_s,
    };
    let expects = timeline
        .expects
        .iter()
        .map(|x| match at_of(x.after) {
            Some(t) => judge.expectation(x, t),
            None => ExpectVerdict {
                what: judge.describe(x),
                held: false,
                evidence: vec!["its event was not played".to_owned()],
            },
        })
        .collect();
    let phases = timeline
        .phases
        .iter()
        .enumerate()
        .filter_map(|(index, phase)| {
            let from = at_of(phase.event)? + settle;
            let to = timeline
                .phases
                .get(index + 1)
                .and_then(|next| at_of(next.event))
                .unwrap_or(end_s);
            (to > from).then(|| judge.phase(index, phase, from, to))
        })
        .collect();
    TimelineVerdicts {
        played: played.to_vec(),
        expects,
        phases,
    }
}

struct Judge<'a> {
    plan: &'a Plan,
    events: &'a Stamped,
    ip_of: &'a HashMap<&'a str, IpAddr>,
    end_s: f64,
}

impl Judge<'_> {
    fn describe(&self, x: &Expect) -> String {
        let after = x.after.map_or_else(
            || "the start".to_owned(),
            |i| {
                let e = &self.plan.timeline.events[i];
                e.name.clone().unwrap_or_else(|| e.change.describe())
            },
        );
        let within = x
            .within
            .map(|d| format!(" within {}", crate::units::format_duration(d)))
            .unwrap_or_default();
        let pair = x
            .pair
            .as_ref()
            .map(|(f, t)| format!(" {f} -> {t}"))
            .unwrap_or_default();
        let node = x.node.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
        let what = match x.what {
            Expectation::Delay => format!("delay{pair} settles"),
            Expectation::Removed => format!("every node removes{node}"),
            Expectation::Discovered => format!("every node discovers{node}"),
            Expectation::Separated => "the sides forget each other".to_owned(),
            Expectation::Rejoined => "the sides measure each other again".to_owned(),
            Expectation::Measured => format!(
                "{} measured with no gap over {}",
                pair.trim_start(),
                x.gap.map(crate::units::format_duration).unwrap_or_default()
            ),
        };
        format!("{what}{within} after {after}")
    }

    /// Samples `to` took of `from` after `since`: (time, delay ms).
    fn samples(&self, from: &str, to: &str, since: f64) -> Vec<(f64, f64)> {
        let Some(ip) = self.ip_of.get(from) else {
            return Vec::new();
        };
        self.events
            .get(to)
            .into_iter()
            .flatten()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(t, e)| match e {
                NodeEvent::Neighbor(r) if r.ip == *ip => r.delay_ms.map(|d| (*t, d)),
                _ => None,
            })
            .collect()
    }

    /// The first time after `since` that `observer` printed an event about `node` that `matches`.
    fn first(
        &self,
        observer: &str,
        node: &str,
        since: f64,
        matches: impl Fn(&NodeEvent) -> bool,
    ) -> Option<f64> {
        let ip = self.ip_of.get(node)?;
        self.events
            .get(observer)?
            .iter()
            .filter(|(t, _)| *t >= since)
            .find(|(_, e)| {
                matches(e)
                    && match e {
                        NodeEvent::Removed { ip: at, .. }
                        | NodeEvent::Discovered { ip: at, .. } => at == ip,
                        NodeEvent::Neighbor(r) => r.ip == *ip,
                        _ => false,
                    }
            })
            .map(|(t, _)| *t)
    }

    fn expectation(&self, x: &Expect, t: f64) -> ExpectVerdict {
        let deadline = t + x.within.map_or(f64::INFINITY, |d| d.as_secs_f64());
        let timeline = &self.plan.timeline;
        let phase = timeline.phase_at(std::time::Duration::from_secs_f64(
            x.after.map_or(0.0, |i| timeline.events[i].at.as_secs_f64()),
        ));
        let before = x.after.map_or(&timeline.phases[0], |i| &timeline.phases[i]);
        let mut evidence = Vec::new();
        let mut held = true;
        let mut check = |label: String, when: Option<f64>| match when {
            Some(when) if when <= deadline => {
                evidence.push(format!("{label}: at +{:.1} s", when - t))
            }
            Some(when) => {
                held = false;
                evidence.push(format!("{label}: only at +{:.1} s", when - t));
            }
            None => {
                held = false;
                evidence.push(format!(
                    "{label}: not by the end (+{:.1} s)",
                    self.end_s - t
                ));
            }
        };
        let running = |name: &str| phase.running.contains(name);
        match x.what {
            Expectation::Delay => {
                let pairs: Vec<(String, String)> = match &x.pair {
                    Some(pair) => vec![pair.clone()],
                    None => phase
                        .pairs
                        .iter()
                        .map(|p| (p.from.clone(), p.to.clone()))
                        .filter(|(f, to)| phase.expected(f, to) != before.expected(f, to))
                        .filter(|(f, to)| phase.expected(f, to).is_some())
                        .collect(),
                };
                for (from, to) in pairs {
                    let label = format!("{from} -> {to}");
                    let Some(expected) = phase.expected(&from, &to) else {
                        check(format!("{label} (not expected to be measured)"), None);
                        continue;
                    };
                    let (delay, tolerance) =
                        shaped::judged(&self.plan.verify, &expected, SETTLED_SAMPLES as u32);
                    let (expected_ms, tolerance) = (millis(delay), millis(tolerance));
                    let samples = self.samples(&from, &to, t);
                    let settled = samples.windows(SETTLED_SAMPLES).find(|w| {
                        let delays: Vec<f64> = w.iter().map(|(_, d)| *d).collect();
                        (median(&delays) - expected_ms).abs() <= tolerance
                    });
                    check(
                        format!(
                            "{label} ({} ms ± {})",
                            format_ms(expected_ms),
                            format_ms(tolerance)
                        ),
                        settled.and_then(|w| w.last()).map(|(t, _)| *t),
                    );
                }
            }
            Expectation::Removed | Expectation::Discovered => {
                let node = x.node.clone().unwrap_or_default();
                let removed = x.what == Expectation::Removed;
                for observer in self.observers().filter(|o| *o != node && running(o)) {
                    let when = self.first(observer, &node, t, |e| {
                        if removed {
                            matches!(e, NodeEvent::Removed { .. })
                        } else {
                            matches!(e, NodeEvent::Discovered { .. })
                        }
                    });
                    check(observer.to_owned(), when);
                }
            }
            Expectation::Separated | Expectation::Rejoined => {
                let sides = self.sides(x, before, phase);
                let separated = x.what == Expectation::Separated;
                for (observer, others) in sides {
                    let when = others
                        .iter()
                        .map(|other| {
                            self.first(&observer, other, t, |e| {
                                if separated {
                                    matches!(e, NodeEvent::Removed { .. })
                                } else {
                                    matches!(e, NodeEvent::Neighbor(_))
                                }
                            })
                        })
                        .try_fold(t, |latest, when| when.map(|w| latest.max(w)));
                    check(format!("{observer} ({} across)", others.len()), when);
                }
            }
            Expectation::Measured => {
                let (from, to) = x.pair.clone().unwrap_or_default();
                let until = x
                    .until
                    .map_or(self.end_s, |u| u.as_secs_f64())
                    .min(self.end_s);
                let gap = x.gap.map_or(f64::INFINITY, |g| g.as_secs_f64());
                let mut times: Vec<f64> = vec![t];
                times.extend(
                    self.samples(&from, &to, t)
                        .iter()
                        .map(|(s, _)| *s)
                        .filter(|s| *s <= until),
                );
                times.push(until);
                let (longest, at) =
                    times
                        .windows(2)
                        .map(|w| (w[1] - w[0], w[0]))
                        .fold(
                            (0.0, t),
                            |best, next| if next.0 > best.0 { next } else { best },
                        );
                let ok = longest <= gap;
                held &= ok;
                evidence.push(format!(
                    "{from} -> {to}: {} samples, longest gap {longest:.1} s (from +{:.1} s)",
                    times.len() - 2,
                    at - t
                ));
            }
        }
        ExpectVerdict {
            what: self.describe(x),
            held,
            evidence,
        }
    }

    fn observers(&self) -> impl Iterator<Item = &str> {
        self.plan
            .nodes
            .iter()
            .filter(|n| n.graded)
            .map(|n| n.name.as_str())
    }

    /// Each observer of a partition and the nodes across from it: from the
    /// pairs the partition separates (`separated`), or the heal joins.
    fn sides(&self, x: &Expect, before: &Phase, after: &Phase) -> Vec<(String, Vec<String>)> {
        let (cut, joined) = if x.what == Expectation::Separated {
            (after, before)
        } else {
            (before, after)
        };
        let observers: Vec<&str> = self.observers().collect();
        observers
            .iter()
            .filter(|o| after.running.contains(**o))
            .map(|observer| {
                let others = observers
                    .iter()
                    .filter(|other| other != &observer && after.running.contains(**other))
                    .filter(|other| {
                        cut.pair(other, observer) == Some(PairState::Separated)
                            && matches!(joined.pair(other, observer), Some(PairState::Linked(_)))
                    })
                    .map(|other| (*other).to_owned())
                    .collect();
                ((*observer).to_owned(), others)
            })
            .filter(|(_, others): &(String, Vec<String>)| !others.is_empty())
            .collect()
    }

    fn phase(&self, index: usize, phase: &Phase, from: f64, to: f64) -> PhaseDelays {
        let began = phase.event.map_or_else(
            || "the start".to_owned(),
            |i| {
                let e = &self.plan.timeline.events[i];
                format!(
                    "{} at {}",
                    e.name.clone().unwrap_or_else(|| e.change.describe()),
                    crate::units::format_duration(e.at)
                )
            },
        );
        let mut judged = 0;
        let mut passed = 0;
        let mut failures = Vec::new();
        let mut cells = Vec::with_capacity(phase.pairs.len());
        for pair in &phase.pairs {
            let (sender, receiver) = (&pair.from, &pair.to);
            let mut cell = PhaseCell {
                from: sender.clone(),
                to: receiver.clone(),
                expected_ms: None,
                measured_ms: None,
                tolerance_ms: None,
            };
            let Some(expected) = phase.expected(sender, receiver) else {
                cells.push(cell);
                continue;
            };
            let (delay, _) = shaped::judged(&self.plan.verify, &expected, SETTLED_SAMPLES as u32);
            cell.expected_ms = Some((delay.as_secs_f64() * 1e6).round() / 1e3);
            let delays: Vec<f64> = self
                .samples(sender, receiver, from)
                .into_iter()
                .filter(|(t, _)| *t < to)
                .map(|(_, d)| d)
                .collect();
            if delays.len() < SETTLED_SAMPLES {
                cells.push(cell);
                continue;
            }
            judged += 1;
            let (delay, tolerance) =
                shaped::judged(&self.plan.verify, &expected, delays.len() as u32);
            let (expected_ms, tolerance) = (millis(delay), millis(tolerance));
            let measured = median(&delays);
            let round3 = |ms: f64| (ms * 1000.0).round() / 1000.0;
            cells.push(PhaseCell {
                expected_ms: Some(round3(expected_ms)),
                measured_ms: Some(round3(measured)),
                tolerance_ms: Some(round3(tolerance)),
                ..cell
            });
            if (measured - expected_ms).abs() <= tolerance {
                passed += 1;
            } else {
                failures.push(format!(
                    "{sender} -> {receiver}: {measured:.2} ms, expected {} ± {}",
                    format_ms(expected_ms),
                    format_ms(tolerance)
                ));
            }
        }
        PhaseDelays {
            phase: index,
            began,
            judged,
            passed,
            failures,
            cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::event::{NeighborReport, RemovalCause};
    use crate::protocol::Dialect;

    const LAB: &str = "name = \"t\"\n\
        [[node]]\nname = \"a\"\ndelay = \"1ms\"\n\
        [[node]]\nname = \"b\"\ndelay = \"2ms\"\n\
        [[node]]\nname = \"c\"\ndelay = \"4ms\"\n\
        [[event]]\nname = \"slow\"\nat = \"10s\"\naction = \"set\"\nnode = \"c\"\ndelay = \"20ms\"\n\
        [[event]]\nname = \"crash\"\nat = \"20s\"\naction = \"kill\"\nnode = \"c\"\n\
        [[expect]]\nwhat = \"delay\"\nafter = \"slow\"\nwithin = \"5s\"\nfrom = \"c\"\nto = \"a\"\n\
        [[expect]]\nwhat = \"removed\"\nnode = \"c\"\nafter = \"crash\"\nwithin = \"4s\"\n\
        [[expect]]\nwhat = \"measured\"\nfrom = \"b\"\nto = \"a\"\ngap = \"2s\"\nuntil = \"24s\"\n";

    fn ip(plan: &Plan, node: &str) -> IpAddr {
        IpAddr::V4(plan.node(node).unwrap().address)
    }

    fn sample(plan: &Plan, of: &str, delay_ms: f64) -> NodeEvent {
        NodeEvent::Neighbor(NeighborReport {
            id: "cccccccc".parse().unwrap(),
            ip: ip(plan, of),
            port: 1,
            delay_ms: Some(delay_ms),
            rtt_ms: 1.0,
            offset_ms: None,
            min_ms: None,
            mean_ms: None,
            jitter_ms: None,
            samples: 1,
            successes: 1,
            failures: 0,
            dialect: Dialect::BinaryBe,
        })
    }

    fn removed(plan: &Plan, of: &str) -> NodeEvent {
        NodeEvent::Removed {
            id: "cccccccc".parse().unwrap(),
            ip: ip(plan, of),
            cause: RemovalCause::Refused,
            reason: String::new(),
        }
    }

    fn played() -> Vec<Played> {
        [10.0, 20.0]
            .iter()
            .enumerate()
            .map(|(event, at_s)| Played {
                event,
                what: String::new(),
                at_s: *at_s,
                took_ms: None,
                error: None,
            })
            .collect()
    }

    /// a measures c at 5 ms, then (from 12 s) 21 ms; b every second throughout.
    fn observations(plan: &Plan, a_removes_c_at: f64, b_pauses: (f64, f64)) -> Stamped {
        let mut a = Vec::new();
        for s in 1..24 {
            let t = f64::from(s);
            if t < 20.0 {
                a.push((t, sample(plan, "c", if t < 12.0 { 5.0 } else { 21.0 })));
            }
            if t < b_pauses.0 || t > b_pauses.1 {
                a.push((t + 0.5, sample(plan, "b", 3.0)));
            }
        }
        a.push((a_removes_c_at, removed(plan, "c")));
        a.sort_by(|x, y| x.0.total_cmp(&y.0));
        let b = vec![(21.0, removed(plan, "c"))];
        [("a".to_owned(), a), ("b".to_owned(), b)]
            .into_iter()
            .collect()
    }

    #[test]
    fn expectations_hold_with_when_each_became_true() {
        let plan = Plan::from_text(LAB);
        let verdicts = judge(
            &plan,
            &played(),
            &observations(&plan, 22.0, (99.0, 99.0)),
            1.0,
            25.0,
        );
        assert!(verdicts.ok(), "{verdicts:#?}");
        let delay = &verdicts.expects[0];
        assert_eq!(
            delay.evidence,
            ["c -> a (21 ms ± 1.05): at +3.0 s"],
            "two of three new samples"
        );
        let removed = &verdicts.expects[1];
        assert_eq!(removed.evidence, ["a: at +2.0 s", "b: at +1.0 s"]);
        assert!(verdicts.expects[2].evidence[0].contains("longest gap 1.5 s"));
        // Phases: before the step, between step and crash, after the crash.
        assert_eq!(verdicts.phases.len(), 3);
        assert!(
            verdicts.phases.iter().all(|p| p.failures.is_empty()),
            "{verdicts:#?}"
        );
    }

    #[test]
    fn a_late_removal_a_gap_and_an_unplayed_event_fail_with_their_evidence() {
        let plan = Plan::from_text(LAB);
        let verdicts = judge(
            &plan,
            &played(),
            &observations(&plan, 24.5, (5.0, 9.0)),
            1.0,
            25.0,
        );
        assert!(!verdicts.expects[1].held);
        assert_eq!(verdicts.expects[1].evidence[0], "a: only at +4.5 s");
        assert!(!verdicts.expects[2].held);
        assert!(verdicts.expects[2].evidence[0].contains("longest gap 6.0 s"));
        let unplayed = judge(
            &plan,
            &played()[..1],
            &observations(&plan, 22.0, (99.0, 99.0)),
            1.0,
            25.0,
        );
        assert!(!unplayed.expects[1].held);
        assert_eq!(unplayed.expects[1].evidence, ["its event was not played"]);
    }

    #[test]
    fn a_phase_whose_delay_is_off_names_the_pair() {
        let plan = Plan::from_text(LAB);
        let mut seen = observations(&plan, 22.0, (99.0, 99.0));
        // Between the step and the crash, a sees c at its old delay.
        for (t, event) in seen.get_mut("a").unwrap().iter_mut() {
            if (12.0..20.0).contains(t) {
                if let NodeEvent::Neighbor(r) = event {
                    if r.ip == ip(&plan, "c") {
                        r.delay_ms = Some(5.0);
                    }
                }
            }
        }
        let verdicts = judge(&plan, &played(), &seen, 1.0, 25.0);
        assert!(!verdicts.expects[0].held);
        assert_eq!(verdicts.phases[1].failures.len(), 1);
        assert!(verdicts.phases[1].failures[0].starts_with("c -> a: 5.00 ms, expected 21 ± "));
        // Each phase's cells, for its heat map: c -> a's median and expected
        // delay in the step; nothing to measure of c once it is killed.
        let cell = |phase: usize, from: &str, to: &str| {
            verdicts.phases[phase]
                .cells
                .iter()
                .find(|c| c.from == from && c.to == to)
                .cloned()
                .unwrap()
        };
        let ca = cell(1, "c", "a");
        assert_eq!((ca.measured_ms, ca.expected_ms), (Some(5.0), Some(21.0)));
        assert_eq!(cell(2, "c", "a").expected_ms, None);
        assert_eq!(verdicts.phases[0].cells.len(), 6);
    }
}
