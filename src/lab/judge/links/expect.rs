//! What a link probe should measure on a link with a given impairment: each
//! figure computed from netem's rules (tc-netem(8) and `sch_netem.c`), kept
//! apart from the verdicts so a figure can be refined without touching them.
//! A figure whose law is not modelled here is not guessed: it says why.

use std::time::Duration;

use super::law::{behind_all, in_order, invert, Spread};
use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::{Distribution, Loss, Reorder};
use crate::lab::plan::{ExpectedPair, Plan};

/// How the probe sent and how the backend treats jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probing {
    /// Time between two packets of the pair.
    pub spacing: Duration,
    /// Bytes each packet takes on the link (Ethernet frame).
    pub wire_bytes: usize,
    /// Whether jitter lets a frame overtake an earlier one (netem's tfifo
    /// sorts by due time); the userspace emulator keeps a link FIFO, so a
    /// frame waits for the one ahead of it instead.
    pub jitter_reorders: bool,
}

/// What the pair's path is: its impairment, how many of the links it
/// crosses in series have jitter (a sum of two jitters is no longer the
/// distribution either one was drawn from), and, where the backend applies
/// the two links one after the other, each link's own shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// The path's impairment, the links combined ([`crate::lab::plan::in_series`]).
    pub impairment: Impairment,
    /// Links of the path with jitter.
    pub jittered_links: usize,
    /// The sender's link and the receiver's, applied in turn (netem on a
    /// lab without per-pair classes); none: the combined impairment is
    /// applied at once (a `[[pair]]`, a per-pair lab).
    pub stages: Option<[Impairment; 2]>,
}

impl Expectation {
    /// A path that is one link (or a `[[pair]]` set outright).
    pub fn single(impairment: Impairment) -> Expectation {
        Expectation {
            impairment,
            jittered_links: usize::from(!impairment.jitter.is_zero()),
            stages: None,
        }
    }

    /// Two links crossed one after the other, each applied in turn.
    pub fn in_series(first: Impairment, second: Impairment) -> Expectation {
        Expectation {
            impairment: crate::lab::plan::in_series(&first, &second),
            jittered_links: [first, second]
                .iter()
                .filter(|l| !l.jitter.is_zero())
                .count(),
            stages: Some([first, second]),
        }
    }

    /// What the plan expects of a pair: over one stage when a `[[pair]]`
    /// set it or the lab has a class per pair (which carries the pair's
    /// combined impairment), else over the two nodes' links in turn.
    pub fn of_pair(plan: &Plan, pair: &ExpectedPair) -> Expectation {
        let links = [&pair.from, &pair.to].map(|n| plan.node(n).map(|n| n.link));
        match (pair.overridden || plan.per_pair, links) {
            (false, [Some(from), Some(to)]) => Expectation {
                impairment: pair.impairment,
                ..Expectation::in_series(from, to)
            },
            _ => Expectation::single(pair.impairment),
        }
    }
}

/// One expected figure, or why it is not judged; `note` says what it assumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The figure (a share, seconds, packets or packets/s); none: not judged.
    pub value: Option<f64>,
    /// What the figure assumes, or why there is none.
    pub note: Option<String>,
}

impl Estimate {
    pub(super) fn exact(value: f64) -> Estimate {
        Estimate {
            value: Some(value),
            note: None,
        }
    }

    pub(super) fn with_notes(value: f64, notes: &[String]) -> Estimate {
        Estimate {
            value: Some(value),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    }

    pub(super) fn unknown(why: impl Into<String>) -> Estimate {
        Estimate {
            value: None,
            note: Some(why.into()),
        }
    }
}

/// Every figure the probe measures, as the link should show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// One-way delay quantiles p10, p50, p90, seconds.
    pub delay: [Estimate; 3],
    /// Share of packets of which no intact copy arrives.
    pub loss: Estimate,
    /// How much correlation widens the loss share's spread (variance
    /// inflation: 1 for independent losses).
    pub loss_inflation: f64,
    /// Mean length of a run of lost packets.
    pub loss_burst: Estimate,
    /// Chance a lost packet is followed by another lost one (the runs' spread).
    pub loss_continues: f64,
    /// Share of packets that arrive twice.
    pub duplicate: Estimate,
    /// Share of packets that arrive after a later one.
    pub reorder: Estimate,
    /// How much wider than binomial the reorder share's spread is: one
    /// frame that overtakes puts the whole window it overtook out of order,
    /// so the packets of a window count as one trial.
    pub reorder_inflation: f64,
    /// Packets per second a saturating flow gets through.
    pub rate: Estimate,
}

