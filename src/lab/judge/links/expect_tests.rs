use super::*;
use crate::lab::judge::links::law::normal_cdf;
use crate::lab::plan::shape::{Chance, Rate};

const MS: Duration = Duration::from_millis(1);

fn probing(spacing: Duration, jitter_reorders: bool) -> Probing {
    Probing {
        spacing,
        wire_bytes: 106,
        jitter_reorders,
    }
}

fn jittered(distribution: Distribution) -> Impairment {
    Impairment {
        delay: 20 * MS,
        jitter: 4 * MS,
        distribution,
        ..Impairment::default()
    }
}

fn ms(estimate: &Estimate) -> f64 {
    estimate.value.expect("a value") * 1e3
}

#[test]
fn uniform_quantiles_are_linear_and_normal_ones_use_z() {
    let e = expected(
        &Expectation::single(jittered(Distribution::Uniform)),
        &probing(10 * MS, true),
    );
    let got = e.delay.each_ref().map(ms);
    for (g, want) in got.iter().zip([16.8, 20.0, 23.2]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
    let e = expected(
        &Expectation::single(jittered(Distribution::Normal)),
        &probing(10 * MS, true),
    );
    let z = 1.281_551_6;
    let got = e.delay.each_ref().map(ms);
    for (g, want) in got.iter().zip([20.0 - 4.0 * z, 20.0, 20.0 + 4.0 * z]) {
        assert!((g - want).abs() < 1e-3, "{got:?}");
    }
}

#[test]
fn pareto_and_summed_jitters_judge_only_the_median_and_say_so() {
    let e = expected(
        &Expectation::single(jittered(Distribution::Pareto)),
        &probing(10 * MS, true),
    );
    assert_eq!(e.delay[0].value, None);
    assert!(e.delay[0].note.as_deref().unwrap().contains("pareto"));
    assert!((ms(&e.delay[1]) - 20.0).abs() < 1e-6);
    assert!(e.delay[1].note.is_some());
    let two = Expectation::in_series(
        jittered(Distribution::Uniform),
        jittered(Distribution::Uniform),
    );
    assert_eq!(two.jittered_links, 2);
    let e = expected(&two, &probing(10 * MS, true));
    assert_eq!(e.delay[2].value, None);
    assert!((ms(&e.delay[1]) - 40.0).abs() < 1e-6);
    assert!(e.delay[2]
        .note
        .as_deref()
        .unwrap()
        .contains("sum of jitters"));
}

#[test]
fn netem_sends_one_frame_in_gap_minus_one_plus_one_over_p_at_once() {
    let reorder = |p, gap| Reorder {
        chance: Chance::of(p),
        gap,
    };
    assert!((immediate_share(&reorder(0.25, 5)) - 0.125).abs() < 1e-12);
    assert!((immediate_share(&reorder(0.25, 1)) - 0.25).abs() < 1e-12);
    assert!((immediate_share(&reorder(0.25, 0)) - 0.25).abs() < 1e-12);
    assert_eq!(immediate_share(&Reorder::default()), 0.0);
}

#[test]
fn with_gap_one_a_delayed_frame_is_overtaken_when_one_of_the_next_m_goes_at_once() {
    // 10 ms of delay, a frame every ms: the 9 frames after one overtake it.
    let p: f64 = 0.1;
    let link = Impairment {
        delay: 10 * MS,
        reorder: Reorder {
            chance: Chance::of(p),
            gap: 1,
        },
        ..Impairment::default()
    };
    let e = expected(&Expectation::single(link), &probing(MS, true));
    let want = (1.0 - p) * (1.0 - (1.0 - p).powi(9));
    assert!((e.reorder.value.unwrap() - want).abs() < 1e-12, "{e:?}");
    // Frames far apart are never overtaken.
    let e = expected(&Expectation::single(link), &probing(20 * MS, true));
    assert_eq!(e.reorder.value, Some(0.0));
}

#[test]
fn jitter_narrower_than_the_spacing_reorders_nothing_and_a_fifo_link_never() {
    let link = jittered(Distribution::Uniform);
    let e = expected(&Expectation::single(link), &probing(10 * MS, true));
    assert!(e.reorder.value.unwrap().abs() < 1e-9, "{e:?}");
    let e = expected(&Expectation::single(link), &probing(MS, true));
    assert!(e.reorder.value.unwrap() > 0.5, "{e:?}");
    let e = expected(&Expectation::single(link), &probing(MS, false));
    assert_eq!(e.reorder.value, Some(0.0));
    // The FIFO link at 10 ms spacing leaves the law alone.
    let e = expected(&Expectation::single(link), &probing(10 * MS, false));
    assert!((ms(&e.delay[0]) - 16.8).abs() < 1e-6, "{e:?}");
}

#[test]
fn duplicates_that_draw_loss_still_go_once_and_corruption_is_loss_but_in_the_source_mac() {
    let link = Impairment {
        loss: Loss::random(0.1),
        duplicate: Chance::of(0.2),
        corrupt: Chance::of(0.05),
        ..Impairment::default()
    };
    let e = expected(&Expectation::single(link), &probing(MS, true));
    // 106-byte frames: 49 of their 848 bits go unnoticed.
    let (l, d, c) = (0.1, 0.2, 0.05 * (1.0 - 49.0 / 848.0));
    let clone_bad = l + (1.0 - l) * c;
    let lost = (1.0 - d) * clone_bad + d * l * c + d * (1.0 - l) * c * clone_bad;
    assert!((e.loss.value.unwrap() - lost).abs() < 1e-12);
    let twice: f64 = d * (0.9 * (1.0 - c)).powi(2);
    assert!((e.duplicate.value.unwrap() - twice).abs() < 1e-12);
    assert!(e.loss.note.as_deref().unwrap().contains("corrupted"));
    assert_eq!(e.loss_burst.value, None);
}

#[test]
fn runs_of_losses_widen_the_loss_interval() {
    assert_eq!(loss_inflation(&Loss::random(0.1)), 1.0);
    let ge = Loss::GilbertElliott {
        p: 0.01,
        r: 0.24,
        bad_loss: 1.0,
        good_loss: 0.0,
    };
    assert!((loss_inflation(&ge) - 1.75 / 0.25).abs() < 1e-9);
}

#[test]
fn a_rate_adds_its_transmit_time_and_is_expected_only_when_saturated() {
    let link = Impairment {
        delay: 5 * MS,
        rate: Some(Rate {
            bits_per_second: 1_000_000,
            packet_overhead: 0,
            cell_size: 0,
            cell_overhead: 0,
        }),
        ..Impairment::default()
    };
    let slow = expected(&Expectation::single(link), &probing(10 * MS, true));
    assert!((ms(&slow.delay[1]) - 5.848).abs() < 1e-6, "{slow:?}");
    assert_eq!(slow.rate.value, None);
    let fast = expected(&Expectation::single(link), &probing(MS / 2, true));
    assert_eq!(fast.delay[1].value, None);
    assert!((fast.rate.value.unwrap() - 1e6 / 848.0).abs() < 1e-6);
}

#[test]
fn the_normal_cdf_is_right_to_six_places() {
    assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    assert!((normal_cdf(1.281_551_6) - 0.9).abs() < 1e-6);
    assert!((normal_cdf(-2.575_829_3) - 0.005).abs() < 1e-6);
}
