//! The parts of a link's shape beyond its delay: netem's options, each with
//! netem's meaning, so both backends are told the same thing (tc-netem(8)).
//! Probabilities and correlations are fractions (`0.01` is 1%), as `loss`
//! always was in a lab file; netem's percents are made where tc is called.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::lab::file::link::Distribution;

/// A probability with netem's correlation to the previous draw.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Chance {
    /// Probability of the event, `0.0..=1.0`.
    pub probability: f64,
    /// Weight of the previous draw in this one, `0.0..=1.0`.
    #[serde(default)]
    pub correlation: f64,
}

impl Chance {
    /// Never.
    pub const NEVER: Chance = Chance {
        probability: 0.0,
        correlation: 0.0,
    };

    /// `probability` with no correlation.
    pub const fn of(probability: f64) -> Chance {
        Chance {
            probability,
            correlation: 0.0,
        }
    }

    /// Whether it can happen.
    pub fn is_some(&self) -> bool {
        self.probability > 0.0
    }

    /// The share of frames it happens to in the long run. netem (and the
    /// emulator, which draws as netem does) correlates a draw as
    /// `(1-ρ)·fresh + ρ·previous`, which narrows the draws around one half:
    /// a correlated chance far from one half happens less often than its
    /// probability (5% at a correlation of 25% is about 0.3%).
    pub fn share(&self) -> f64 {
        if self.correlation <= 0.0 || self.probability <= 0.0 || self.probability >= 1.0 {
            return self.probability;
        }
        correlated_share(self.probability, self.correlation)
    }
}

/// Bins of [0, 1] the correlated draw's law is computed on.
const BINS: usize = 4096;

/// `P(X < p)` for netem's stationary correlated draw `X = Σ (1-ρ)ρ^k U_k`:
/// the law of the sum built one uniform term at a time on a grid (each a
/// moving average over prefix sums), the terms narrower than a bin taken as
/// their mean. Memoized: a plan asks for the same few chances many times.
fn correlated_share(p: f64, rho: f64) -> f64 {
    thread_local! {
        static KNOWN: std::cell::RefCell<std::collections::HashMap<(u64, u64), f64>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let key = (p.to_bits(), rho.to_bits());
    if let Some(share) = KNOWN.with(|known| known.borrow().get(&key).copied()) {
        return share;
    }
    let rho = rho.min(0.999);
    let mut mass = vec![0.0f64; BINS + 1];
    mass[0] = 1.0;
    let mut width = 1.0 - rho;
    while width * BINS as f64 >= 1.0 {
        // Convolve with a uniform of `width`: the mass in [x - width, x].
        let span = width * BINS as f64;
        let mut prefix = vec![0.0f64; BINS + 2];
        for (i, m) in mass.iter().enumerate() {
            prefix[i + 1] = prefix[i] + m;
        }
        let below = |x: f64| -> f64 {
            if x <= 0.0 {
                return 0.0;
            }
            let whole = (x.floor() as usize).min(BINS + 1);
            let part = x - x.floor();
            let next = prefix[(whole + 1).min(BINS + 1)];
            prefix[whole] + part * (next - prefix[whole])
        };
        for (i, m) in mass.iter_mut().enumerate() {
            let x = i as f64 + 0.5;
            *m = (below(x) - below(x - span)) / span;
        }
        width *= rho;
    }
    // What is left, the terms narrower than a bin, sums to width / (1 - ρ):
    // taken as its mean.
    let shift = width / (1.0 - rho) / 2.0;
    let edge = (p - shift) * BINS as f64;
    let mut share = 0.0;
    for (i, m) in mass.iter().enumerate() {
        let (start, end) = (i as f64, i as f64 + 1.0);
        if end <= edge {
            share += m;
        } else if start < edge {
            share += m * (edge - start);
        }
    }
    let share = share.clamp(0.0, 1.0);
    KNOWN.with(|known| known.borrow_mut().insert(key, share));
    share
}

/// How a link loses frames: netem's `loss random`, `loss gemodel`, `loss state`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Each frame lost with a probability (correlated to the previous draw).
    Random(Chance),
    /// Gilbert-Elliott: a good and a bad state, each with its own loss.
    GilbertElliott {
        /// Good to bad, per frame.
        p: f64,
        /// Bad to good, per frame.
        r: f64,
        /// Loss in the bad state (netem's `1-h`).
        bad_loss: f64,
        /// Loss in the good state (netem's `1-k`).
        good_loss: f64,
    },
    /// netem's 4-state Markov model: 1 received in a gap, 2 received in a
    /// burst, 3 lost in a burst, 4 an isolated loss.
    FourState {
        /// 1 to 3.
        p13: f64,
        /// 3 to 1.
        p31: f64,
        /// 3 to 2.
        p32: f64,
        /// 2 to 3.
        p23: f64,
        /// 1 to 4.
        p14: f64,
    },
}

