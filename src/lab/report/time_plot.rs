//! Each plotted pair's samples against time (seconds after the nodes
//! started): the timeline's events as vertical lines with their names, its
//! phases shaded in turn, the expected delay and its tolerance as a step that
//! follows the phases, and a phase where the pair was cut, partitioned or
//! stopped as a hatched band.

use maud::{html, Markup};

use crate::lab::judge::delays::PairResult;
use crate::lab::judge::shaped;
use crate::lab::plan::timeline::{PairState, Phase};
use crate::lab::plan::Plan;

use super::markup::fixed;
use super::Report;

/// The id of the hatching that marks a pair cut during a phase: defined once
/// per page ([`hatch_defs`]), used by every plot and phase map.
pub const HATCH: &str = "cut-hatch";

/// The page's one definition of the hatching, in an SVG of no size.
pub fn hatch_defs() -> Markup {
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width="0" height="0" style="position:absolute" aria-hidden="true" {
            defs {
                pattern id=(HATCH) width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                    rect width="6" height="6" fill="#fbe3e3" {}
                    line x1="0" y1="0" x2="0" y2="6" stroke="#c53030" stroke-width="1.5" {}
                }
            }
        }
    }
}

/// The fill of a cut band: the hatching, or a pale red where it is missing.
pub fn hatched() -> String {
    format!("url(#{HATCH}) #fbe3e3")
}

/// What the plots against time share: when each phase began and the events.
pub struct Timing<'a> {
    /// Each phase that began: when (s) and the plan's phase, in time order.
    phases: Vec<(f64, &'a Phase)>,
    /// Each event played: when (s) and its name.
    events: Vec<(f64, String)>,
    /// Where the time axis ends, s.
    end_s: f64,
    plan: &'a Plan,
}

impl<'a> Timing<'a> {
    /// The timing of `report`'s run of `plan`.
    pub fn new(report: &Report, plan: &'a Plan) -> Timing<'a> {
        let played = report.timeline.as_ref().map_or(&[][..], |t| &t.played[..]);
        let at = |event: usize| {
            played
                .iter()
                .find(|p| p.event == event && p.error.is_none())
                .map(|p| p.at_s)
        };
        let mut phases: Vec<(f64, &Phase)> = plan
            .timeline
            .phases
            .iter()
            .filter_map(|phase| Some((phase.event.map_or(Some(0.0), at)?, phase)))
            .collect();
        phases.sort_by(|a, b| a.0.total_cmp(&b.0));
        let events = played
            .iter()
            .filter(|p| p.error.is_none())
            .map(|p| {
                let name = plan
                    .timeline
                    .events
                    .get(p.event)
                    .and_then(|e| e.name.clone());
                (p.at_s, name.unwrap_or_else(|| p.what.clone()))
            })
            .collect();
        Timing {
            phases,
            events,
            end_s: report.elapsed_s,
            plan,
        }
    }

    /// The pair's phases on the time axis.
    fn segments(&self, pair: &PairResult) -> Vec<Segment> {
        let floor = pair.floor_ms.unwrap_or(0.0);
        let whole = Segment {
            from_s: 0.0,
            to_s: self.end_s,
            phase: 0,
            expected: Some((pair.expected_ms + floor, pair.tolerance_ms)),
            cut: None,
        };
        if self.phases.is_empty() {
            return vec![whole];
        }
        let samples = self.plan.verify.samples;
        self.phases
            .iter()
            .enumerate()
            .map(|(i, (from_s, phase))| {
                let to_s = self.phases.get(i + 1).map_or(self.end_s, |next| next.0);
                let index = phase.event.map_or(0, |e| e + 1);
                let expected = if index == 0 {
                    whole.expected
                } else {
                    phase.expected(&pair.from, &pair.to).map(|link| {
                        let (delay, tolerance) = shaped::judged(&self.plan.verify, &link, samples);
                        (
                            delay.as_secs_f64() * 1e3 + floor,
                            tolerance.as_secs_f64() * 1e3,
                        )
                    })
                };
                let cut = expected
                    .is_none()
                    .then(|| match phase.pair(&pair.from, &pair.to) {
                        Some(PairState::Separated) => "cut",
                        _ => "stopped",
                    });
                Segment {
                    from_s: *from_s,
                    to_s: to_s.max(*from_s),
                    phase: index,
                    expected,
                    cut,
                }
            })
            .collect()
    }
}

/// One phase of one pair on the time axis.
struct Segment {
    from_s: f64,
    to_s: f64,
    /// The plan's phase number (0: the start's).
    phase: usize,
    /// The delay to measure then (floor included) and its tolerance, ms.
    expected: Option<(f64, f64)>,
    /// Why nothing was to be measured: "cut" or "stopped".
    cut: Option<&'static str>,
}

/// A round step for an axis of `span` seconds with at most eight ticks.
fn tick_step(span: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|step| span / step <= 8.0)
    .unwrap_or(7200.0)
}