/// The quantiles the probe reports.
pub const QUANTILES: [f64; 3] = [0.10, 0.50, 0.90];

/// What a probe sending as `probing` should measure on `path`'s combined
/// impairment applied at once (`super::expected` follows its stages).
pub fn expected(path: &Expectation, probing: &Probing) -> Expected {
    let link = &path.impairment;
    let (loss, duplicate, burst, continues) = loss_and_duplicates(link, probing.wire_bytes);
    let arriving = 1.0 - loss.value.unwrap_or(0.0);
    // Frames lost before the delay stage leave the others further apart.
    let passing = passing_frames(link);
    let thinned = thinned(link, probing);
    let rate = rate(link, probing);
    let (loss, burst) = match rate.value {
        // A saturated rate passes what it carries and its queue drops the
        // rest: the loss is the excess, in runs nobody models here.
        Some(carried) => {
            let offered = passing / probing.spacing.as_secs_f64().max(1e-9);
            let through = (carried / offered.max(1e-9)).min(1.0);
            let lost = 1.0 - (1.0 - loss.value.unwrap_or(0.0)) * through;
            (
                Estimate {
                    value: Some(lost),
                    note: Some(
                        "the probe saturates the rate: its queue drops the excess".to_owned(),
                    ),
                },
                Estimate::unknown("runs of drops from a saturated queue are not modelled"),
            )
        }
        None => (loss, burst),
    };
    Expected {
        delay: QUANTILES.map(|q| delay_quantile(path, &thinned, q)),
        loss,
        loss_inflation: loss_inflation(&link.loss),
        loss_burst: burst,
        loss_continues: continues,
        duplicate,
        reorder: reorder_share(path, probing, passing, arriving),
        reorder_inflation: reorder_window(link, probing).max(1.0),
        rate,
    }
}

/// The delay quantiles `qs` a probe sending as `probing` should measure on
/// `path`, seconds: the curve the report draws the measured one against.
pub fn delay_quantiles(path: &Expectation, probing: &Probing, qs: &[f64]) -> Vec<Estimate> {
    // A reorder skips its own link's delay only, not the other's.
    let split = path.stages.is_some_and(|[a, b]| {
        (a.reorder.chance.is_some() && !b.delay.is_zero())
            || (b.reorder.chance.is_some() && !a.delay.is_zero())
    });
    if split {
        return qs
            .iter()
            .map(|_| Estimate::unknown("a reorder on one of two links in turn"))
            .collect();
    }
    let thinned = thinned(&path.impairment, probing);
    qs.iter()
        .map(|&q| delay_quantile(path, &thinned, q))
        .collect()
}

/// The probing as the delay stage sees it: frames lost before it leave the
/// others further apart.
pub(super) fn thinned(link: &Impairment, probing: &Probing) -> Probing {
    Probing {
        spacing: probing.spacing.div_f64(passing_frames(link).max(1e-6)),
        ..*probing
    }
}

/// Frames that pass netem's loss draw per packet sent, a kept duplicate's
/// clone included (it draws loss again): they reach the delay and reorder
/// stage, where corruption still rides along.
pub(super) fn passing_frames(link: &Impairment) -> f64 {
    let l = link.loss.mean();
    let d = link.duplicate.share();
    1.0 - (1.0 - d) * l + d * (1.0 - l) * (1.0 - l)
}

/// Bits of a frame whose flip the receiver does not notice: the sender's
/// MAC address (48) and the destination's group bit (the frame arrives as
/// multicast). Every other flip fails the destination MAC, the EtherType or
/// a checksum (IP header, UDP). Measured in the VM with netem corrupting
/// every frame: 1121 of 20000 UDP frames of 106 bytes arrived (49/848 =
/// 5.8% expected), 111 of 20000 of 1042 bytes (0.59%).
pub const UNNOTICED_BITS: f64 = 49.0;

