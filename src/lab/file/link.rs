//! A link's shape as the lab file writes it: the keys `[defaults]`, `[[node]]`,
//! `[[pair]]` and `[[event]]` share (netem's options, with netem's meaning:
//! tc-netem(8)), and the one place they are checked.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

use super::{DurationValue, Locator, TopologyError};

/// How a delay's random part (its jitter) is drawn. Here, where the file
/// names it; the plan's shapes take it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Uniform over `delay ± jitter` (netem's default).
    #[default]
    Uniform,
    /// Normal, `jitter` its standard deviation.
    Normal,
    /// Pareto, heavy-tailed.
    Pareto,
    /// netem's mix of Pareto and normal.
    Paretonormal,
}

impl Distribution {
    /// netem's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
            Distribution::Pareto => "pareto",
            Distribution::Paretonormal => "paretonormal",
        }
    }
}

/// Longest delay or jitter a link may be given: far beyond any exchange
/// timeout, well within what netem and the emulator schedule.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// A rate written as tc writes one (`"10mbit"`), in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateValue(pub u64);

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::units::parse_rate(&text)
            .map(RateValue)
            .map_err(serde::de::Error::custom)
    }
}

/// `loss_model`: netem's `gemodel` or `state`, its parameters in netem's order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum LossModelValue {
    /// `gemodel = [p, r, 1-h, 1-k]`; r, 1-h, 1-k may be left off (1, 1, 0).
    Gemodel(Vec<f64>),
    /// `state = [p13, p31, p32, p23, p14]`; all but p13 may be left off
    /// (1 - p13, 0, 1, 0).
    State(Vec<f64>),
}

/// `slot`: `{ min, max }` or `{ distribution, delay, jitter }`, with
/// `packets` and `bytes` per slot.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotValue {
    /// Shortest time between slots.
    pub min: Option<DurationValue>,
    /// Longest (default: `min`).
    pub max: Option<DurationValue>,
    /// A distribution the spacing is drawn from instead.
    pub distribution: Option<Distribution>,
    /// With `distribution`: its centre.
    pub delay: Option<DurationValue>,
    /// With `distribution`: its spread.
    pub jitter: Option<DurationValue>,
    /// Frames per slot.
    pub packets: Option<u32>,
    /// Bytes per slot.
    pub bytes: Option<u32>,
}

