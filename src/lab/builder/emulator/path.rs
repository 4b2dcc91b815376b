//! One ordered pair's way through the emulator: one stage ([`Link`]), or two
//! in series where netem has two (a pair of nodes with links of their own
//! and no per-pair classes: the sender's link's netem, then the receiver's).

use std::time::Instant;

use fastrand::Rng;
use serde::{Deserialize, Deserializer, Serialize};

use super::link::{Fate, Link};
use super::shape::Flip;
use crate::lab::plan::impairment::Impairment;

/// What one ordered pair does to its frames: one stage, or two in series.
/// Two where netem has two: a pair of nodes with links of their own and no
/// per-pair classes crosses the sender's link's netem, then the receiver's,
/// the second drawing duplicate, loss, corrupt, delay, rate and limit afresh
/// for every copy the first lets through, from the time the first lets it
/// out. One where netem has one leaf per pair (`[[pair]]`s, a timeline that
/// changes links), with the pair's combined shape.
///
/// In JSON one stage is the bare impairment (as the matrix always was), two
/// are `{"first": .., "then": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stages {
    /// The stage a frame crosses first (the sender's link).
    pub first: Impairment,
    /// The stage its copies cross next (the receiver's link), if any.
    pub then: Option<Impairment>,
}

impl Stages {
    /// `first`, then `then`: one stage when either is a plain wire (it is
    /// then exactly the other).
    pub fn in_series(first: Impairment, then: Impairment) -> Self {
        match (first.is_none(), then.is_none()) {
            (true, _) => then.into(),
            (false, true) => first.into(),
            (false, false) => Self {
                first,
                then: Some(then),
            },
        }
    }
}

impl From<Impairment> for Stages {
    fn from(first: Impairment) -> Self {
        Self { first, then: None }
    }
}

/// A single stage is its impairment.
impl PartialEq<Impairment> for Stages {
    fn eq(&self, other: &Impairment) -> bool {
        self.then.is_none() && self.first == *other
    }
}

/// Two stages in JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwoStages {
    first: Impairment,
    then: Impairment,
}

/// A matrix cell as read: two stages, or one (a bare impairment). Only ever
/// on the stack while a cell is parsed, so its size does not matter.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
enum StagesJson {
    Two(TwoStages),
    One(Impairment),
}

impl Serialize for Stages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.then {
            None => self.first.serialize(serializer),
            Some(then) => TwoStages {
                first: self.first,
                then,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Stages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match StagesJson::deserialize(deserializer)? {
            StagesJson::Two(two) => Self {
                first: two.first,
                then: Some(two.then),
            },
            StagesJson::One(first) => first.into(),
        })
    }
}

/// The fates one stage gives one frame at most: a copy and its duplicate.
const STAGE_FATES: usize = 2;

/// One ordered pair's stages, each with its own state ([`Link`]). netem's
/// state is per link, shared by every destination of that link; here it is
/// per pair and stage: a flow that saturates a node's rate (or fills its
/// limit) toward one peer does not slow its frames to another peer.
#[derive(Debug, Clone)]
pub struct Path {
    first: Link,
    then: Option<Link>,
}

impl Path {
    /// A path that has carried nothing yet.
    pub fn new(stages: Stages, reorder: bool) -> Self {
        Self {
            first: Link::new(stages.first, reorder),
            then: stages.then.map(|then| Link::second(then, reorder)),
        }
    }

    /// Follows `stages` from now on: a stage whose impairment is unchanged
    /// keeps its state, a changed one (or a new one) starts afresh.
    pub fn set(&mut self, stages: Stages, reorder: bool) {
        if *self.first.impairment() != stages.first {
            self.first = Link::new(stages.first, reorder);
        }
        match (&mut self.then, stages.then) {
            (Some(link), Some(then)) if *link.impairment() == then => {}
            (slot, new) => *slot = new.map(|then| Link::second(then, reorder)),
        }
    }