/// The share of corrupted frames the receiver drops: netem (and the
/// emulator, as netem) flips one bit anywhere in the frame, Ethernet header
/// included.
pub(super) fn corruption_caught(wire_bytes: usize) -> f64 {
    let bits = 8.0 * wire_bytes as f64;
    if bits <= UNNOTICED_BITS {
        return 1.0;
    }
    1.0 - UNNOTICED_BITS / bits
}

/// Loss, duplicates and the loss runs of frames of `wire_bytes`. netem
/// draws, per frame: duplicate (`d`), then loss (`l`); a duplicated frame
/// that loses its draw still goes once, and a kept duplicate's clone goes
/// through the qdisc again, facing loss and corruption anew; corruption
/// (`c`) flips a bit that the receiver mostly turns into a loss.
pub(super) fn loss_and_duplicates(
    link: &Impairment,
    wire_bytes: usize,
) -> (Estimate, Estimate, Estimate, f64) {
    let l = link.loss.mean();
    let d = link.duplicate.share();
    let c = link.corrupt.share() * corruption_caught(wire_bytes);
    let clone_bad = l + (1.0 - l) * c;
    let lost = (1.0 - d) * clone_bad + d * l * c + d * (1.0 - l) * c * clone_bad;
    let twice = d * ((1.0 - l) * (1.0 - c)).powi(2);
    let mut notes = Vec::new();
    if c > 0.0 {
        notes.push(
            "a corrupted frame counts as lost (a checksum), unless the flip is in the sender's MAC address"
                .to_owned(),
        );
    }
    if d > 0.0 && l > 0.0 {
        notes.push("a duplicated frame that draws loss still goes once (netem)".to_owned());
    }
    if link.duplicate.correlation > 0.0 || link.corrupt.correlation > 0.0 {
        notes.push("correlations of duplicate and corrupt ignored".to_owned());
    }
    let loss = Estimate::with_notes(lost, &notes);
    let duplicate = Estimate::exact(twice);
    // A run of lost packets goes on with a fixed chance only for the plain
    // models: independent losses, or Gilbert's bad state that loses all.
    let (burst, continues) = match link.loss {
        _ if d > 0.0 || c > 0.0 => (
            Estimate::unknown("runs of losses mixed with duplicates or corruption"),
            0.0,
        ),
        Loss::Random(chance) if chance.correlation == 0.0 && l < 1.0 => {
            (Estimate::exact(1.0 / (1.0 - l)), l)
        }
        Loss::GilbertElliott {
            r,
            bad_loss,
            good_loss,
            ..
        } if bad_loss == 1.0 && good_loss == 0.0 && r > 0.0 => (Estimate::exact(1.0 / r), 1.0 - r),
        _ => (
            Estimate::unknown("the run length of this loss model is not modelled"),
            0.0,
        ),
    };
    (loss, duplicate, burst, continues)
}

/// How much wider than binomial the spread of the loss share is when losses
/// come in runs: `(1 + λ) / (1 - λ)` for a two-state chain whose lag-one
/// correlation is `λ` (Gilbert: `1 - p - r`; netem's correlated random loss
/// taken as `λ` = its correlation).
pub(super) fn loss_inflation(loss: &Loss) -> f64 {
    let lambda: f64 = match *loss {
        Loss::Random(chance) => chance.correlation,
        Loss::GilbertElliott { p, r, .. } => 1.0 - p - r,
        Loss::FourState { p13, p31, .. } => 1.0 - p13 - p31,
    };
    let lambda = lambda.clamp(0.0, 0.99);
    (1.0 + lambda) / (1.0 - lambda)
}

