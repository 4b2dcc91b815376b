//! The HTML report's inline SVG plots: heat maps of the ordered pairs
//! (expected, measured, error) with their legends, one per phase of a
//! timeline, and which pairs are plotted against time ([`super::time_plot`]). Sizes are bounded whatever the lab's size: cells
//! shrink, and labels and tooltips are left out past [`DETAILED`] nodes.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::lab::judge::delays::{PairResult, PairVerdict};
use crate::lab::judge::timeline::{PhaseCell, PhaseDelays};

use super::markup::fixed;
use super::time_plot::hatched;

/// Nodes up to which the heat maps name their rows and columns and every cell has a tooltip.
pub const DETAILED: usize = 40;

/// Heat map side length in pixels, whatever the number of nodes.
const GRID: f64 = 480.0;

/// What a heat map shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// The injected one-way delay.
    Expected,
    /// The median of the graded samples.
    Measured,
    /// Measured minus expected.
    Error,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::Expected => "expected",
            Quantity::Measured => "measured",
            Quantity::Error => "error",
        }
    }

    fn value(self, pair: &PairResult) -> Option<f64> {
        match self {
            Quantity::Expected => Some(pair.expected_ms),
            Quantity::Measured => pair.measured_ms,
            Quantity::Error => pair.error_ms,
        }
    }
}

/// Linear blend of two RGB colours, `t` in `0..=1`.
fn blend(from: (u8, u8, u8), to: (u8, u8, u8), t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(from.0, to.0),
        mix(from.1, to.1),
        mix(from.2, to.2)
    )
}

const LIGHT: (u8, u8, u8) = (0xf7, 0xfb, 0xff);
const DARK: (u8, u8, u8) = (0x08, 0x30, 0x6b);
const WHITE: (u8, u8, u8) = (0xff, 0xff, 0xff);
const BLUE: (u8, u8, u8) = (0x21, 0x66, 0xac);
const RED: (u8, u8, u8) = (0xb2, 0x18, 0x2b);

/// The colour scale of a heat map: delays from 0 to `max` light to dark;
/// errors diverging around zero, blue below and red above, out to ±`max`.
fn color(quantity: Quantity, value: f64, max: f64) -> String {
    let max = if max > 0.0 { max } else { 1.0 };
    match quantity {
        Quantity::Error if value < 0.0 => blend(WHITE, BLUE, -value / max),
        Quantity::Error => blend(WHITE, RED, value / max),
        _ => blend(LIGHT, DARK, value / max),
    }
}

/// The extent of a heat map's scale: the largest delay, or the largest error
/// (at least the largest tolerance, so a passing lab looks pale).
fn scale(quantity: Quantity, pairs: &[PairResult]) -> f64 {
    let values = pairs.iter().filter_map(|p| quantity.value(p));
    match quantity {
        Quantity::Error => values
            .map(f64::abs)
            .chain(pairs.iter().map(|p| p.tolerance_ms))
            .fold(0.0, f64::max),
        _ => pairs
            .iter()
            .filter_map(|p| Quantity::Measured.value(p))
            .chain(pairs.iter().map(|p| p.expected_ms))
            .fold(0.0, f64::max),
    }
}