/// Defines a lab file section with a link's shape keys beside its own, and
/// its `shape()`. One list of keys for the four sections that shape a link;
/// spelled out in each (not a serde `flatten`, which buffers the values and
/// loses the positions the errors name).
macro_rules! shaped_section {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// One-way delay.
            pub delay: Option<$crate::lab::file::DurationValue>,
            /// Jitter: `delay ± jitter` (uniform), or the standard deviation.
            pub jitter: Option<$crate::lab::file::DurationValue>,
            /// How the jitter is drawn.
            pub distribution: Option<toml::Spanned<$crate::lab::file::link::Distribution>>,
            /// Correlation of successive jitters.
            pub delay_correlation: Option<toml::Spanned<f64>>,
            /// Loss probability.
            pub loss: Option<toml::Spanned<f64>>,
            /// Correlation of successive losses.
            pub loss_correlation: Option<toml::Spanned<f64>>,
            /// A loss model instead of `loss`.
            pub loss_model: Option<toml::Spanned<$crate::lab::file::link::LossModelValue>>,
            /// Chance a frame is duplicated.
            pub duplicate: Option<toml::Spanned<f64>>,
            /// Its correlation.
            pub duplicate_correlation: Option<toml::Spanned<f64>>,
            /// Chance a frame skips the delay.
            pub reorder: Option<toml::Spanned<f64>>,
            /// Its correlation.
            pub reorder_correlation: Option<toml::Spanned<f64>>,
            /// Frames between reorder candidates.
            pub reorder_gap: Option<toml::Spanned<u32>>,
            /// Chance a frame has one bit flipped.
            pub corrupt: Option<toml::Spanned<f64>>,
            /// Its correlation.
            pub corrupt_correlation: Option<toml::Spanned<f64>>,
            /// Most bits per second.
            pub rate: Option<toml::Spanned<$crate::lab::file::link::RateValue>>,
            /// Bytes added to each frame's size for the rate.
            pub rate_packet_overhead: Option<toml::Spanned<i32>>,
            /// Cell size frames are rounded up to for the rate.
            pub rate_cell_size: Option<toml::Spanned<u32>>,
            /// Bytes added to each cell.
            pub rate_cell_overhead: Option<toml::Spanned<i32>>,
            /// Frames the link holds.
            pub limit: Option<toml::Spanned<u32>>,
            /// Frames leave in slots.
            pub slot: Option<toml::Spanned<$crate::lab::file::link::SlotValue>>,
        }

        impl $name {
            /// The link's shape it gives.
            pub fn shape(&self) -> $crate::lab::file::LinkShape {
                $crate::lab::file::LinkShape {
                    delay: self.delay,
                    jitter: self.jitter,
                    distribution: self.distribution.clone(),
                    delay_correlation: self.delay_correlation.clone(),
                    loss: self.loss.clone(),
                    loss_correlation: self.loss_correlation.clone(),
                    loss_model: self.loss_model.clone(),
                    duplicate: self.duplicate.clone(),
                    duplicate_correlation: self.duplicate_correlation.clone(),
                    reorder: self.reorder.clone(),
                    reorder_correlation: self.reorder_correlation.clone(),
                    reorder_gap: self.reorder_gap.clone(),
                    corrupt: self.corrupt.clone(),
                    corrupt_correlation: self.corrupt_correlation.clone(),
                    rate: self.rate.clone(),
                    rate_packet_overhead: self.rate_packet_overhead.clone(),
                    rate_cell_size: self.rate_cell_size.clone(),
                    rate_cell_overhead: self.rate_cell_overhead.clone(),
                    limit: self.limit.clone(),
                    slot: self.slot.clone(),
                }
            }
        }
    };
}
pub(crate) use shaped_section;

/// A link's shape as a section writes it, each value where it stands in the
/// file: checked here, read by the plan in one place (`plan::impairment`).
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)]
pub struct LinkShape {
    pub delay: Option<DurationValue>,
    pub jitter: Option<DurationValue>,
    pub distribution: Option<Spanned<Distribution>>,
    pub delay_correlation: Option<Spanned<f64>>,
    pub loss: Option<Spanned<f64>>,
    pub loss_correlation: Option<Spanned<f64>>,
    pub loss_model: Option<Spanned<LossModelValue>>,
    pub duplicate: Option<Spanned<f64>>,
    pub duplicate_correlation: Option<Spanned<f64>>,
    pub reorder: Option<Spanned<f64>>,
    pub reorder_correlation: Option<Spanned<f64>>,
    pub reorder_gap: Option<Spanned<u32>>,
    pub corrupt: Option<Spanned<f64>>,
    pub corrupt_correlation: Option<Spanned<f64>>,
    pub rate: Option<Spanned<RateValue>>,
    pub rate_packet_overhead: Option<Spanned<i32>>,
    pub rate_cell_size: Option<Spanned<u32>>,
    pub rate_cell_overhead: Option<Spanned<i32>>,
    pub limit: Option<Spanned<u32>>,
    pub slot: Option<Spanned<SlotValue>>,
}

/// The shape keys, for messages that list them.
pub const SHAPE_KEYS: &str = "`delay`, `jitter`, `distribution`, `delay_correlation`, `loss`, \
`loss_correlation`, `loss_model`, `duplicate`, `reorder`, `corrupt`, `rate`, `limit`, `slot` \
(and their `_correlation`, `reorder_gap`, `rate_*`)";