    /// Appends the fates of a frame of `len` bytes to port `to` entering at
    /// `arrival` ([`Link::carry`]). With a second stage, each copy the first
    /// lets out enters it at its due time, and the second draws duplicate,
    /// loss, corrupt, limit, reorder, delay and rate afresh for it, as
    /// netem's second qdisc does: a frame may leave as up to four copies, and
    /// a copy corrupted by both stages has two bits flipped. The second
    /// stage takes the copies in the order the first took them (see
    /// [`Link::due`]). Nothing is allocated beyond `out`'s room.
    pub fn carry(
        &mut self,
        to: usize,
        arrival: Instant,
        len: usize,
        rng: &mut Rng,
        out: &mut Vec<Fate>,
    ) {
        let start = out.len();
        self.first.carry(to, arrival, len, rng, out);
        let Some(then) = &mut self.then else {
            return;
        };
        let mut firsts = [Fate::Lost { to }; STAGE_FATES];
        let count = out.len() - start;
        firsts[..count].copy_from_slice(&out[start..]);
        out.truncate(start);
        for fate in firsts.into_iter().take(count) {
            let Fate::Deliver { due, flip, .. } = fate else {
                out.push(fate);
                continue;
            };
            let at = out.len();
            then.carry(to, due, len, rng, out);
            for copy in &mut out[at..] {
                if let Fate::Deliver { flip: again, .. } = copy {
                    *again = Flip::in_series(flip, *again);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lab::plan::shape::{Chance, Loss, Rate, Reorder};

    const MS: Duration = Duration::from_millis(1);

    fn delay(ms: u32) -> Impairment {
        Impairment {
            delay: ms * MS,
            ..Impairment::default()
        }
    }

    fn two(first: Impairment, then: Impairment) -> Path {
        Path::new(
            Stages {
                first,
                then: Some(then),
            },
            false,
        )
    }

    /// The fates of `n` frames of 100 bytes, one per millisecond from `t0`.
    fn carried(path: &mut Path, t0: Instant, n: u32, seed: u64) -> Vec<Vec<Fate>> {
        let mut rng = Rng::with_seed(seed);
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                path.carry(1, t0 + i * MS, 100, &mut rng, &mut out);
                out
            })
            .collect()
    }

    fn dues(fates: &[Fate]) -> Vec<Instant> {
        fates
            .iter()
            .filter_map(|f| match f {
                Fate::Deliver { due, .. } => Some(*due),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn two_loss_models_in_series_keep_the_product_of_their_survivals() {
        let gilbert = Impairment {
            loss: Loss::GilbertElliott {
                p: 0.05,
                r: 0.4,
                bad_loss: 0.8,
                good_loss: 0.01,
            },
            ..Impairment::default()
        };
        let four_state = Impairment {
            loss: Loss::FourState {
                p13: 0.02,
                p31: 0.5,
                p32: 0.1,
                p23: 0.3,
                p14: 0.01,
            },
            ..Impairment::default()
        };
        let (m1, m2) = (gilbert.loss.mean(), four_state.loss.mean());
        assert!(m1 > 0.05 && m2 > 0.01, "{m1} {m2}");
        let mut path = two(gilbert, four_state);
        let n = 200_000;
        let fates = carried(&mut path, Instant::now(), n, 5);
        let delivered = fates.iter().filter(|f| !dues(f).is_empty()).count();
        let lost = 1.0 - delivered as f64 / f64::from(n);
        let expected = 1.0 - (1.0 - m1) * (1.0 - m2);
        assert!(
            (lost - expected).abs() < 0.004,
            "lost {lost}, expected {expected} ({m1} then {m2})"
        );
        assert!(fates.iter().all(|f| f.len() == 1), "no duplicates");
    }

    #[test]
    fn a_duplicate_in_each_stage_gives_up_to_four_copies_in_their_shares() {
        let (d1, d2) = (0.3, 0.2);
        let first = Impairment {
            duplicate: Chance::of(d1),
            ..delay(5)
        };
        let then = Impairment {
            duplicate: Chance::of(d2),
            ..delay(7)
        };
        let n = 100_000;
        let t0 = Instant::now();
        let fates = carried(&mut two(first, then), t0, n, 11);
        let mut counts = [0u32; 5];
        for (i, fate) in (0u32..).zip(&fates) {
            let dues = dues(fate);
            assert!(
                dues.iter().all(|d| *d == t0 + i * MS + 12 * MS),
                "both delays, every copy: {fate:?}"
            );
            counts[dues.len()] += 1;
        }
        let share = |k: usize| f64::from(counts[k]) / f64::from(n);
        // One copy: neither duplicates; two: the first does and neither copy
        // is duplicated again, or the first does not and the second does;
        // three: the first does and one of its copies is; four: all three.
        let expected = [
            0.0,
            (1.0 - d1) * (1.0 - d2),
            (1.0 - d1) * d2 + d1 * (1.0 - d2) * (1.0 - d2),
            d1 * 2.0 * d2 * (1.0 - d2),
            d1 * d2 * d2,
        ];
        for (k, want) in expected.iter().enumerate() {
            assert!(
                (share(k) - want).abs() < 0.005,
                "{k} copies: {} against {want} ({counts:?})",
                share(k)
            );
        }
        assert!(counts[4] > 0, "four copies happen");
    }

    /// 8 Mbit/s: a frame of 1000 bytes takes 1 ms.
    fn rated(ms: u32) -> Impairment {
        Impairment {
            rate: Some(Rate {
                bits_per_second: 8_000_000,
                packet_overhead: 0,
                cell_size: 0,
                cell_overhead: 0,
            }),
            ..delay(ms)
        }
    }

    /// The due times of frames of 1000 bytes entering at `arrivals`.
    fn dues_of(path: &mut Path, arrivals: &[Instant]) -> Vec<Instant> {
        let mut rng = Rng::with_seed(23);
        let mut out = Vec::new();
        for at in arrivals {
            path.carry(1, *at, 1000, &mut rng, &mut out);
        }
        dues(&out)
    }

    #[test]
    fn the_second_stages_delay_starts_when_the_first_lets_the_copy_out() {
        let t0 = Instant::now();
        let at = |ms: u32| t0 + ms * MS;
        // Three at once leave the first stage at 6, 7 and 8 ms (its rate
        // queues them); each takes the second's 4 ms from then.
        let mut path = two(rated(5), delay(4));
        assert_eq!(dues_of(&mut path, &[t0; 3]), [10, 11, 12].map(at));
        // A second rate queues them again, from when each enters it: 6 + 4
        // + 1, then behind each other.
        let mut path = two(rated(5), rated(4));
        assert_eq!(dues_of(&mut path, &[t0; 3]), [11, 12, 13].map(at));
        // Jitter in the first stage: every copy is its delay and the second's.
        let jittered = Impairment {
            jitter: 3 * MS,
            ..delay(10)
        };
        let fates = carried(&mut two(jittered, delay(4)), t0, 2000, 3);
        let spent: Vec<Duration> = (0u32..)
            .zip(&fates)
            .flat_map(|(i, f)| dues(f).into_iter().map(move |d| d - (t0 + i * MS)))
            .collect();
        assert_eq!(spent.len(), 2000);
        assert!(spent.iter().all(|d| (11 * MS..=17 * MS).contains(d)));
        assert!(spent.iter().any(|d| *d < 12 * MS) && spent.iter().any(|d| *d > 16 * MS));
        let lost = Impairment {
            loss: Loss::ALL,
            ..delay(4)
        };
        let fates = carried(&mut two(delay(10), lost), t0, 1, 3);
        assert_eq!(fates[0], [Fate::Lost { to: 1 }], "lost in the second");
    }

    #[test]
    fn a_frame_reordered_in_the_first_stage_skips_only_its_delay() {
        let reordering = Impairment {
            reorder: Reorder {
                chance: Chance::of(1.0),
                gap: 5,
            },
            ..delay(20)
        };
        let t0 = Instant::now();
        let fates = carried(&mut two(reordering, delay(6)), t0, 20, 7);
        for (i, fate) in (0u32..).zip(&fates) {
            let sent = t0 + i * MS;
            let expected = if i % 5 == 4 {
                sent + 6 * MS
            } else {
                sent + 26 * MS
            };
            assert_eq!(dues(fate), [expected], "frame {i}");
        }
        // It overtakes the frames before it in the second stage too, a FIFO one.
        assert!(dues(&fates[4])[0] < dues(&fates[3])[0]);
    }

    #[test]
    fn a_copy_corrupted_by_both_stages_has_a_bit_flipped_by_each() {
        let corrupt = Impairment {
            corrupt: Chance::of(1.0),
            ..delay(1)
        };
        let fates = carried(&mut two(corrupt, corrupt), Instant::now(), 50, 9);
        let original = [0u8; 100];
        for fate in fates {
            let [Fate::Deliver {
                flip: Some(flip), ..
            }] = fate[..]
            else {
                panic!("{fate:?}");
            };
            let (byte, mask) = flip.then.expect("the second stage's bit");
            assert!(flip.byte < 100 && byte < 100 && mask != 0);
            let mut frame = original;
            flip.apply(&mut frame);
            let bits: u32 = frame.iter().map(|b| b.count_ones()).sum();
            let same = flip.byte == byte && flip.mask == mask;
            assert_eq!(bits, if same { 0 } else { 2 });
            flip.apply(&mut frame);
            assert_eq!(frame, original, "flipping again undoes it");
        }
    }

    #[test]
    fn a_changed_stage_starts_afresh_and_an_unchanged_one_keeps_its_state() {
        // Good to bad on the first frame, never back.
        let trap = Impairment {
            loss: Loss::GilbertElliott {
                p: 1.0,
                r: 0.0,
                bad_loss: 1.0,
                good_loss: 0.0,
            },
            ..Impairment::default()
        };
        let t0 = Instant::now();
        let mut path = two(delay(1), trap);
        let lost = |path: &mut Path| dues(&carried(path, t0, 1, 1)[0]).is_empty();
        assert!(!lost(&mut path));
        assert!(lost(&mut path));
        path.set(
            Stages {
                first: delay(2),
                then: Some(trap),
            },
            false,
        );
        assert!(lost(&mut path), "the second stage is unchanged");
        path.set(delay(2).into(), false);
        assert!(!lost(&mut path), "no second stage");
        path.set(
            Stages {
                first: delay(2),
                then: Some(trap),
            },
            false,
        );
        assert!(!lost(&mut path), "a new second stage");
    }

    #[test]
    fn a_matrix_cell_is_a_bare_impairment_or_two_stages() {
        let one = Stages::from(Impairment {
            delay: Duration::from_millis(3),
            ..Impairment::default()
        });
        let two = Stages::in_series(one.first, one.first);
        assert_eq!(two.then, Some(one.first));
        let text = serde_json::to_string(&[one, two]).unwrap();
        let bare = serde_json::to_string(&one.first).unwrap();
        assert!(text.starts_with(&format!("[{bare},")), "{text}");
        let back: Vec<Stages> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [one, two]);
        assert!(serde_json::from_str::<Stages>(
            r#"{"first": {"delay": "1ms", "jitter": "0"}, "also": 1}"#
        )
        .is_err());
        // A plain wire on either side leaves one stage: the other.
        assert_eq!(Stages::in_series(Impairment::default(), one.first), one);
        assert_eq!(Stages::in_series(one.first, Impairment::default()), one);
        assert_eq!(one, one.first);
        assert_ne!(two, one.first);
    }
}