/// One heat map: rows are senders (B), columns receivers (A); a cell is the
/// pair B -> A as A measured it. Unmeasured cells are grey, failed ones outlined.
pub fn heat_map(quantity: Quantity, names: &[&str], pairs: &[PairResult]) -> Markup {
    let n = names.len().max(1);
    let detailed = names.len() <= DETAILED;
    let margin = if detailed { 60.0 } else { 10.0 };
    let cell = GRID / n as f64;
    let max = scale(quantity, pairs);
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let size = margin + GRID + 10.0;
    let cells = pairs.iter().filter_map(|pair| {
        let row = *index.get(pair.from.as_str())?;
        let col = *index.get(pair.to.as_str())?;
        Some((pair, row as f64, col as f64))
    });
    let side = fixed(cell, 2);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class={ "heatmap " (quantity.name()) } width=(size) height=(size + 50.0) font-family="sans-serif" font-size="11" {
            title { (quantity.name()) " delay per ordered pair (row: sender, column: receiver)" }
            @if detailed {
                @for (i, name) in names.iter().enumerate() {
                    @let middle = fixed(margin + (i as f64 + 0.5) * cell, 1);
                    text x=(fixed(margin - 4.0, 1)) y=(middle) text-anchor="end" dominant-baseline="middle" { (name) }
                    text x=(middle) y=(fixed(margin - 6.0, 1)) text-anchor="middle" { (name) }
                }
            }
            @for (pair, row, col) in cells {
                @let value = quantity.value(pair);
                @let failed = pair.verdict == PairVerdict::Fail && quantity != Quantity::Expected;
                rect class="cell" x=(fixed(margin + col * cell, 2)) y=(fixed(margin + row * cell, 2)) width=(side) height=(side) fill=(value.map_or("#cccccc".to_owned(), |v| color(quantity, v, max))) stroke=[failed.then_some("#d00")] stroke-width=[failed.then_some("2")] {
                    @if detailed {
                        title {
                            (pair.from) " -> " (pair.to) ": " (quantity.name()) " "
                            @match value {
                                Some(v) => { (fixed(v, 3)) " ms" }
                                None => { "not measured" }
                            }
                        }
                    }
                }
                @if let Some(v) = value.filter(|_| names.len() <= 12) {
                    @let magnitude = if quantity == Quantity::Error { v.abs() } else { v };
                    @let dark = magnitude > max * 0.55;
                    text x=(fixed(margin + (col + 0.5) * cell, 1)) y=(fixed(margin + (row + 0.5) * cell, 1)) text-anchor="middle" dominant-baseline="middle" fill=(if dark { "#fff" } else { "#000" }) {
                        @if quantity == Quantity::Error { (format!("{v:+.2}")) } @else { (fixed(v, 1)) }
                    }
                }
            }
            (legend(quantity, max, margin, margin + GRID + 14.0))
        }
    }
}

/// A colour bar under a heat map with its extremes in ms.
fn legend(quantity: Quantity, max: f64, x: f64, y: f64) -> Markup {
    let (low, high) = match quantity {
        Quantity::Error => (-max, max),
        _ => (0.0, max),
    };
    let steps = 24;
    let width = 240.0 / f64::from(steps);
    html! {
        g class="legend" transform={ "translate(" (fixed(x, 1)) "," (fixed(y, 1)) ")" } {
            @for step in 0..steps {
                @let value = low + (high - low) * (f64::from(step) + 0.5) / f64::from(steps);
                rect x=(fixed(f64::from(step) * width, 1)) y="0" width=(fixed(width + 0.5, 1)) height="12" fill=(color(quantity, value, max)) {}
            }
            text x="0" y="26" { (fixed(low, 2)) " ms" }
            text x="240" y="26" text-anchor="end" { (fixed(high, 2)) " ms" }
            rect x="260" y="0" width="12" height="12" fill="#cccccc" {}
            text x="276" y="10" { "not measured" }
            @if quantity != Quantity::Expected {
                rect x="370" y="0" width="12" height="12" fill="none" stroke="#d00" stroke-width="2" {}
                text x="386" y="10" { "failed" }
            }
        }
    }
}

/// Pairs plotted over time: all of them in a small lab, else the worst.
pub const PLOTTED: usize = 12;

/// The pairs whose samples are plotted: every pair when there are at most
/// [`PLOTTED`] + 8, else the failed ones and those with the largest error
/// relative to their tolerance, worst first, at most [`PLOTTED`].
pub fn plotted(pairs: &[PairResult]) -> Vec<&PairResult> {
    let with_samples: Vec<&PairResult> = pairs.iter().filter(|p| !p.series.is_empty()).collect();
    if with_samples.len() <= PLOTTED + 8 {
        return with_samples;
    }
    let badness = |p: &PairResult| {
        let failed = if p.verdict == PairVerdict::Fail {
            1e9
        } else {
            0.0
        };
        let tolerance = if p.tolerance_ms > 0.0 {
            p.tolerance_ms
        } else {
            1.0
        };
        failed + p.error_ms.map_or(1e6, |e| e.abs() / tolerance)
    };
    let mut ranked = with_samples;
    ranked.sort_by(|a, b| badness(b).total_cmp(&badness(a)));
    ranked.truncate(PLOTTED);
    ranked
}

