//! What the emulator's forwarding decision costs per frame, every shape on
//! against delay alone: an ignored test that `scripts/bench-shapes.sh` runs
//! in release mode and prints side by side. In-process, so the figure is the
//! decision's (switching, draws, state machines), not the engine's sleep and
//! spin, which a whole-process CPU figure is mostly made of.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::forward::Forwarder;
use crate::lab::plan::impairment::Impairment;
use crate::lab::plan::shape::{Chance, Distribution, Loss, Rate, Reorder, Slot, SlotSpacing};

const FRAMES: usize = 2_000_000;

fn every_shape() -> Impairment {
    Impairment {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        distribution: Distribution::Normal,
        delay_correlation: 0.25,
        loss: Loss::GilbertElliott {
            p: 0.01,
            r: 0.3,
            bad_loss: 1.0,
            good_loss: 0.0,
        },
        duplicate: Chance::of(0.01),
        reorder: Reorder {
            chance: Chance::of(0.1),
            gap: 5,
        },
        corrupt: Chance::of(0.001),
        rate: Some(Rate {
            bits_per_second: 1_000_000_000,
            packet_overhead: 14,
            cell_size: 0,
            cell_overhead: 0,
        }),
        limit: Some(5000),
        slot: Some(Slot {
            spacing: SlotSpacing::Range {
                min: Duration::from_micros(100),
                max: Duration::from_micros(200),
            },
            packets: Some(64),
            bytes: None,
        }),
        ..Impairment::default()
    }
}

/// Nanoseconds per frame routed from port 0 to port 1 of a two-port switch
/// whose links all have `link`, frames arriving every 20 us.
fn cost(link: Impairment) -> f64 {
    let mut forwarder = Forwarder::new(&vec![vec![link; 2]; 2], 0, &[], false, 7);
    let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let frame = |dst: [u8; 6], src: [u8; 6]| {
        let mut frame = Vec::from(dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.resize(64, 0);
        frame
    };
    let (to_b, to_a) = (frame(b, a), frame(a, b));
    let mut out = Vec::with_capacity(4);
    let start = Instant::now();
    // Teach the switch where b is, so frames to it are unicast.
    let _ = forwarder.route(1, &to_a, start, &mut out);
    let began = Instant::now();
    for i in 0..FRAMES {
        out.clear();
        let arrival = start + Duration::from_micros(20 * i as u64);
        let _ = black_box(forwarder.route(0, black_box(&to_b), arrival, &mut out));
    }
    began.elapsed().as_nanos() as f64 / FRAMES as f64
}

#[test]
#[ignore = "a benchmark: scripts/bench-shapes.sh runs it in release mode"]
fn forwarding_cost_per_frame_every_shape_against_delay_only() {
    let plain = cost(Impairment {
        delay: Duration::from_millis(5),
        ..Impairment::default()
    });
    let shaped = cost(every_shape());
    println!("forwarding decision per frame ({FRAMES} frames of 64 bytes, one thread):");
    println!("  delay only   {plain:8.1} ns");
    println!("  every shape  {shaped:8.1} ns");
    println!("  ratio        {:8.2}x", shaped / plain);
}
