//! One stage of a frame's trip through the emulator ([`Link`]): whether each
//! copy is lost, and when each copy is due. Pure: time and randomness come in
//! as arguments, so the timing rules are tested without a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use fastrand::Rng;

use super::shape::{Flip, Shaper};
use crate::lab::plan::impairment::{Impairment, CUT};

/// One stage of one direction between two ports: its impairment, netem's
/// state for it ([`Shaper`]), when the last frame it delayed entered and is
/// due, which keeps it FIFO under jitter, when its rate lets the next frame
/// out, and the due times of the copies it holds, for its limit.
///
/// netem keeps this state per link, shared by every destination of that
/// link; the emulator keeps it per ordered pair (per stage of a pair's
/// path): a flow that saturates a node's rate or fills its
/// limit toward one peer does not slow its frames to another peer here.
#[derive(Debug, Clone)]
pub struct Link {
    impairment: Impairment,
    reorder: bool,
    /// A pair's second stage: copies may enter it out of order (see
    /// [`Link::due`]).
    second: bool,
    /// The entry and due time of the last frame delayed in order.
    last: Option<(Instant, Instant)>,
    shaper: Shaper,
    /// With a rate: when the last frame is through.
    busy_until: Option<Instant>,
    /// With a limit: the due times of the copies in flight, earliest on
    /// top; room for the limit is taken once, when the link is made.
    held: BinaryHeap<Reverse<Instant>>,
}

/// The most copies a link's limit holds room for ahead (the emulator's own
/// queue bound caps a link below anything larger).
const MAX_HELD: usize = 1 << 16;

impl Link {
    /// A link that has carried nothing yet.
    pub fn new(impairment: Impairment, reorder: bool) -> Self {
        let room = impairment.limit.map_or(0, |l| (l as usize).min(MAX_HELD));
        Self {
            impairment,
            reorder,
            second: false,
            last: None,
            shaper: Shaper::new(&impairment),
            busy_until: None,
            held: BinaryHeap::with_capacity(room),
        }
    }

    /// A pair's second stage, which takes each copy its first lets out.
    pub fn second(impairment: Impairment, reorder: bool) -> Self {
        Self {
            second: true,
            ..Self::new(impairment, reorder)
        }
    }

    /// What the link does.
    pub fn impairment(&self) -> &Impairment {
        &self.impairment
    }

    /// Whether a frame entering now is lost.
    pub fn loses(&mut self, rng: &mut Rng) -> bool {
        self.shaper.loses(&self.impairment, rng)
    }

    /// The delay of one frame (see [`super::shape::jittered`]).
    pub fn sample_delay(&mut self, rng: &mut Rng) -> Duration {
        self.shaper.delay(&self.impairment, rng)
    }

    /// When a frame of `len` bytes that arrived at `arrival` leaves the link.
    /// Without reordering no delayed frame leaves before one that entered
    /// earlier; a frame netem's reorder sends at once leaves at once all the
    /// same, past the others (and past any slot). With a rate, as in netem,
    /// a frame leaves its transmit time after the later of its delay and the
    /// previous frame; with a slot, then in the slot that carries it.
    ///
    /// A second stage is given the copies as its first stage took them, so
    /// one that overtook others there may enter it before the last it took:
    /// such a copy is not held behind that one (netem's second qdisc sees it
    /// first), though a rate and a limit count it after the copies it
    /// overtook.
    pub fn due(&mut self, arrival: Instant, len: usize, rng: &mut Rng) -> Instant {
        if self.shaper.skips_delay(&self.impairment, rng) {
            return arrival;
        }
        let mut due = arrival + self.sample_delay(rng);
        if let Some(rate) = self.impairment.rate {
            due = self.busy_until.map_or(due, |busy| busy.max(due)) + rate.transmit_time(len);
            self.busy_until = Some(due);
        }
        if !(self.reorder || self.impairment.jitter_reorders) {
            let overtook = self.second && self.last.is_some_and(|(entry, _)| arrival < entry);
            if !overtook {
                if let Some((_, last)) = self.last {
                    due = due.max(last);
                }
                self.last = Some((arrival, due));
            }
        }
        self.shaper.slot(&self.impairment, due, len, rng)
    }

    /// The due time of a duplicate whose first copy is due at `first`: the
    /// same, or with a rate one transmit time after the link is through; it
    /// takes its place in a slot too.
    fn again(&mut self, first: Instant, len: usize, rng: &mut Rng) -> Instant {
        let mut due = first;
        if let Some(rate) = self.impairment.rate {
            due = self.busy_until.map_or(first, |busy| busy.max(first)) + rate.transmit_time(len);
            self.busy_until = Some(due);
        }
        self.shaper.slot(&self.impairment, due, len, rng)
    }

