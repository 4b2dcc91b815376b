//! The link judge against seeded synthetic links: a netem-like simulator
//! makes the records a real link would, so each verdict is checked both on a
//! link that does what it was told and on one that does not.

use std::time::Duration;

use super::expect::Expectation;
use super::*;
use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::{Chance, Distribution, Loss, Rate, Reorder};
use crate::lab::scenario::link_probe::record::Arrival;

const MS: Duration = Duration::from_millis(1);

fn verify() -> VerifySettings {
    VerifySettings {
        tolerance: Duration::from_micros(500),
        tolerance_percent: 5.0,
        samples: 5,
        warmup: 1,
        time_limit: Duration::from_secs(60),
        calibrate: false,
        link: Some(crate::lab::plan::LinkProbing::default()),
    }
}

/// A link as netem runs it, one frame every `spacing` (see `expect` for the
/// rules); `fifo`: the emulator's way, no frame before an earlier one.
struct Sim {
    link: Impairment,
    spacing: Duration,
    packets: u64,
    fifo: bool,
    seed: u64,
}

impl Sim {
    fn new(link: Impairment, spacing: Duration, packets: u64) -> Sim {
        Sim {
            link,
            spacing,
            packets,
            fifo: false,
            seed: 7,
        }
    }

    fn record(&self) -> PairRecord {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let link = self.link;
        let payload = 64;
        let wire = payload + crate::lab::scenario::link_probe::record::HEADERS_BYTES;
        let mut bad_state = false;
        let mut lose = |rng: &mut fastrand::Rng| match link.loss {
            Loss::Random(c) => rng.f64() < c.probability,
            Loss::GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            } => {
                bad_state = if bad_state {
                    rng.f64() >= r
                } else {
                    rng.f64() < p
                };
                rng.f64() < if bad_state { bad_loss } else { good_loss }
            }
            Loss::FourState { .. } => unimplemented!("not simulated"),
        };
        let jitter = |rng: &mut fastrand::Rng| {
            let j = link.jitter.as_secs_f64();
            let offset = match link.distribution {
                Distribution::Normal => {
                    // Box-Muller.
                    let (u, v) = (rng.f64().max(1e-300), rng.f64());
                    j * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
                }
                _ => (rng.f64() * 2.0 - 1.0) * j,
            };
            Duration::from_secs_f64((link.delay.as_secs_f64() + offset).max(0.0))
        };
        let (mut counter, mut last_due, mut line_free) = (0u32, Duration::ZERO, Duration::ZERO);
        let mut arrivals = Vec::new();
        for seq in 0..self.packets {
            let sent = self.spacing * seq as u32;
            let dup = rng.f64() < link.duplicate.probability;
            let lost = lose(&mut rng);
            let copies = u32::from(dup) + 1 - u32::from(lost);
            for copy in 0..copies {
                // The clone goes through loss again.
                if copy == 1 && lose(&mut rng) {
                    continue;
                }
                let gap = link.reorder.gap.max(1);
                let mut due = if link.reorder.chance.is_some()
                    && counter >= gap - 1
                    && rng.f64() < link.reorder.chance.probability
                {
                    counter = 0;
                    sent
                } else {
                    counter += 1;
                    sent + jitter(&mut rng)
                };
                if let Some(rate) = link.rate {
                    line_free = line_free.max(sent) + rate.transmit_time(wire);
                    due = line_free + link.delay;
                }
                if self.fifo {
                    due = due.max(last_due);
                    last_due = due;
                }
                // A corrupted frame reaches the receiver, which drops it
                // unless the bit flipped is one of the few it does not check.
                if rng.f64() < link.corrupt.probability
                    && rng.f64() >= expect::UNNOTICED_BITS / (8.0 * wire as f64)
                {
                    continue;
                }
                arrivals.push(Arrival {
                    seq,
                    sent,
                    received: due,
                });
            }
        }
        arrivals.sort_by_key(|a| a.received);
        PairRecord {
            from: "a".into(),
            to: "b".into(),
            sent: self.packets,
            arrivals,
            overflow: 0,
            spacing: self.spacing,
            payload_bytes: payload,
        }
    }

    fn judge(&self) -> PairLinks {
        judge(
            &self.record(),
            &Expectation::single(self.link),
            !self.fifo,
            &verify(),
        )
    }
}

fn link(delay_ms: u64, jitter_ms: u64, loss: f64) -> Impairment {
    Impairment {
        delay: MS * delay_ms as u32,
        jitter: MS * jitter_ms as u32,
        loss: Loss::random(loss),
        ..Impairment::default()
    }
}

fn assert_all_pass(pair: &PairLinks) {
    assert!(pair.ok(), "{}", pair.render());
}

