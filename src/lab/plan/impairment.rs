//! What a link does to the frames that cross it. Shared by the lab plan and both
//! delay backends, so netem and the userspace emulator are told the same thing;
//! and the values a lab file's section gives it ([`LinkValues`], read from a
//! [`LinkShape`] here alone).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shape::{Chance, Distribution, Loss, Rate, Reorder, Slot, SlotSpacing};
use crate::lab::file::link::LossModelValue;
use crate::lab::file::LinkShape;

/// What one direction of a link does to frames: netem's options, each with
/// netem's meaning (see [`super::shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Impairment {
    /// Fixed one-way delay.
    #[serde(with = "crate::units::serde_duration")]
    pub delay: Duration,
    /// Random spread around `delay`: `delay ± jitter` when uniform, the
    /// standard deviation otherwise.
    #[serde(with = "crate::units::serde_duration")]
    pub jitter: Duration,
    /// How the jitter is drawn.
    #[serde(default, skip_serializing_if = "is_default")]
    pub distribution: Distribution,
    /// Weight of the previous frame's jitter in this one's, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub delay_correlation: f64,
    /// Each frame's jitter is drawn alone, so a frame may overtake an earlier
    /// one (netem's way without a rate); false: the link keeps its frames in
    /// order, as a wire does, a frame held until the one before it has left.
    #[serde(default, skip_serializing_if = "is_default")]
    pub jitter_reorders: bool,
    /// Which frames are dropped.
    #[serde(default, with = "super::shape::serde_loss")]
    pub loss: Loss,
    /// The chance a frame is sent twice.
    #[serde(default, skip_serializing_if = "is_default")]
    pub duplicate: Chance,
    /// Frames sent at once, past those being delayed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub reorder: Reorder,
    /// The chance one bit of a frame is flipped.
    #[serde(default, skip_serializing_if = "is_default")]
    pub corrupt: Chance,
    /// The most the link carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Frames the link holds (netem's `limit`; its default, 1000, when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Frames leave in slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A link that passes nothing.
pub const CUT: Impairment = Impairment {
    delay: Duration::ZERO,
    jitter: Duration::ZERO,
    distribution: Distribution::Uniform,
    delay_correlation: 0.0,
    jitter_reorders: false,
    loss: Loss::ALL,
    duplicate: Chance::NEVER,
    reorder: Reorder {
        chance: Chance::NEVER,
        gap: 0,
    },
    corrupt: Chance::NEVER,
    rate: None,
    limit: None,
    slot: None,
};