    /// Whether the link's limit has room for one more copy at `now` (copies
    /// due by then have left); takes the room if so, with a copy due at `due`
    /// once it is known ([`Link::hold`]).
    fn has_room(&mut self, now: Instant) -> bool {
        let Some(limit) = self.impairment.limit else {
            return true;
        };
        while self.held.peek().is_some_and(|Reverse(due)| *due <= now) {
            self.held.pop();
        }
        self.held.len() < (limit as usize).min(MAX_HELD)
    }

    fn hold(&mut self, due: Instant) {
        if self.impairment.limit.is_some() {
            self.held.push(Reverse(due));
        }
    }

    /// Appends the fates of a frame of `len` bytes to port `to` entering at
    /// `arrival`, drawn in netem's order: duplicate, loss, corrupt, limit,
    /// reorder, delay and rate. A duplicated frame that is also lost still
    /// sends one copy, as in netem; a duplicate is due with its first copy
    /// (with a rate, one transmit time later). A copy beyond the limit is
    /// dropped before it takes the link's time.
    pub fn carry(
        &mut self,
        to: usize,
        arrival: Instant,
        len: usize,
        rng: &mut Rng,
        out: &mut Vec<Fate>,
    ) {
        let link = self.impairment;
        if link == CUT {
            out.push(Fate::Cut { to });
            return;
        }
        let twice = self.shaper.duplicates(&link, rng);
        let lost = self.shaper.loses(&link, rng);
        let copies = 1 + usize::from(twice) - usize::from(lost);
        if copies == 0 {
            out.push(Fate::Lost { to });
            return;
        }
        let mut flips = [None; 2];
        for flip in &mut flips[..copies] {
            *flip = self.shaper.corrupts(&link, len, rng);
        }
        let mut first = None;
        for &flip in &flips[..copies] {
            if !self.has_room(arrival) {
                out.push(Fate::Overflowed { to });
                continue;
            }
            let due = match first {
                None => self.due(arrival, len, rng),
                Some(first) => self.again(first, len, rng),
            };
            first = Some(due);
            self.hold(due);
            out.push(Fate::Deliver { to, due, flip });
        }
    }
}