/// The `q` quantile of one packet's delay.
pub(super) fn delay_quantile(path: &Expectation, probing: &Probing, q: f64) -> Estimate {
    let link = &path.impairment;
    let mut notes = Vec::new();
    let mut base = link.delay.as_secs_f64();
    if link.slot.is_some() {
        return Estimate::unknown("slot: frames wait for their slot");
    }
    if let Some(rate) = link.rate {
        let each = rate.transmit_time(probing.wire_bytes);
        if each >= probing.spacing {
            return Estimate::unknown("the probe saturates the rate: frames queue");
        }
        base += each.as_secs_f64();
        notes.push("plus the frame's transmit time at the rate".to_owned());
    }
    let jitter = link.jitter.as_secs_f64();
    let spread = match link.distribution {
        _ if jitter == 0.0 => Spread::Point(base),
        _ if path.jittered_links > 1 => {
            if q != 0.5 {
                return Estimate::unknown("a sum of jitters of several links is not modelled");
            }
            notes.push("p50 of a sum of jitters taken as the delay".to_owned());
            Spread::Point(base)
        }
        Distribution::Uniform => Spread::Uniform {
            low: base - jitter,
            high: base + jitter,
        },
        Distribution::Normal => Spread::Normal {
            mean: base,
            deviation: jitter,
        },
        other => {
            if q != 0.5 {
                return Estimate::unknown(format!("{} jitter is not modelled", other.name()));
            }
            notes.push(format!("{} jitter: p50 taken as the delay", other.name()));
            Spread::Point(base)
        }
    };
    if link.delay_correlation > 0.0 {
        notes.push("delay correlation leaves each delay's law alone".to_owned());
    }
    let immediate = immediate_share(&link.reorder);
    let fifo = !probing.jitter_reorders && jitter > 0.0;
    if fifo {
        notes.push("a FIFO link holds a frame behind the one ahead".to_owned());
    }
    let spacing = probing.spacing.as_secs_f64();
    let cdf = |x: f64| {
        let delayed = if fifo {
            behind_all(&spread, x, 0, spacing)
        } else {
            spread.cdf(x)
        };
        // A reordered frame is sent at once (with no delay).
        immediate * f64::from(u8::from(x >= 0.0)) + (1.0 - immediate) * delayed
    };
    let value = invert(cdf, q, spread.high().max(0.0) + spacing);
    Estimate::with_notes(value, &notes)
}

/// The share of frames netem's `reorder` sends at once: after one goes,
/// `gap - 1` frames are delayed, then each goes at once with the chance, so
/// one frame in `gap - 1 + 1/p`.
pub fn immediate_share(reorder: &Reorder) -> f64 {
    let p = reorder.chance.share();
    if p <= 0.0 {
        return 0.0;
    }
    let gap = f64::from(reorder.gap.max(1));
    1.0 / (gap - 1.0 + 1.0 / p)
}

