//! Two links applied in turn (netem on a lab without per-pair classes: the
//! sender's link, then the receiver's, each its own draws). Where the two
//! shapes combine exactly ([`crate::lab::plan::in_series`]: delays add, a
//! shape only one side has is the pair's, independent chances multiply),
//! the combined impairment's figures stand. Where both sides lose, or one
//! duplicates beside the other's losses, or a reorder meets the other
//! side's delay, each copy's trip through the two stages is composed here;
//! what is not modelled says so.

use super::expect::{
    delay_quantile, loss_and_duplicates, loss_inflation, passing_frames, reorder_share,
    reorder_window, thinned, Estimate, Expectation, Expected, Probing, QUANTILES,
};
use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::Loss;

/// What the probe should measure over `stages` applied in turn, from what
/// it would measure over their combined impairment (`at_once`).
pub(super) fn in_turn(
    mut at_once: Expected,
    probing: &Probing,
    [first, second]: [Impairment; 2],
) -> Expected {
    if chances_meet(&first, &second) {
        let [a, b] = [first, second].map(|l| copies(&l, probing.wire_bytes));
        // Each copy out of the first stage goes through the second alone.
        let none = a[0] + a[1] * b[0] + a[2] * b[0] * b[0];
        let one = a[1] * b[1] + a[2] * 2.0 * b[0] * b[1];
        let note = "two links in turn: each copy meets the second link's draws".to_owned();
        at_once.loss = Estimate::with_notes(none, std::slice::from_ref(&note));
        at_once.duplicate = Estimate::with_notes((1.0 - none - one).max(0.0), &[note]);
        at_once.loss_inflation = loss_inflation(&first.loss).max(loss_inflation(&second.loss));
        at_once.loss_burst = Estimate::unknown("runs of losses over two links in turn");
        at_once.loss_continues = 0.0;
    }
    let reorders = [first, second].map(|l| l.reorder.chance.is_some());
    match reorders {
        [true, true] => {
            at_once.reorder = Estimate::unknown("reorders on both links in turn");
            at_once.delay = QUANTILES.map(|_| Estimate::unknown("reorders on both links in turn"));
        }
        [true, false] | [false, true] => {
            let (own, other) = if reorders[0] {
                (first, second)
            } else {
                (second, first)
            };
            at_once.reorder_inflation = reorder_window(&own, probing).max(1.0);
            if other.jitter.is_zero() && other.slot.is_none() && other.rate.is_none() {
                // A frame sent at once skips its own link's delay only; the
                // other link delays every frame alike and keeps their order.
                let alone = Expectation::single(own);
                let passing = passing_frames(&own) * passing_frames(&other);
                let arriving = 1.0 - at_once.loss.value.unwrap_or(0.0);
                at_once.reorder = reorder_share(&alone, probing, passing, arriving);
                let shift = other.delay.as_secs_f64();
                let spaced = thinned(&own, probing);
                at_once.delay = QUANTILES.map(|q| {
                    let mut e = delay_quantile(&alone, &spaced, q);
                    e.value = e.value.map(|v| v + shift);
                    e
                });
            } else {
                let why = "a reorder beside the other link's jitter, rate or slot";
                at_once.reorder = Estimate::unknown(why);
                at_once.delay = QUANTILES.map(|_| Estimate::unknown(why));
            }
        }
        [false, false] => {}
    }
    at_once
}

/// Whether the two links' losses, duplicates and corruption meet in a way
/// the combined impairment does not carry: both lose (unless both lose at
/// random without correlation, which multiply exactly), or one duplicates
/// while the other loses or corrupts.
fn chances_meet(first: &Impairment, second: &Impairment) -> bool {
    let loses = |l: &Impairment| l.loss.mean() > 0.0 || l.corrupt.is_some();
    let plain = |l: &Impairment| {
        matches!(l.loss, Loss::Random(c) if c.correlation == 0.0)
            && l.corrupt.correlation == 0.0
            && !l.duplicate.is_some()
    };
    let both_lose = loses(first) && loses(second) && !(plain(first) && plain(second));
    let duplicate_meets = (first.duplicate.is_some() && loses(second))
        || (second.duplicate.is_some() && loses(first))
        || (first.duplicate.is_some() && second.duplicate.is_some());
    both_lose || duplicate_meets
}