impl Default for Loss {
    fn default() -> Loss {
        Loss::Random(Chance::NEVER)
    }
}

impl Loss {
    /// Every frame.
    pub const ALL: Loss = Loss::Random(Chance {
        probability: 1.0,
        correlation: 0.0,
    });

    /// `probability` with no correlation.
    pub const fn random(probability: f64) -> Loss {
        Loss::Random(Chance::of(probability))
    }

    /// The share of frames lost in the long run: what a probe of many frames
    /// measures, whatever the model.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::Random(chance) => chance.share(),
            Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            } => {
                if p + r == 0.0 {
                    return good_loss;
                }
                let bad = p / (p + r);
                (1.0 - bad) * good_loss + bad * bad_loss
            }
            Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => four_state_mean(p13, p31, p32, p23, p14),
        }
    }

    /// netem's arguments after `loss` (percents; `random` is tc's default).
    pub fn netem_args(&self) -> Vec<String> {
        let percent = |p: f64| format!("{}%", crate::units::round(p * 100.0, 6));
        match *self {
            Loss::Random(chance) => {
                let mut args = vec![percent(chance.probability)];
                if chance.correlation > 0.0 {
                    args.push(percent(chance.correlation));
                }
                args
            }
            Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            } => ["gemodel".to_owned()]
                .into_iter()
                .chain([p, r, bad_loss, good_loss].map(percent))
                .collect(),
            Loss::FourState {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => ["state".to_owned()]
                .into_iter()
                .chain([p13, p31, p32, p23, p14].map(percent))
                .collect(),
        }
    }
}

/// Serde for a link's `loss`: a plain probability as a number (as it was
/// before the models), a model or a correlated probability as a table.
pub mod serde_loss {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Loss;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Probability(f64),
        Model(Loss),
    }

    /// Reads a number or a model.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Loss, D::Error> {
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Probability(p) => Loss::random(p),
            Repr::Model(model) => model,
        })
    }

    /// Writes an uncorrelated random loss as its number.
    pub fn serialize<S: Serializer>(loss: &Loss, serializer: S) -> Result<S::Ok, S::Error> {
        match loss {
            Loss::Random(chance) if chance.correlation == 0.0 => {
                serializer.serialize_f64(chance.probability)
            }
            model => model.serialize(serializer),
        }
    }
}

/// The long-run share of frames lost in netem's 4-state chain: the stationary
/// distribution's weight on the two loss states (3 and 4).
fn four_state_mean(p13: f64, p31: f64, p32: f64, p23: f64, p14: f64) -> f64 {
    // Balance: 4 is left at once for 1, so pi4 = p14 pi1; 2 is entered from
    // 3 and left for 3, so p23 pi2 = p32 pi3; 3 is entered from 1 and 2 and
    // left for 1 and 2: (p31 + p32) pi3 = p13 pi1 + p23 pi2, so p31 pi3 = p13 pi1.
    if p31 == 0.0 {
        return if p13 > 0.0 { 1.0 } else { p14 / (1.0 + p14) };
    }
    let pi3 = p13 / p31;
    let pi2 = if p23 > 0.0 { p32 * pi3 / p23 } else { 0.0 };
    let pi4 = p14;
    let total = 1.0 + pi2 + pi3 + pi4;
    (pi3 + pi4) / total
}