/// Side of a phase's heat map, pixels.
const PHASE_GRID: f64 = 200.0;

/// One phase's heat map: each pair's median (written in a small lab),
/// coloured by its error (minus the delay expected then), hatched where the pair was cut or stopped, grey
/// where it had too few samples to judge.
pub fn phase_map(names: &[&str], phase: &PhaseDelays) -> Markup {
    let n = names.len().max(1);
    let detailed = names.len() <= DETAILED;
    let margin = if detailed { 40.0 } else { 6.0 };
    let cell = PHASE_GRID / n as f64;
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let error = |c: &PhaseCell| Some(c.measured_ms? - c.expected_ms?);
    let max = phase
        .cells
        .iter()
        .flat_map(|c| [error(c).map(f64::abs), c.tolerance_ms])
        .flatten()
        .fold(0.0, f64::max);
    let size = margin + PHASE_GRID + 6.0;
    let side = fixed(cell, 2);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="phasemap" width=(size) height=(size) font-family="sans-serif" font-size="10" {
            title { "phase " (phase.phase) ": error per ordered pair (row: sender, column: receiver)" }
            @if detailed {
                @for (i, name) in names.iter().enumerate() {
                    @let middle = fixed(margin + (i as f64 + 0.5) * cell, 1);
                    text x=(fixed(margin - 3.0, 1)) y=(middle) text-anchor="end" dominant-baseline="middle" { (name) }
                    text x=(middle) y=(fixed(margin - 4.0, 1)) text-anchor="middle" { (name) }
                }
            }
            @for c in &phase.cells {
                @if let (Some(row), Some(col)) = (index.get(c.from.as_str()), index.get(c.to.as_str())) {
                    @let fill = match (c.expected_ms, error(c)) {
                        (None, _) => hatched(),
                        (Some(_), Some(e)) => color(Quantity::Error, e, max),
                        (Some(_), None) => "#cccccc".to_owned(),
                    };
                    @let failed = error(c).zip(c.tolerance_ms).is_some_and(|(e, t)| e.abs() > t);
                    rect class="cell" x=(fixed(margin + *col as f64 * cell, 2)) y=(fixed(margin + *row as f64 * cell, 2)) width=(side) height=(side) fill=(fill) stroke=[failed.then_some("#d00")] stroke-width=[failed.then_some("2")] {
                        @if detailed {
                            title {
                                (c.from) " -> " (c.to) ": "
                                @match (c.expected_ms, c.measured_ms) {
                                    (None, _) => { "cut or stopped: nothing to measure" }
                                    (Some(e), Some(m)) => { (fixed(m, 3)) " ms, expected " (fixed(e, 3)) }
                                    (Some(e), None) => { "too few samples (expected " (fixed(e, 3)) " ms)" }
                                }
                            }
                        }
                    }
                    @if let Some(m) = c.measured_ms.filter(|_| names.len() <= 8) {
                        text x=(fixed(margin + (*col as f64 + 0.5) * cell, 1)) y=(fixed(margin + (*row as f64 + 0.5) * cell, 1)) text-anchor="middle" dominant-baseline="middle" { (fixed(m, 1)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_from_light_to_dark_and_diverge_around_zero() {
        assert_eq!(color(Quantity::Expected, 0.0, 10.0), "#f7fbff");
        assert_eq!(color(Quantity::Expected, 10.0, 10.0), "#08306b");
        assert_eq!(color(Quantity::Error, 0.0, 1.0), "#ffffff");
        assert_eq!(color(Quantity::Error, 5.0, 1.0), "#b2182b");
        assert_eq!(color(Quantity::Error, -1.0, 1.0), "#2166ac");
        assert_eq!(color(Quantity::Expected, f64::NAN, 0.0), "#f7fbff");
    }
}