/// The chances that one copy entering `link` leaves it as 0, 1 or 2 intact
/// copies (a corrupted copy is as good as lost: the receiver drops it).
fn copies(link: &Impairment, wire_bytes: usize) -> [f64; 3] {
    let (lost, twice, _, _) = loss_and_duplicates(link, wire_bytes);
    let (none, two) = (lost.value.unwrap_or(0.0), twice.value.unwrap_or(0.0));
    [none, (1.0 - none - two).max(0.0), two]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::expected;
    use super::*;
    use crate::lab::plan::shape::{Chance, Reorder};

    const MS: Duration = Duration::from_millis(1);

    fn probing() -> Probing {
        Probing {
            spacing: 10 * MS,
            wire_bytes: 106,
            jitter_reorders: false,
        }
    }

    fn lossy(loss: Loss) -> Impairment {
        Impairment {
            delay: 5 * MS,
            loss,
            ..Impairment::default()
        }
    }

    #[test]
    fn two_loss_models_in_turn_lose_the_product_of_their_survivals() {
        let ge = lossy(Loss::GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 1.0,
            good_loss: 0.0,
        });
        let random = lossy(Loss::Random(Chance {
            probability: 0.05,
            correlation: 0.0,
        }));
        let e = expected(&Expectation::in_series(ge, random), &probing());
        let want = 1.0 - (1.0 - ge.loss.mean()) * (1.0 - 0.05);
        assert!((e.loss.value.unwrap() - want).abs() < 1e-12, "{e:?}");
        assert_eq!(e.loss_burst.value, None);
        // At once, the sender's model alone would have been expected.
        let at_once = expected(
            &Expectation::single(crate::lab::plan::in_series(&ge, &random)),
            &probing(),
        );
        assert!((at_once.loss.value.unwrap() - ge.loss.mean()).abs() < 1e-12);
    }

    #[test]
    fn plain_random_losses_combine_exactly_and_keep_their_runs() {
        let a = lossy(Loss::Random(Chance {
            probability: 0.1,
            correlation: 0.0,
        }));
        let e = expected(&Expectation::in_series(a, a), &probing());
        assert!((e.loss.value.unwrap() - 0.19).abs() < 1e-12);
        assert!(
            e.loss_burst.value.is_some(),
            "independent losses: runs are geometric"
        );
    }

    #[test]
    fn a_duplicate_then_a_loss_loses_each_copy_apart() {
        let dup = Impairment {
            duplicate: Chance {
                probability: 0.1,
                correlation: 0.0,
            },
            ..Impairment::default()
        };
        let loss = lossy(Loss::Random(Chance {
            probability: 0.2,
            correlation: 0.0,
        }));
        let e = expected(&Expectation::in_series(dup, loss), &probing());
        // Lost: one copy lost (0.9 * 0.2) or both (0.1 * 0.04).
        assert!((e.loss.value.unwrap() - (0.9 * 0.2 + 0.1 * 0.04)).abs() < 1e-12);
        // Twice: both copies through (0.1 * 0.64).
        assert!((e.duplicate.value.unwrap() - 0.1 * 0.64).abs() < 1e-12);
    }

    #[test]
    fn a_reorder_skips_its_own_links_delay_only() {
        let reordered = Impairment {
            delay: 35 * MS,
            reorder: Reorder {
                chance: Chance {
                    probability: 0.2,
                    correlation: 0.0,
                },
                gap: 3,
            },
            ..Impairment::default()
        };
        let plain = Impairment {
            delay: 20 * MS,
            ..Impairment::default()
        };
        let turn = expected(&Expectation::in_series(reordered, plain), &probing());
        let alone = expected(&Expectation::single(reordered), &probing());
        assert!((turn.reorder.value.unwrap() - alone.reorder.value.unwrap()).abs() < 1e-12);
        // p10 is a frame sent at once: the other link's 20 ms only.
        let p10 = turn.delay[0].value.unwrap();
        assert!((p10 - 0.020).abs() < 1e-9, "{p10}");
        // At once, the whole 55 ms would be skipped: more frames overtaken.
        let at_once = expected(
            &Expectation::single(crate::lab::plan::in_series(&reordered, &plain)),
            &probing(),
        );
        assert!(at_once.reorder.value.unwrap() > turn.reorder.value.unwrap());
    }

    #[test]
    fn shapes_on_one_side_only_keep_the_combined_figures() {
        let a = lossy(Loss::GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 1.0,
            good_loss: 0.0,
        });
        let b = Impairment {
            delay: 7 * MS,
            ..Impairment::default()
        };
        let turn = expected(&Expectation::in_series(a, b), &probing());
        let at_once = expected(
            &Expectation::single(crate::lab::plan::in_series(&a, &b)),
            &probing(),
        );
        assert_eq!(turn, at_once);
    }
}