/// netem's `reorder`: a frame is sent at once, without the delay, with this
/// chance, every `gap`-th frame (1: any frame).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Reorder {
    /// The chance a candidate frame skips the delay.
    pub chance: Chance,
    /// Frames between two candidates (netem's `gap`; 1 when not given).
    pub gap: u32,
}

/// netem's `rate`: frames leave no faster than this, the link holding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Bits per second.
    pub bits_per_second: u64,
    /// Bytes added to (or, negative, taken from) each frame's size.
    #[serde(default)]
    pub packet_overhead: i32,
    /// Cell size a frame is rounded up to (0: none), as on ATM.
    #[serde(default)]
    pub cell_size: u32,
    /// Bytes added to each cell.
    #[serde(default)]
    pub cell_overhead: i32,
}

impl Rate {
    /// How long the link is busy with a frame of `bytes` on the wire.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        let mut size = bytes as i64 + i64::from(self.packet_overhead);
        if self.cell_size > 0 {
            let cell = i64::from(self.cell_size);
            let cells = (size.max(0) + cell - 1) / cell;
            size = cells * (cell + i64::from(self.cell_overhead));
        }
        let bits = size.max(0) as u128 * 8;
        Duration::from_nanos(
            (bits * 1_000_000_000 / u128::from(self.bits_per_second.max(1))) as u64,
        )
    }

    /// netem's arguments after `rate`.
    pub fn netem_args(&self) -> Vec<String> {
        let mut args = vec![format!("{}bit", self.bits_per_second)];
        if self.packet_overhead != 0 || self.cell_size != 0 {
            args.push(self.packet_overhead.to_string());
        }
        if self.cell_size != 0 {
            args.push(self.cell_size.to_string());
            args.push(self.cell_overhead.to_string());
        }
        args
    }
}

/// netem's `slot`: frames leave in bursts, one slot after another, each slot
/// carrying at most `packets` frames and `bytes` bytes (as on Wi-Fi or DOCSIS).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// The time between two slots.
    pub spacing: SlotSpacing,
    /// Frames per slot (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u32>,
    /// Bytes per slot (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u32>,
}

/// How far apart two slots are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotSpacing {
    /// Uniform from `min` to `max`.
    Range {
        /// Shortest spacing.
        #[serde(with = "crate::units::serde_duration")]
        min: Duration,
        /// Longest spacing.
        #[serde(with = "crate::units::serde_duration")]
        max: Duration,
    },
    /// Drawn from a distribution around `delay`.
    Distribution {
        /// The distribution.
        distribution: Distribution,
        /// Its centre.
        #[serde(with = "crate::units::serde_duration")]
        delay: Duration,
        /// Its spread.
        #[serde(with = "crate::units::serde_duration")]
        jitter: Duration,
    },
}