/// What happens to one copy of a frame (a duplicated frame has two, or up
/// to four when both stages of its path duplicate it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Write it to port `to` at `due`.
    Deliver {
        /// Destination port.
        to: usize,
        /// When to write it.
        due: Instant,
        /// A bit to flip in this copy (netem's corrupt).
        flip: Option<Flip>,
    },
    /// Dropped by the link's loss.
    Lost {
        /// Destination port.
        to: usize,
    },
    /// Dropped because the timeline cut the link.
    Cut {
        /// Destination port.
        to: usize,
    },
    /// Dropped as the link held its limit.
    Overflowed {
        /// Destination port.
        to: usize,
    },
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::lab::plan::shape::{Chance, Loss, Rate, Reorder, Slot, SlotSpacing};

    const MS: Duration = Duration::from_millis(1);

    /// A link of `delay_ms` ± `jitter_ms` losing `loss` at random (the
    /// forwarder's tests use it too).
    pub(in crate::lab::builder::emulator) fn impairment(
        delay_ms: u32,
        jitter_ms: u32,
        loss: f64,
    ) -> Impairment {
        Impairment {
            delay: delay_ms * MS,
            jitter: jitter_ms * MS,
            loss: Loss::random(loss),
            ..Impairment::default()
        }
    }

    #[test]
    fn loss_follows_its_probability() {
        let mut rng = Rng::with_seed(7);
        let mut never = Link::new(impairment(0, 0, 0.0), false);
        let mut always = Link::new(impairment(0, 0, 1.0), false);
        let mut half = Link::new(impairment(0, 0, 0.3), false);
        assert!((0..1000).all(|_| !never.loses(&mut rng)));
        assert!((0..1000).all(|_| always.loses(&mut rng)));
        let lost = (0..100_000).filter(|_| half.loses(&mut rng)).count();
        assert!((29_000..31_000).contains(&lost), "lost {lost}");
    }

    #[test]
    fn fixed_delay_is_exact() {
        let mut rng = Rng::with_seed(1);
        let mut link = Link::new(impairment(25, 0, 0.0), false);
        let t0 = Instant::now();
        assert_eq!(link.due(t0, 100, &mut rng), t0 + 25 * MS);
        assert_eq!(link.due(t0 + MS, 100, &mut rng), t0 + 26 * MS);
    }

    #[test]
    fn jitter_stays_in_bounds_and_never_goes_negative() {
        let mut rng = Rng::with_seed(3);
        let mut link = Link::new(impairment(10, 2, 0.0), true);
        let samples: Vec<Duration> = (0..10_000).map(|_| link.sample_delay(&mut rng)).collect();
        assert!(samples.iter().all(|d| (8 * MS..=12 * MS).contains(d)));
        assert!(samples.iter().any(|d| *d < 9 * MS) && samples.iter().any(|d| *d > 11 * MS));
        let mut wild = Link::new(impairment(1, 5, 0.0), true);
        let wild: Vec<Duration> = (0..1000).map(|_| wild.sample_delay(&mut rng)).collect();
        assert!(wild.iter().all(|d| *d <= 6 * MS));
        // 1 ms ± 5 ms goes below zero on about 40% of draws: those are clamped to 0.
        assert!(
            wild.contains(&Duration::ZERO),
            "no draw was clamped at zero"
        );
    }

    #[test]
    fn jitter_keeps_fifo_unless_reordering_is_asked_for() {
        let t0 = Instant::now();
        let step = Duration::from_micros(100);
        let run = |reorder: bool| {
            let mut rng = Rng::with_seed(11);
            let mut link = Link::new(impairment(10, 5, 0.0), reorder);
            (0..1000u32)
                .map(|i| link.due(t0 + step * i, 100, &mut rng))
                .collect::<Vec<_>>()
        };
        let fifo = run(false);
        assert!(fifo.windows(2).all(|w| w[0] <= w[1]));
        let reordered = run(true);
        assert!(reordered.windows(2).any(|w| w[0] > w[1]));
    }

    /// Carries `n` frames of 100 bytes, one per millisecond from `t0`.
    #[test]
    fn a_cut_link_counts_its_frames_cut_and_a_lossy_one_lost() {
        let t0 = Instant::now();
        let cut = carried(&mut Link::new(CUT, false), t0, 3);
        assert!(
            cut.iter().all(|f| f[..] == [Fate::Cut { to: 1 }]),
            "{cut:?}"
        );
        let lossy = carried(&mut Link::new(impairment(5, 0, 1.0), false), t0, 3);
        assert!(
            lossy.iter().all(|f| f[..] == [Fate::Lost { to: 1 }]),
            "{lossy:?}"
        );
    }

    fn carried(link: &mut Link, t0: Instant, n: u32) -> Vec<Vec<Fate>> {
        let mut rng = Rng::with_seed(17);
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                link.carry(1, t0 + i * MS, 100, &mut rng, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn a_duplicate_is_a_second_copy_due_with_the_first_and_survives_one_loss() {
        let t0 = Instant::now();
        let twice = Impairment {
            duplicate: Chance::of(1.0),
            ..impairment(5, 0, 0.0)
        };
        let copies = carried(&mut Link::new(twice, false), t0, 1).remove(0);
        let due = t0 + 5 * MS;
        let copy = Fate::Deliver {
            to: 1,
            due,
            flip: None,
        };
        assert_eq!(copies, [copy, copy]);
        let lost = Impairment {
            loss: Loss::ALL,
            ..twice
        };
        assert_eq!(carried(&mut Link::new(lost, false), t0, 1)[0], [copy]);
        let corrupt = Impairment {
            corrupt: Chance::of(1.0),
            ..twice
        };
        let copies = carried(&mut Link::new(corrupt, false), t0, 1).remove(0);
        assert!(
            copies.iter().all(
                |c| matches!(c, Fate::Deliver { flip: Some(f), .. } if (f.byte as usize) < 100)
            ),
            "{copies:?}"
        );
    }

    #[test]
    fn a_frame_reordered_leaves_at_once_even_on_a_fifo_link() {
        let t0 = Instant::now();
        let reordering = Impairment {
            reorder: Reorder {
                chance: Chance::of(1.0),
                gap: 5,
            },
            ..impairment(10, 4, 0.0)
        };
        let fates = carried(&mut Link::new(reordering, false), t0, 20);
        let dues: Vec<Instant> = fates
            .iter()
            .map(|f| match f[..] {
                [Fate::Deliver { due, .. }] => due,
                _ => panic!("{f:?}"),
            })
            .collect();
        for (i, due) in (0u32..).zip(&dues) {
            if i % 5 == 4 {
                assert_eq!(*due, t0 + i * MS, "frame {i} is sent at once");
            } else {
                assert!(*due >= t0 + i * MS + 6 * MS, "frame {i} is delayed");
            }
        }
        let delayed: Vec<&Instant> = (0..)
            .zip(&dues)
            .filter(|(i, _)| i % 5 != 4)
            .map(|(_, d)| d)
            .collect();
        assert!(
            delayed.windows(2).all(|w| w[0] <= w[1]),
            "the delayed stay FIFO"
        );
    }

    /// 8 Mbit/s: a frame of 1000 bytes takes 1 ms.
    const EIGHT_MBIT: Rate = Rate {
        bits_per_second: 8_000_000,
        packet_overhead: 0,
        cell_size: 0,
        cell_overhead: 0,
    };

    /// The due times of frames of 1000 bytes entering at `arrivals`.
    fn dues(link: &mut Link, arrivals: &[Instant]) -> Vec<Fate> {
        let mut rng = Rng::with_seed(23);
        let mut out = Vec::new();
        for at in arrivals {
            link.carry(1, *at, 1000, &mut rng, &mut out);
        }
        out
    }

    fn deliver(due: Instant) -> Fate {
        Fate::Deliver {
            to: 1,
            due,
            flip: None,
        }
    }

    #[test]
    fn a_rate_spaces_frames_by_their_transmit_time_after_the_delay() {
        let t0 = Instant::now();
        let rated = Impairment {
            rate: Some(EIGHT_MBIT),
            ..impairment(5, 0, 0.0)
        };
        // Three at once queue behind each other; one after the link went
        // idle takes its delay and its own transmit time only.
        let fates = dues(&mut Link::new(rated, false), &[t0, t0, t0, t0 + 20 * MS]);
        let expected = [6, 7, 8, 26].map(|ms| deliver(t0 + ms * MS));
        assert_eq!(fates, expected);
        // A duplicate takes the link's time too.
        let twice = Impairment {
            duplicate: Chance::of(1.0),
            ..rated
        };
        let fates = dues(&mut Link::new(twice, true), &[t0]);
        assert_eq!(fates, [6, 7].map(|ms| deliver(t0 + ms * MS)));
    }

    #[test]
    fn a_limit_drops_what_the_link_cannot_hold_before_it_takes_the_rates_time() {
        let t0 = Instant::now();
        let limited = Impairment {
            rate: Some(EIGHT_MBIT),
            limit: Some(2),
            ..impairment(5, 0, 0.0)
        };
        let mut link = Link::new(limited, false);
        let fates = dues(&mut link, &[t0, t0, t0, t0 + 6 * MS, t0 + 7 * MS]);
        let overflowed = Fate::Overflowed { to: 1 };
        // The third finds two held; at 6 ms the first has left, at 7 ms the
        // second: each takes the link after the one before it.
        let expected = [
            deliver(t0 + 6 * MS),
            deliver(t0 + 7 * MS),
            overflowed,
            deliver(t0 + 12 * MS),
            deliver(t0 + 13 * MS),
        ];
        assert_eq!(fates, expected);
        let mut plain = Link::new(
            Impairment {
                limit: Some(3),
                ..impairment(10, 0, 0.0)
            },
            true,
        );
        let fates = dues(&mut plain, &[t0; 5]);
        let kept = fates
            .iter()
            .filter(|f| matches!(f, Fate::Deliver { .. }))
            .count();
        assert_eq!(kept, 3, "{fates:?}");
    }

    #[test]
    fn a_slot_holds_delayed_frames_for_its_opening_and_a_reordered_one_skips_it() {
        let t0 = Instant::now();
        let slotted = Impairment {
            slot: Some(Slot {
                spacing: SlotSpacing::Range {
                    min: 10 * MS,
                    max: 10 * MS,
                },
                packets: None,
                bytes: None,
            }),
            reorder: Reorder {
                chance: Chance::of(1.0),
                gap: 3,
            },
            ..impairment(5, 0, 0.0)
        };
        // Ready at 5 and 6 ms, both in the slot armed at 5 ms; the third is
        // sent at once; the fourth, ready at 8 ms, still finds that slot.
        let fates = dues(
            &mut Link::new(slotted, false),
            &[t0, t0 + MS, t0 + 2 * MS, t0 + 3 * MS],
        );
        let expected = [15, 15, 2, 15].map(|ms| deliver(t0 + ms * MS));
        assert_eq!(fates, expected);
    }
}