impl LinkShape {
    /// Whether it gives nothing.
    pub fn is_empty(&self) -> bool {
        self.delay.is_none()
            && self.jitter.is_none()
            && self.distribution.is_none()
            && self.delay_correlation.is_none()
            && self.loss.is_none()
            && self.loss_correlation.is_none()
            && self.loss_model.is_none()
            && self.duplicate.is_none()
            && self.reorder.is_none()
            && self.corrupt.is_none()
            && self.rate.is_none()
            && self.limit.is_none()
            && self.slot.is_none()
    }

    /// Checks what it gives: delays both backends schedule, probabilities,
    /// models with netem's parameters, and each companion key beside the key
    /// it qualifies.
    pub(super) fn check(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        for DurationValue(duration, start) in [self.delay, self.jitter].into_iter().flatten() {
            check_delay(at, duration, start)?;
        }
        if let Some(loss) = &self.loss {
            let value = *loss.get_ref();
            if !(0.0..1.0).contains(&value) {
                return Err(at.error(
                    Some(loss.span()),
                    format!("loss {value} is out of range: expected a probability from 0 up to (not including) 1, e.g. 0.01 for 1%"),
                ));
            }
        }
        for (key, value) in [
            ("delay_correlation", &self.delay_correlation),
            ("loss_correlation", &self.loss_correlation),
            ("duplicate", &self.duplicate),
            ("duplicate_correlation", &self.duplicate_correlation),
            ("reorder", &self.reorder),
            ("reorder_correlation", &self.reorder_correlation),
            ("corrupt", &self.corrupt),
            ("corrupt_correlation", &self.corrupt_correlation),
        ] {
            if let Some(value) = value {
                check_fraction(at, key, value)?;
            }
        }
        let needs =
            |present: bool, key: &str, needed: &str, span: Option<std::ops::Range<usize>>| {
                if present {
                    Ok(())
                } else {
                    Err(at.error(
                        span,
                        format!("`{key}` needs `{needed}` beside it in the same section"),
                    ))
                }
            };
        let span = |value: &Option<Spanned<f64>>| value.as_ref().map(Spanned::span);
        if self.loss_correlation.is_some() {
            needs(
                self.loss.is_some(),
                "loss_correlation",
                "loss",
                span(&self.loss_correlation),
            )?;
        }
        if self.duplicate_correlation.is_some() {
            needs(
                self.duplicate.is_some(),
                "duplicate_correlation",
                "duplicate",
                span(&self.duplicate_correlation),
            )?;
        }
        if self.reorder_correlation.is_some() {
            needs(
                self.reorder.is_some(),
                "reorder_correlation",
                "reorder",
                span(&self.reorder_correlation),
            )?;
        }
        if let Some(gap) = &self.reorder_gap {
            needs(
                self.reorder.is_some(),
                "reorder_gap",
                "reorder",
                Some(gap.span()),
            )?;
            if *gap.get_ref() == 0 {
                return Err(at.error(
                    Some(gap.span()),
                    "reorder_gap 0 never reorders: expected 1 (any frame) or more",
                ));
            }
        }
        if let Some(reorder) = &self.reorder {
            if self.delay.is_none_or(|d| d.0.is_zero()) && *reorder.get_ref() > 0.0 {
                return Err(at.error(
                    Some(reorder.span()),
                    "`reorder` needs a `delay` beside it in the same section: netem reorders by sending some frames without the delay",
                ));
            }
        }
        for (key, span) in [
            (
                "distribution",
                self.distribution.as_ref().map(Spanned::span),
            ),
            ("delay_correlation", span(&self.delay_correlation)),
        ] {
            let jittery = self.delay.is_some_and(|d| !d.0.is_zero())
                && self.jitter.is_some_and(|j| !j.0.is_zero());
            if span.is_some() && !jittery {
                return Err(at.error(
                    span,
                    format!("`{key}` needs a `delay` and a `jitter` beside it in the same section: netem draws it around the delay"),
                ));
            }
        }
        if self.corrupt_correlation.is_some() {
            needs(
                self.corrupt.is_some(),
                "corrupt_correlation",
                "corrupt",
                span(&self.corrupt_correlation),
            )?;
        }
        for (key, span) in [
            (
                "rate_packet_overhead",
                self.rate_packet_overhead.as_ref().map(Spanned::span),
            ),
            (
                "rate_cell_size",
                self.rate_cell_size.as_ref().map(Spanned::span),
            ),
            (
                "rate_cell_overhead",
                self.rate_cell_overhead.as_ref().map(Spanned::span),
            ),
        ] {
            if span.is_some() {
                needs(self.rate.is_some(), key, "rate", span)?;
            }
        }
        if let Some(model) = &self.loss_model {
            if let Some(loss) = &self.loss {
                return Err(at.error(
                    Some(loss.span()),
                    "give `loss` (a probability) or `loss_model`, not both",
                ));
            }
            check_model(at, model)?;
        }
        if let Some(limit) = &self.limit {
            if *limit.get_ref() == 0 {
                return Err(at.error(
                    Some(limit.span()),
                    "limit 0 holds no frame: expected 1 or more (netem's default is 1000)",
                ));
            }
        }
        if let Some(slot) = &self.slot {
            check_slot(at, slot)?;
        }
        Ok(())
    }
}