impl Slot {
    /// netem's arguments after `slot`.
    pub fn netem_args(&self) -> Vec<String> {
        let us = |d: Duration| format!("{}us", d.as_micros());
        let mut args = match self.spacing {
            SlotSpacing::Range { min, max } => vec![us(min), us(max)],
            SlotSpacing::Distribution {
                distribution,
                delay,
                jitter,
            } => vec![
                "distribution".to_owned(),
                distribution.name().to_owned(),
                us(delay),
                us(jitter),
            ],
        };
        if let Some(packets) = self.packets {
            args.extend(["packets".to_owned(), packets.to_string()]);
        }
        if let Some(bytes) = self.bytes {
            args.extend(["bytes".to_owned(), bytes.to_string()]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_run_loss_of_each_model_is_its_stationary_share() {
        assert_eq!(Loss::random(0.2).mean(), 0.2);
        // One frame in 101 enters a bad state that loses everything and lasts
        // 1/r = 10 frames on average: 10 of 110 lost... p/(p+r) of the time.
        let ge = Loss::GilbertElliott {
            p: 0.01,
            r: 0.1,
            bad_loss: 1.0,
            good_loss: 0.0,
        };
        assert!((ge.mean() - 0.01 / 0.11).abs() < 1e-12);
        // Only isolated losses: 4 is entered with p14 and left at once.
        let isolated = Loss::FourState {
            p13: 0.0,
            p31: 1.0,
            p32: 0.0,
            p23: 1.0,
            p14: 0.05,
        };
        assert!((isolated.mean() - 0.05 / 1.05).abs() < 1e-12);
        // Bursts: 1 -> 3 with 1%, 3 -> 1 with 50%: pi3 = 0.02 pi1.
        let bursty = Loss::FourState {
            p13: 0.01,
            p31: 0.5,
            p32: 0.0,
            p23: 1.0,
            p14: 0.0,
        };
        assert!((bursty.mean() - 0.02 / 1.02).abs() < 1e-12);
    }

    #[test]
    fn a_correlated_chance_happens_as_netems_narrowed_draw_says() {
        // Uncorrelated: the probability itself.
        assert_eq!(Chance::of(0.05).share(), 0.05);
        // Against a seeded run of netem's recursion.
        let mut rng = fastrand::Rng::with_seed(3);
        for (p, rho) in [(0.05, 0.25), (0.1, 0.5), (0.3, 0.75), (0.5, 0.9)] {
            let (mut last, mut hits, n) = (rng.f64(), 0u32, 400_000);
            for _ in 0..n {
                last = (1.0 - rho) * rng.f64() + rho * last;
                hits += u32::from(last < p);
            }
            let simulated = f64::from(hits) / f64::from(n);
            let share = Chance {
                probability: p,
                correlation: rho,
            }
            .share();
            assert!(
                (share - simulated).abs() < 0.004,
                "{p} at {rho}: {share} against {simulated}"
            );
        }
        // 5% at a correlation of 25% is far less in the long run.
        let share = Chance {
            probability: 0.05,
            correlation: 0.25,
        }
        .share();
        assert!(share < 0.01, "{share}");
        assert!(
            (Loss::Random(Chance {
                probability: 0.05,
                correlation: 0.25
            })
            .mean()
                - share)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn a_rate_counts_overhead_and_cells_in_the_time_a_frame_takes() {
        let plain = Rate {
            bits_per_second: 8_000_000,
            packet_overhead: 0,
            cell_size: 0,
            cell_overhead: 0,
        };
        assert_eq!(plain.transmit_time(1000), Duration::from_millis(1));
        let atm = Rate {
            packet_overhead: 8,
            cell_size: 48,
            cell_overhead: 5,
            ..plain
        };
        // 100 + 8 bytes in three 48-byte cells of 53 on the wire.
        assert_eq!(atm.transmit_time(100), Duration::from_nanos(159_000));
        assert_eq!(atm.netem_args(), ["8000000bit", "8", "48", "5"]);
    }

    #[test]
    fn netem_is_given_percents_and_the_models_parameters_in_its_order() {
        assert_eq!(Loss::random(0.015).netem_args(), ["1.5%"]);
        let ge = Loss::GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 1.0,
            good_loss: 0.0,
        };
        assert_eq!(ge.netem_args(), ["gemodel", "1%", "30%", "100%", "0%"]);
        let slot = Slot {
            spacing: SlotSpacing::Range {
                min: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            packets: Some(8),
            bytes: None,
        };
        assert_eq!(slot.netem_args(), ["1000us", "2000us", "packets", "8"]);
    }
}