/// Combines two impairments crossed one after the other (a node's link out,
/// then its peer's in), for what the pair is expected to show: delays and
/// jitters add; loss, duplicate and corrupt chances combine as independent
/// stages (`1 - (1-a)(1-b)`, the larger correlation); the slower rate and the
/// smaller limit hold. A shape only one side has is the pair's. Where both
/// sides have a shape that does not add up to one of its kind (two loss
/// models, two slots, two reorders, two distributions), the pair's is the
/// sender's, which is why a lab that needs it exactly gives the pair its own.
/// Only a pair in per-pair mode is shaped by this combination (netem's leaf,
/// the emulator's one stage); otherwise both backends cross the two links in
/// turn, and this is what the pair is expected to show.
pub fn in_series(first: &Impairment, second: &Impairment) -> Impairment {
    let either = |a: Chance, b: Chance| Chance {
        probability: 1.0 - (1.0 - a.probability) * (1.0 - b.probability),
        correlation: a.correlation.max(b.correlation),
    };
    let loss = match (first.loss, second.loss) {
        (Loss::Random(a), Loss::Random(b)) => Loss::Random(either(a, b)),
        (Loss::Random(a), model) if !a.is_some() => model,
        (model, _) => model,
    };
    let distribution = if first.jitter.is_zero() {
        second.distribution
    } else {
        first.distribution
    };
    Impairment {
        delay: first.delay + second.delay,
        jitter: first.jitter + second.jitter,
        distribution,
        delay_correlation: first.delay_correlation.max(second.delay_correlation),
        jitter_reorders: first.jitter_reorders || second.jitter_reorders,
        loss,
        duplicate: either(first.duplicate, second.duplicate),
        reorder: if first.reorder.chance.is_some() {
            first.reorder
        } else {
            second.reorder
        },
        corrupt: either(first.corrupt, second.corrupt),
        rate: match (first.rate, second.rate) {
            (Some(a), Some(b)) => Some(if b.bits_per_second < a.bits_per_second {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        },
        limit: match (first.limit, second.limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        slot: first.slot.or(second.slot),
    }
}

impl Impairment {
    /// Whether the link is a plain wire.
    pub fn is_none(&self) -> bool {
        *self == Impairment::default()
    }

    /// Whether it does more than delay and drop frames at random: a shape
    /// the delay table alone does not judge.
    pub fn is_shaped(&self) -> bool {
        let plain = Impairment {
            delay: self.delay,
            jitter: self.jitter,
            loss: Loss::random(self.loss.mean()),
            ..Impairment::default()
        };
        *self != plain
    }
}

/// New values for a link or a pair; absent ones keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LinkValues {
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub delay: Option<Duration>,
    #[serde(default, with = "crate::units::serde_duration_option")]
    pub jitter: Option<Duration>,
    #[serde(default)]
    pub distribution: Option<Distribution>,
    #[serde(default)]
    pub delay_correlation: Option<f64>,
    #[serde(default)]
    pub jitter_reorders: Option<bool>,
    #[serde(default)]
    pub loss: Option<Loss>,
    #[serde(default)]
    pub duplicate: Option<Chance>,
    #[serde(default)]
    pub reorder: Option<Reorder>,
    #[serde(default)]
    pub corrupt: Option<Chance>,
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub slot: Option<Slot>,
}

impl LinkValues {
    /// `to` with these values in place of its own.
    pub fn apply(&self, to: Impairment) -> Impairment {
        Impairment {
            delay: self.delay.unwrap_or(to.delay),
            jitter: self.jitter.unwrap_or(to.jitter),
            distribution: self.distribution.unwrap_or(to.distribution),
            delay_correlation: self.delay_correlation.unwrap_or(to.delay_correlation),
            jitter_reorders: self.jitter_reorders.unwrap_or(to.jitter_reorders),
            loss: self.loss.unwrap_or(to.loss),
            duplicate: self.duplicate.unwrap_or(to.duplicate),
            reorder: self.reorder.unwrap_or(to.reorder),
            corrupt: self.corrupt.unwrap_or(to.corrupt),
            rate: self.rate.or(to.rate),
            limit: self.limit.or(to.limit),
            slot: self.slot.or(to.slot),
        }
    }
}

impl From<LinkShape> for LinkValues {
    fn from(shape: LinkShape) -> LinkValues {
        let value = |v: &Option<toml::Spanned<f64>>| v.as_ref().map(|v| *v.get_ref());
        let chance = |p: &Option<toml::Spanned<f64>>, c: &Option<toml::Spanned<f64>>| {
            value(p).map(|probability| Chance {
                probability,
                correlation: value(c).unwrap_or(0.0),
            })
        };
        let loss = match shape.loss_model.as_ref().map(|m| m.get_ref()) {
            Some(LossModelValue::Gemodel(v)) => Some(Loss::GilbertElliott {
                p: v[0],
                r: v.get(1).copied().unwrap_or(1.0),
                bad_loss: v.get(2).copied().unwrap_or(1.0),
                good_loss: v.get(3).copied().unwrap_or(0.0),
            }),
            Some(LossModelValue::State(v)) => Some(Loss::FourState {
                p13: v[0],
                p31: v.get(1).copied().unwrap_or(1.0 - v[0]),
                p32: v.get(2).copied().unwrap_or(0.0),
                p23: v.get(3).copied().unwrap_or(1.0),
                p14: v.get(4).copied().unwrap_or(0.0),
            }),
            None => chance(&shape.loss, &shape.loss_correlation).map(Loss::Random),
        };
        let rate = shape.rate.as_ref().map(|rate| Rate {
            bits_per_second: rate.get_ref().0,
            packet_overhead: shape
                .rate_packet_overhead
                .as_ref()
                .map_or(0, |v| *v.get_ref()),
            cell_size: shape.rate_cell_size.as_ref().map_or(0, |v| *v.get_ref()),
            cell_overhead: shape
                .rate_cell_overhead
                .as_ref()
                .map_or(0, |v| *v.get_ref()),
        });
        let slot = shape.slot.as_ref().map(|slot| {
            let slot = slot.get_ref();
            let spacing = match (slot.min, slot.distribution) {
                (Some(min), _) => SlotSpacing::Range {
                    min: min.0,
                    max: slot.max.unwrap_or(min).0,
                },
                (None, distribution) => SlotSpacing::Distribution {
                    distribution: distribution.unwrap_or_default(),
                    delay: slot.delay.unwrap_or_default().0,
                    jitter: slot.jitter.unwrap_or_default().0,
                },
            };
            Slot {
                spacing,
                packets: slot.packets,
                bytes: slot.bytes,
            }
        });
        LinkValues {
            delay: shape.delay.map(|d| d.0),
            jitter: shape.jitter.map(|d| d.0),
            distribution: shape.distribution.as_ref().map(|d| *d.get_ref()),
            delay_correlation: value(&shape.delay_correlation),
            jitter_reorders: shape.jitter_reorders,
            loss,
            duplicate: chance(&shape.duplicate, &shape.duplicate_correlation),
            reorder: chance(&shape.reorder, &shape.reorder_correlation).map(|chance| Reorder {
                chance,
                gap: shape.reorder_gap.as_ref().map_or(1, |g| *g.get_ref()),
            }),
            corrupt: chance(&shape.corrupt, &shape.corrupt_correlation),
            rate,
            limit: shape.limit.as_ref().map(|l| *l.get_ref()),
            slot,
        }
    }
}

impl std::fmt::Display for LinkValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.apply(Impairment::default());
        let mut parts = Vec::new();
        if let Some(d) = self.delay {
            parts.push(format!("delay {}", crate::units::format_duration(d)));
        }
        if let Some(j) = self.jitter {
            parts.push(format!("jitter {}", crate::units::format_duration(j)));
        }
        if self.distribution.is_some()
            || self.delay_correlation.is_some()
            || self.jitter_reorders.is_some()
        {
            parts.extend(describe_jitter(&shown));
        }
        if let Some(loss) = self.loss {
            parts.push(describe_loss(&loss));
        }
        parts.extend(describe_shape(&Impairment {
            loss: Loss::default(),
            distribution: Distribution::Uniform,
            delay_correlation: 0.0,
            jitter_reorders: false,
            ..shown
        }));
        f.write_str(&parts.join(", "))
    }
}