fn check_delay(at: &Locator<'_>, duration: Duration, start: usize) -> Result<(), TopologyError> {
    if duration > MAX_DELAY {
        return Err(at.error(
            Some(start..start),
            format!(
                "{duration:?} is too long for a link: expected at most {} s",
                MAX_DELAY.as_secs()
            ),
        ));
    }
    Ok(())
}

fn check_fraction(at: &Locator<'_>, key: &str, value: &Spanned<f64>) -> Result<(), TopologyError> {
    let v = *value.get_ref();
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(at.error(
            Some(value.span()),
            format!(
                "{key} {v} is out of range: expected a fraction from 0 to 1, e.g. 0.25 for 25%"
            ),
        ))
    }
}

fn check_model(at: &Locator<'_>, model: &Spanned<LossModelValue>) -> Result<(), TopologyError> {
    let (name, values, most) = match model.get_ref() {
        LossModelValue::Gemodel(v) => ("gemodel", v, 4),
        LossModelValue::State(v) => ("state", v, 5),
    };
    let names = if most == 4 {
        "[p, r, 1-h, 1-k]"
    } else {
        "[p13, p31, p32, p23, p14]"
    };
    if values.is_empty() || values.len() > most {
        return Err(at.error(
            Some(model.span()),
            format!(
                "{name} takes 1 to {most} probabilities, {names}: got {}",
                values.len()
            ),
        ));
    }
    if let Some(bad) = values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(at.error(
            Some(model.span()),
            format!("{name}: {bad} is not a probability: expected {names}, each from 0 to 1"),
        ));
    }
    Ok(())
}

fn check_slot(at: &Locator<'_>, slot: &Spanned<SlotValue>) -> Result<(), TopologyError> {
    let value = slot.get_ref();
    let refuse = |message: &str| Err(at.error(Some(slot.span()), message.to_owned()));
    match (value.min, value.distribution) {
        (Some(_), None) if value.delay.is_none() && value.jitter.is_none() => {}
        (None, Some(_))
            if value.max.is_none() && value.delay.is_some() && value.jitter.is_some() => {}
        _ => return refuse(
            "slot takes { min, max } or { distribution, delay, jitter }, with packets and bytes",
        ),
    }
    if let (Some(min), Some(max)) = (value.min, value.max) {
        if max.0 < min.0 {
            return refuse("slot: max is shorter than min");
        }
    }
    for DurationValue(duration, start) in [value.min, value.max, value.delay, value.jitter]
        .into_iter()
        .flatten()
    {
        check_delay(at, duration, start)?;
    }
    if value.packets == Some(0) || value.bytes == Some(0) {
        return refuse("slot: packets and bytes must be 1 or more");
    }
    Ok(())
}