fn verdict(pair: &PairLinks, name: &str) -> FigureVerdict {
    pair.figure(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .verdict
}

#[test]
fn a_link_that_does_what_it_was_told_passes_every_figure() {
    for seed in 1..=5 {
        let sim = Sim {
            seed,
            ..Sim::new(link(20, 4, 0.05), 10 * MS, 10_000)
        };
        let pair = sim.judge();
        assert_all_pass(&pair);
        for name in ["delay.p10", "delay.p50", "delay.p90", "loss", "loss.burst"] {
            assert_eq!(
                verdict(&pair, name),
                FigureVerdict::Pass,
                "{}",
                pair.render()
            );
        }
        let p10 = pair.figure("delay.p10").unwrap();
        assert!((p10.expected.unwrap() - 16.8).abs() < 1e-6, "{p10:?}");
    }
}

#[test]
fn a_loss_asked_but_not_applied_fails_naming_both_figures() {
    let told = link(5, 0, 0.01);
    let applied = Sim::new(link(5, 0, 0.0), MS, 10_000).record();
    let pair = judge(&applied, &Expectation::single(told), true, &verify());
    let loss = pair.figure("loss").unwrap();
    assert_eq!(loss.verdict, FigureVerdict::Fail, "{}", pair.render());
    assert_eq!(loss.measured, Some(0.0));
    assert_eq!(loss.expected, Some(0.01));
    let (low, high) = loss.interval.unwrap();
    assert!(low == 0.0 && high < 0.001 + super::PATH_SHARE, "{loss:?}");
    let text = pair.render();
    assert!(
        text.contains("FAIL  loss       measured 0.0000 expected 0.0100"),
        "{text}"
    );
    // Only the loss is wrong: the delay is what was asked.
    assert_eq!(verdict(&pair, "delay.p50"), FigureVerdict::Pass);
}

#[test]
fn a_delay_off_by_more_than_the_tolerance_fails_and_within_passes() {
    let record = Sim::new(link(20, 0, 0.0), 10 * MS, 1000).record();
    let off = judge(
        &record,
        &Expectation::single(link(22, 0, 0.0)),
        true,
        &verify(),
    );
    assert_eq!(
        verdict(&off, "delay.p50"),
        FigureVerdict::Fail,
        "{}",
        off.render()
    );
    let near = judge(
        &record,
        &Expectation::single(Impairment {
            delay: Duration::from_micros(20_900),
            ..link(0, 0, 0.0)
        }),
        true,
        &verify(),
    );
    // 5% of 20.9 ms is 1.045 ms: 20 ms is within.
    assert_eq!(
        verdict(&near, "delay.p50"),
        FigureVerdict::Pass,
        "{}",
        near.render()
    );
}

#[test]
fn duplicates_reorders_and_corruption_of_netem_pass_and_their_absence_fails() {
    let shaped = Impairment {
        duplicate: Chance::of(0.03),
        corrupt: Chance::of(0.02),
        reorder: Reorder {
            chance: Chance::of(0.25),
            gap: 5,
        },
        ..link(10, 0, 0.02)
    };
    for seed in 1..=3 {
        let sim = Sim {
            seed,
            ..Sim::new(shaped, MS, 20_000)
        };
        let pair = sim.judge();
        assert_all_pass(&pair);
        for name in ["loss", "duplicate", "reorder"] {
            assert_eq!(
                verdict(&pair, name),
                FigureVerdict::Pass,
                "{}",
                pair.render()
            );
        }
        // One frame in 4 + 4 goes at once, ahead of 9 delayed ones: the
        // immediate ones are p10.
        assert_eq!(pair.figure("delay.p10").unwrap().measured, Some(0.0));
    }
    let plain = Sim::new(link(10, 0, 0.02), MS, 20_000).record();
    let pair = judge(&plain, &Expectation::single(shaped), true, &verify());
    for name in ["duplicate", "reorder", "delay.p10"] {
        assert_eq!(
            verdict(&pair, name),
            FigureVerdict::Fail,
            "{}",
            pair.render()
        );
    }
}

#[test]
fn jitter_reorders_on_netem_as_the_integral_says_and_not_on_a_fifo_link() {
    for distribution in [Distribution::Uniform, Distribution::Normal] {
        let jittery = Impairment {
            distribution,
            ..link(20, 4, 0.0)
        };
        let netem = Sim::new(jittery, 2 * MS, 20_000).judge();
        assert_all_pass(&netem);
        let reorder = netem.figure("reorder").unwrap();
        assert!(reorder.measured.unwrap() > 0.1, "{}", netem.render());
        let fifo = Sim {
            fifo: true,
            ..Sim::new(jittery, 2 * MS, 20_000)
        }
        .judge();
        assert_all_pass(&fifo);
        assert_eq!(fifo.figure("reorder").unwrap().measured, Some(0.0));
        // A FIFO link holds frames back: its quantiles rise above the law's.
        let p50 = fifo.figure("delay.p50").unwrap();
        assert!(p50.expected.unwrap() > 20.5, "{}", fifo.render());
    }
}

#[test]
fn a_gilbert_elliott_link_passes_with_its_runs_and_a_random_one_fails_them() {
    let bursty = Impairment {
        loss: Loss::GilbertElliott {
            p: 0.01,
            r: 0.25,
            bad_loss: 1.0,
            good_loss: 0.0,
        },
        ..link(5, 0, 0.0)
    };
    let record = Sim::new(bursty, MS, 50_000).record();
    let pair = judge(&record, &Expectation::single(bursty), true, &verify());
    assert_all_pass(&pair);
    let burst = pair.figure("loss.burst").unwrap();
    assert_eq!(burst.expected, Some(4.0));
    // Told random loss of the same mean, the runs give it away.
    let random = link(5, 0, 0.01 / 0.26);
    let pair = judge(&record, &Expectation::single(random), true, &verify());
    assert_eq!(
        verdict(&pair, "loss.burst"),
        FigureVerdict::Fail,
        "{}",
        pair.render()
    );
}

#[test]
fn a_saturating_flow_gets_the_rate() {
    let rate = Rate {
        bits_per_second: 1_000_000,
        packet_overhead: 0,
        cell_size: 0,
        cell_overhead: 0,
    };
    let limited = Impairment {
        rate: Some(rate),
        ..link(5, 0, 0.0)
    };
    // 106-byte frames take 848 us at 1 Mbit/s; one every 500 us saturates it.
    let sim = Sim::new(limited, Duration::from_micros(500), 5000);
    let pair = sim.judge();
    let figure = pair.figure("rate").unwrap();
    assert_eq!(figure.verdict, FigureVerdict::Pass, "{}", pair.render());
    assert!((figure.expected.unwrap() - 1e6 / 848.0).abs() < 0.01);
    // Told 1 Mbit/s, the link gives 800 kbit/s: both saturated, 20% short.
    let slower = Impairment {
        rate: Some(Rate {
            bits_per_second: 800_000,
            ..rate
        }),
        ..limited
    };
    let record = Sim::new(slower, Duration::from_micros(500), 5000).record();
    let pair = judge(&record, &Expectation::single(limited), true, &verify());
    assert_eq!(
        verdict(&pair, "rate"),
        FigureVerdict::Fail,
        "{}",
        pair.render()
    );
}

#[test]
fn counts_follow_arrival_order_and_ignore_sequences_never_sent() {
    let at = |seq: u64, ms: u32| Arrival {
        seq,
        sent: MS * seq as u32,
        received: MS * ms,
    };
    let record = PairRecord {
        from: "a".into(),
        to: "b".into(),
        sent: 7,
        // 0, 2, 1 (late), 1 again, 5, 6, and 99, which was never sent.
        arrivals: vec![
            at(0, 10),
            at(2, 12),
            at(1, 13),
            at(1, 14),
            at(99, 15),
            at(5, 16),
            at(6, 17),
        ],
        overflow: 0,
        spacing: MS,
        payload_bytes: 64,
    };
    let m = measure(&record);
    assert_eq!(m.received, 5);
    assert_eq!(m.lost, 2);
    assert_eq!(m.loss_runs, 1);
    assert_eq!(m.duplicated, 1);
    assert_eq!(m.reordered, 1);
    assert_eq!(m.delays[1], Some(11 * MS));
}

#[test]
fn a_confidence_gives_its_normal_quantile() {
    assert!((z_of(0.99) - Z99).abs() < 1e-4, "{}", z_of(0.99));
    assert!((z_of(0.999) - 3.290_527).abs() < 1e-4, "{}", z_of(0.999));
    assert!((z_of(0.95) - 1.959_964).abs() < 1e-4);
}

#[test]
fn the_wilson_interval_of_nothing_in_ten_thousand_is_below_a_thousandth() {
    let (low, high) = wilson(0.0, 10_000.0, Z99);
    assert_eq!(low, 0.0);
    assert!((high - 6.634_9 / 10_006.634_9).abs() < 1e-6, "{high}");
    let (low, high) = wilson(500.0, 10_000.0, Z99);
    assert!(
        low < 0.05 && 0.05 < high && high - low < 0.012,
        "{low} {high}"
    );
    assert_eq!(wilson(0.0, 0.0, Z99), (0.0, 1.0));
}

#[test]
fn a_pair_with_nothing_sent_or_received_fails_what_was_expected() {
    let record = PairRecord {
        from: "a".into(),
        to: "b".into(),
        sent: 100,
        arrivals: Vec::new(),
        overflow: 0,
        spacing: MS,
        payload_bytes: 64,
    };
    let pair = judge(
        &record,
        &Expectation::single(link(5, 0, 0.0)),
        true,
        &verify(),
    );
    assert_eq!(pair.received, 0);
    for name in ["delay.p50", "loss"] {
        assert_eq!(
            verdict(&pair, name),
            FigureVerdict::Fail,
            "{}",
            pair.render()
        );
    }
}