fn percent(p: f64) -> String {
    format!("{}%", crate::units::round(p * 100.0, 4))
}

fn describe_jitter(link: &Impairment) -> Vec<String> {
    let mut parts = Vec::new();
    if link.distribution != Distribution::Uniform {
        parts.push(format!("{} distribution", link.distribution.name()));
    }
    if link.delay_correlation > 0.0 {
        parts.push(format!(
            "delay correlation {}",
            percent(link.delay_correlation)
        ));
    }
    if link.jitter_reorders {
        parts.push("jitter reorders".to_owned());
    }
    parts
}

/// A loss in words: `loss 1%`, `loss 1% (correlation 25%)`, `loss gemodel p
/// 1% r 30% 1-h 100% 1-k 0% (mean 3.2%)`.
pub fn describe_loss(loss: &Loss) -> String {
    match *loss {
        Loss::Random(chance) => {
            let mut text = format!("loss {}", percent(chance.probability));
            if chance.correlation > 0.0 {
                text += &format!(
                    " (correlation {}: {} in the long run)",
                    percent(chance.correlation),
                    percent(chance.share())
                );
            }
            text
        }
        Loss::GilbertElliott {
            p,
            r,
            bad_loss,
            good_loss,
        } => format!(
            "loss gemodel p {} r {} 1-h {} 1-k {} (mean {})",
            percent(p),
            percent(r),
            percent(bad_loss),
            percent(good_loss),
            percent(loss.mean())
        ),
        Loss::FourState {
            p13,
            p31,
            p32,
            p23,
            p14,
        } => format!(
            "loss state p13 {} p31 {} p32 {} p23 {} p14 {} (mean {})",
            percent(p13),
            percent(p31),
            percent(p32),
            percent(p23),
            percent(p14),
            percent(loss.mean())
        ),
    }
}

/// What a link does beyond its delay, jitter and loss, in words, one part
/// per option it has: `duplicate 1%`, `rate 10 Mbit/s`, ...
pub fn describe_shape(link: &Impairment) -> Vec<String> {
    let mut parts = describe_jitter(link);
    let chance = |name: &str, c: Chance| {
        let mut text = format!("{name} {}", percent(c.probability));
        if c.correlation > 0.0 {
            text += &format!(
                " (correlation {}: {} in the long run)",
                percent(c.correlation),
                percent(c.share())
            );
        }
        text
    };
    if link.loss != Loss::default() && !matches!(link.loss, Loss::Random(c) if c.correlation == 0.0)
    {
        parts.push(describe_loss(&link.loss));
    }
    if link.duplicate.is_some() {
        parts.push(chance("duplicate", link.duplicate));
    }
    if link.reorder.chance.is_some() {
        parts.push(format!(
            "{} gap {}",
            chance("reorder", link.reorder.chance),
            link.reorder.gap
        ));
    }
    if link.corrupt.is_some() {
        parts.push(chance("corrupt", link.corrupt));
    }
    if let Some(rate) = link.rate {
        let mut text = format!("rate {}", crate::units::format_rate(rate.bits_per_second));
        if rate.packet_overhead != 0 {
            text += &format!(" overhead {} B", rate.packet_overhead);
        }
        if rate.cell_size != 0 {
            text += &format!(" cell {} B + {} B", rate.cell_size, rate.cell_overhead);
        }
        parts.push(text);
    }
    if let Some(limit) = link.limit {
        parts.push(format!("limit {limit}"));
    }
    if let Some(slot) = link.slot {
        parts.push(format!("slot {}", slot.netem_args().join(" ")));
    }
    parts
}