/// The share of packets that arrive after a later one.
///
/// netem's `reorder p gap g` (no jitter): a frame sent at once overtakes the
/// delayed frames sent within the delay before it, so a delayed frame is out
/// of order when one of the `M = ⌈delay/spacing⌉ - 1` frames after it goes at
/// once; the counter of `gap` makes that a Markov chain, walked here exactly.
/// Jitter alone on netem: frame `i` is out of order when an earlier one is
/// due after it, `1 - ∫ f(x) ∏_{k≥1} F(x + k·spacing) dx`. On a FIFO link
/// nothing overtakes.
pub(super) fn reorder_share(
    path: &Expectation,
    probing: &Probing,
    passing: f64,
    arriving: f64,
) -> Estimate {
    let link = &path.impairment;
    let jitter = !link.jitter.is_zero();
    let reorder = link.reorder;
    if link.slot.is_some() || link.rate.is_some() {
        return Estimate::unknown("reordering under a rate or slot is not modelled");
    }
    // Per packet sent, `passing` frames reach the stage, a corrupted one
    // taking its turn there but arriving as nothing; `arriving` packets
    // have a copy that arrives, the ones that can be seen out of order.
    let intact = 1.0 - link.corrupt.share();
    let mut notes = Vec::new();
    if link.loss.mean() > 0.0 || link.duplicate.is_some() || link.corrupt.is_some() {
        notes
            .push("loss, duplicates and corruption taken as thinning the frames evenly".to_owned());
    }
    let spacing = probing.spacing.as_secs_f64().max(1e-9);
    let share = match (reorder.chance.is_some(), jitter) {
        (false, false) => 0.0,
        (true, true) => return Estimate::unknown("reorder with jitter is not modelled"),
        (true, false) => {
            // Packets sent within the delay after one, and the frames of them
            // that reach the counter.
            let within = (link.delay.as_secs_f64() / spacing).ceil() - 1.0;
            let steps = (within.max(0.0) * passing).round() as u64;
            if reorder.chance.correlation > 0.0 {
                notes.push("reorder correlation ignored".to_owned());
            }
            arriving * gap_chain_share(&reorder, steps, 1.0 - intact)
        }
        (false, true) if !probing.jitter_reorders => {
            notes.push("the link is FIFO".to_owned());
            0.0
        }
        (false, true) => {
            if path.jittered_links > 1 {
                return Estimate::unknown("a sum of jitters of several links is not modelled");
            }
            let (delay, jitter) = (link.delay.as_secs_f64(), link.jitter.as_secs_f64());
            let spread = match link.distribution {
                Distribution::Uniform => Spread::Uniform {
                    low: delay - jitter,
                    high: delay + jitter,
                },
                Distribution::Normal => Spread::Normal {
                    mean: delay,
                    deviation: jitter,
                },
                other => {
                    return Estimate::unknown(format!("{} jitter is not modelled", other.name()))
                }
            };
            // Only intact frames are seen overtaking.
            let seen = (passing * intact).max(1e-6);
            arriving * (1.0 - in_order(&spread, spacing / seen))
        }
    };
    Estimate::with_notes(share, &notes)
}

/// Packets sent within the time one can be overtaken: the delay for
/// netem's reorder, the jitter's width otherwise.
pub(super) fn reorder_window(link: &Impairment, probing: &Probing) -> f64 {
    let spacing = probing.spacing.as_secs_f64().max(1e-9);
    let width = match link.distribution {
        _ if link.reorder.chance.is_some() => link.delay.as_secs_f64(),
        Distribution::Uniform => 2.0 * link.jitter.as_secs_f64(),
        _ => 6.0 * link.jitter.as_secs_f64(),
    };
    (width / spacing).ceil()
}

/// The share of frames delayed and then overtaken by one of the next `m`
/// sent at once and not `corrupted`, netem's reorder counter walked as a
/// chain (state: the counter, capped at `gap - 1`, where each frame goes at
/// once with the chance).
fn gap_chain_share(reorder: &Reorder, m: u64, corrupted: f64) -> f64 {
    let p = reorder.chance.share().clamp(0.0, 1.0);
    let top = reorder.gap.max(1) as usize - 1;
    // unseen[c]: no intact frame goes at once among the next steps, from
    // counter c (a corrupted one resets the counter unseen).
    let mut unseen = vec![1.0; top + 1];
    for _ in 0..m.min(1_000_000) {
        let previous = unseen.clone();
        for (c, value) in unseen.iter_mut().enumerate() {
            *value = if c < top {
                previous[c + 1]
            } else {
                (1.0 - p) * previous[top] + p * corrupted * previous[0]
            };
        }
    }
    // The stationary counter: 0..top once per cycle, top for 1/p frames.
    let cycle = top as f64 + 1.0 / p.max(1e-12);
    (0..=top)
        .map(|c| {
            let (weight, delayed) = if c < top {
                (1.0 / cycle, 1.0)
            } else {
                (1.0 / p.max(1e-12) / cycle, 1.0 - p)
            };
            weight * delayed * (1.0 - unseen[(c + 1).min(top)])
        })
        .sum()
}

/// Packets per second a saturating flow gets through the rate.
fn rate(link: &Impairment, probing: &Probing) -> Estimate {
    let Some(rate) = link.rate else {
        return Estimate::unknown("no rate on this link");
    };
    let each = rate.transmit_time(probing.wire_bytes).as_secs_f64();
    if each <= 0.0 || probing.spacing.as_secs_f64() > each {
        return Estimate::unknown("the probe does not saturate the rate");
    }
    Estimate::exact(1.0 / each)
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