/// One pair's samples against time.
pub fn samples_plot(pair: &PairResult, warmup: usize, timing: &Timing) -> Markup {
    let (width, height) = (340.0, 150.0);
    let (left, right, top, bottom) = (34.0, 8.0, 22.0, 18.0);
    let segments = timing.segments(pair);
    let timed = pair.series.iter().all(|s| s.at_s.is_some());
    // Without the nodes' times (a custom node's stream), samples go by index.
    let at = |i: usize| -> f64 {
        match pair.series[i].at_s {
            Some(t) if timed => t,
            _ => i as f64,
        }
    };
    let last = (0..pair.series.len()).map(at).fold(0.0, f64::max);
    let end = if timed {
        timing.end_s.max(last)
    } else {
        last.max(1.0)
    };
    let bands = segments.iter().filter_map(|s| s.expected);
    let low = pair
        .series
        .iter()
        .map(|s| s.ms)
        .chain(bands.clone().map(|(e, t)| e - t))
        .fold(f64::INFINITY, f64::min);
    let high = pair
        .series
        .iter()
        .map(|s| s.ms)
        .chain(bands.map(|(e, t)| e + t))
        .fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = if low.is_finite() && high.is_finite() {
        (low, high)
    } else {
        (0.0, 1.0)
    };
    let span = (high - low).max(1e-3);
    let y = |v: f64| top + (high - v) / span * (height - top - bottom);
    let x = |t: f64| left + t.clamp(0.0, end) / end.max(1e-3) * (width - left - right);
    let first = pair.total_samples.saturating_sub(pair.series.len());
    // The line breaks where the pair was cut between two samples: nothing
    // was measured there.
    let cut_between = |a: f64, b: f64| {
        timed
            && segments
                .iter()
                .any(|s| s.cut.is_some() && s.from_s < b && s.to_s > a)
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    for i in 0..pair.series.len() {
        let point = format!("{:.1},{:.1}", x(at(i)), y(pair.series[i].ms));
        match lines.last_mut() {
            Some(line) if i > 0 && !cut_between(at(i - 1), at(i)) => line.push(point),
            _ => lines.push(vec![point]),
        }
    }
    let step = tick_step(end);
    let ticks: Vec<f64> = (0..=(end / step) as usize)
        .map(|k| k as f64 * step)
        .collect();
    let outside = |i: usize| {
        let t = at(i);
        segments
            .iter()
            .find(|s| timed && t >= s.from_s && t < s.to_s)
            .and_then(|s| s.expected)
            .is_some_and(|(e, tol)| (pair.series[i].ms - e).abs() > tol)
    };
    let (plot_top, plot_bottom) = (top, height - bottom);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="samples" width=(width) height=(height) font-family="sans-serif" font-size="10" {
            title {
                (pair.from) " -> " (pair.to) ": samples " (first + 1) " to " (first + pair.series.len())
                @if timed { " against seconds after the nodes started" } @else { " by number" }
            }
            @if timed {
                @for segment in &segments {
                    @let (x0, x1) = (x(segment.from_s), x(segment.to_s));
                    @if segment.phase % 2 == 1 {
                        rect class="phase" x=(fixed(x0, 1)) y=(fixed(plot_top, 1)) width=(fixed(x1 - x0, 1)) height=(fixed(plot_bottom - plot_top, 1)) fill="#f2f2f2" {}
                    }
                    @if let Some(why) = segment.cut {
                        rect class="cut" x=(fixed(x0, 1)) y=(fixed(plot_top, 1)) width=(fixed(x1 - x0, 1)) height=(fixed(plot_bottom - plot_top, 1)) fill=(hatched()) {
                            title { (why) " in phase " (segment.phase) }
                        }
                        text x=(fixed((x0 + x1) / 2.0, 1)) y=(fixed(plot_bottom - 4.0, 1)) text-anchor="middle" fill="#c53030" { (why) }
                    }
                }
            }
            @for segment in segments.iter().filter(|_| timed).chain(segments.first().filter(|_| !timed)) {
                @if let Some((expected, tolerance)) = segment.expected {
                    @let (x0, x1) = if timed { (x(segment.from_s), x(segment.to_s)) } else { (left, width - right) };
                    rect x=(fixed(x0, 1)) y=(fixed(y(expected + tolerance), 1)) width=(fixed(x1 - x0, 1)) height=(fixed((y(expected - tolerance) - y(expected + tolerance)).max(0.5), 1)) fill="#e6f4ea" fill-opacity="0.8" {}
                    line class="expected" x1=(fixed(x0, 1)) x2=(fixed(x1, 1)) y1=(fixed(y(expected), 1)) y2=(fixed(y(expected), 1)) stroke="#2f855a" stroke-width="1.5" stroke-dasharray="4 3" {
                        title { "expected " (fixed(expected, 3)) " ms ± " (fixed(tolerance, 3)) }
                    }
                }
            }
            @for (t, name) in timing.events.iter().filter(|_| timed) {
                line class="event" x1=(fixed(x(*t), 1)) x2=(fixed(x(*t), 1)) y1=(fixed(plot_top - 10.0, 1)) y2=(fixed(plot_bottom, 1)) stroke="#555" stroke-dasharray="2 2" {}
                text x=(fixed(x(*t) + 2.0, 1)) y=(fixed(plot_top - 12.0, 1)) fill="#333" { (name) }
            }
            @for line in lines.iter().filter(|l| l.len() > 1) {
                polyline points=(line.join(" ")) fill="none" stroke="#2b6cb0" stroke-width="1" stroke-opacity="0.7" {}
            }
            @for i in 0..pair.series.len() {
                @let warm = first + i < warmup;
                @let colour = if outside(i) { "#c53030" } else { "#2b6cb0" };
                circle cx=(fixed(x(at(i)), 1)) cy=(fixed(y(pair.series[i].ms), 1)) r="2" fill=(if warm { "#fff" } else { colour }) stroke=(colour) {
                    title {
                        "sample " (first + i + 1) ": " (fixed(pair.series[i].ms, 3)) " ms"
                        @if let Some(t) = pair.series[i].at_s { " at " (fixed(t, 1)) " s" }
                        @if warm { " (warm-up)" }
                    }
                }
            }
            line x1=(left) x2=(fixed(width - right, 1)) y1=(fixed(plot_bottom, 1)) y2=(fixed(plot_bottom, 1)) stroke="#999" {}
            @if timed {
                @for t in &ticks {
                    text x=(fixed(x(*t), 1)) y=(fixed(height - 5.0, 1)) text-anchor="middle" { (t) }
                }
                text x=(fixed(width - right, 1)) y=(fixed(height - 5.0, 1)) text-anchor="end" fill="#555" { "s" }
            } @else {
                text x=(fixed(width - right, 1)) y=(fixed(height - 5.0, 1)) text-anchor="end" { "sample " (first + 1) " .. " (first + pair.series.len()) }
            }
            text x="2" y=(fixed(plot_top + 4.0, 1)) { (fixed(high, 1)) }
            text x="2" y=(fixed(plot_bottom, 1)) { (fixed(low, 1)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::report_for;
    use super::*;
    use crate::lab::judge::timeline::TimelineVerdicts;
    use crate::lab::scenario::played::Played;

    const SPLIT: &str = "name = \"t\"\n[[node]]\nname = \"a\"\ndelay = \"1ms\"\n\
        [[node]]\nname = \"b\"\ndelay = \"2ms\"\n\
        [[event]]\nname = \"slow\"\nat = \"2s\"\naction = \"set\"\nnode = \"b\"\ndelay = \"20ms\"\n\
        [[event]]\nname = \"split\"\nat = \"3s\"\naction = \"partition\"\ngroups = [[\"a\"], [\"b\"]]\n";

    #[test]
    fn a_pair_follows_the_timeline_its_events_phases_and_cut() {
        let plan = Plan::from_text(SPLIT);
        let mut report = report_for(&plan);
        report.elapsed_s = 4.0;
        let played = |event, what: &str, at_s| Played {
            event,
            what: what.to_owned(),
            at_s,
            took_ms: None,
            error: None,
        };
        report.timeline = Some(TimelineVerdicts {
            played: vec![played(0, "set b", 2.0), played(1, "partition", 3.0)],
            ..TimelineVerdicts::default()
        });
        let timing = Timing::new(&report, &plan);
        let pair = &report.pairs[0];
        let segments = timing.segments(pair);
        let spans: Vec<(f64, f64, usize)> = segments
            .iter()
            .map(|s| (s.from_s, s.to_s, s.phase))
            .collect();
        assert_eq!(spans, [(0.0, 2.0, 0), (2.0, 3.0, 1), (3.0, 4.0, 2)]);
        let expected = segments[1].expected.unwrap().0;
        assert!(
            (expected - 21.0).abs() < 1e-9,
            "the step follows: {expected}"
        );
        assert_eq!((segments[1].cut, segments[2].cut), (None, Some("cut")));
        let svg = samples_plot(pair, 1, &timing).into_string();
        assert_eq!(svg.matches("class=\"event\"").count(), 2);
        assert!(svg.contains(">slow</text>") && svg.contains(">split</text>"));
        assert_eq!(
            svg.matches("class=\"expected\"").count(),
            2,
            "no step where cut"
        );
        assert!(svg.contains("class=\"cut\"") && svg.contains(">cut</text>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "the line stops at the cut (the sample after it stands alone)"
        );
        assert!(svg.contains("against seconds after the nodes started"));
    }

    #[test]
    fn ticks_stay_few_and_round() {
        assert_eq!(tick_step(7.0), 1.0);
        assert_eq!(tick_step(40.0), 5.0);
        assert_eq!(tick_step(600.0), 120.0);
    }
}
