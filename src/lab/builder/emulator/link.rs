//! What a frame's trip through the emulator will be: through which links it goes,
//! whether each copy is lost, and when each copy is due. Pure: time and randomness
//! come in as arguments, so the timing rules are tested without a clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use fastrand::Rng;

use super::shape::{Flip, Shaper};
use super::switch::ETHERNET_HEADER_LEN;
use super::switch::{Destination, Mac, MacTable};
use crate::lab::plan::impairment::Impairment;

/// Where an IPv4 header's destination address lies in an untagged frame.
const IPV4_DESTINATION: std::ops::Range<usize> = ETHERNET_HEADER_LEN + 16..ETHERNET_HEADER_LEN + 20;

/// One direction between two ports: its impairment, netem's state for it
/// ([`Shaper`]), the due time of the last frame it delayed, which keeps it
/// FIFO under jitter, when its rate lets the next frame out, and the due
/// times of the copies it holds, for its limit.
#[derive(Debug, Clone)]
pub struct Link {
    impairment: Impairment,
    reorder: bool,
    last_due: Option<Instant>,
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
            last_due: None,
            shaper: Shaper::new(&impairment),
            busy_until: None,
            held: BinaryHeap::with_capacity(room),
        }
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
            if let Some(last) = self.last_due {
                due = due.max(last);
            }
            self.last_due = Some(due);
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

/// What happens to one copy of a frame (a duplicated frame has two).
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
    /// Dropped as the link held its limit.
    Overflowed {
        /// Destination port.
        to: usize,
    },
}

/// Why a frame was not forwarded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Shorter than an Ethernet header.
    Runt,
    /// Its destination is on the port it came from, or, for a frame from
    /// another host, behind the uplink too (split horizon).
    Filtered,
}

/// The switch and every link between its ports. The last ports may be other
/// hosts' uplinks: a frame from one of them is never sent to another (each
/// host replicates its own floods to every host: VXLAN's head-end
/// replication), so a stretched segment has no loops and no duplicates.
///
/// A link per matrix cell: a row per port, a column per port and then one per
/// remote node (a node on another host). A frame from a local port to another
/// host that is IPv4 to a remote node takes that node's column, so the sender's
/// host can apply a cross-host pair whole; any other frame (ARP, broadcasts)
/// takes the column of the port it goes to.
#[derive(Debug)]
pub struct Forwarder {
    ports: usize,
    /// Ports below this are local (TAPs); the others are remote hosts.
    locals: usize,
    /// The remote nodes' addresses, in their columns' order (after the ports').
    remote_nodes: Vec<[u8; 4]>,
    /// Links per row: the ports, then the remote nodes.
    columns: usize,
    links: Vec<Link>,
    table: MacTable,
    /// Every link's draws come from it; a seed makes a lab run reproducible.
    rng: Rng,
}

impl Forwarder {
    /// A switch whose links follow `matrix` (row `from`, column `to`, then a
    /// column per remote node), of which the last `remotes` ports are other
    /// hosts and `remote_nodes` the addresses of the remote nodes' columns.
    /// A cell the matrix lacks passes frames unimpaired.
    pub fn new(
        matrix: &[Vec<Impairment>],
        remotes: usize,
        remote_nodes: &[Ipv4Addr],
        reorder: bool,
        seed: u64,
    ) -> Self {
        super::shape::prepare();
        let ports = matrix.len();
        let columns = ports + remote_nodes.len();
        let mut forwarder = Self {
            ports,
            locals: ports.saturating_sub(remotes),
            remote_nodes: remote_nodes.iter().map(|a| a.octets()).collect(),
            columns,
            links: vec![Link::new(Impairment::default(), reorder); ports * columns],
            table: MacTable::default(),
            rng: Rng::with_seed(seed),
        };
        forwarder.set_matrix(matrix);
        forwarder
    }

    /// Follows `matrix` from now on. A link whose impairment is unchanged keeps
    /// its state; a changed one starts afresh (frames already queued keep the
    /// due time they were given).
    pub fn set_matrix(&mut self, matrix: &[Vec<Impairment>]) {
        let columns = self.columns;
        for (index, link) in self.links.iter_mut().enumerate() {
            let impairment = matrix
                .get(index / columns)
                .and_then(|row| row.get(index % columns))
                .copied()
                .unwrap_or_default();
            if link.impairment != impairment {
                *link = Link::new(impairment, link.reorder);
            }
        }
    }

    /// Decides the fate of `frame`, which arrived on port `from` at `arrival`; the
    /// copies' fates are appended to `out` (per destination port, one, or two
    /// when duplicated).
    pub fn route(
        &mut self,
        from: usize,
        frame: &[u8],
        arrival: Instant,
        out: &mut Vec<Fate>,
    ) -> Result<(), Rejected> {
        if frame.len() < ETHERNET_HEADER_LEN {
            return Err(Rejected::Runt);
        }
        let (Some(dst), Some(src)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            return Err(Rejected::Runt);
        };
        // Split horizon: what came from another host goes to local ports only.
        let (reach, node) = if from < self.locals {
            (self.ports, self.remote_node_column(frame))
        } else {
            (self.locals, None)
        };
        match self.table.forward(from, dst, src, arrival) {
            Destination::Filter => return Err(Rejected::Filtered),
            Destination::Port(to) if to >= reach => return Err(Rejected::Filtered),
            Destination::Port(to) => self.fate(from, to, node, frame.len(), arrival, out),
            Destination::Flood => {
                for to in (0..reach).filter(|to| *to != from) {
                    self.fate(from, to, node, frame.len(), arrival, out);
                }
            }
        }
        Ok(())
    }

    /// The column of the remote node an untagged IPv4 frame is addressed to.
    /// A linear scan: a lab has tens of nodes, and this runs once per frame.
    fn remote_node_column(&self, frame: &[u8]) -> Option<usize> {
        if self.remote_nodes.is_empty()
            || frame.get(12..14) != Some(&[0x08, 0x00][..])
            || frame.get(ETHERNET_HEADER_LEN).map(|b| b >> 4) != Some(4)
        {
            return None;
        }
        let destination = frame.get(IPV4_DESTINATION)?;
        let index = self.remote_nodes.iter().position(|a| a == destination)?;
        Some(self.ports + index)
    }

    /// Appends the fates of the copies to port `to` of a frame of `len`
    /// bytes; `node` is the remote node's column the frame is addressed to,
    /// which a copy to another host takes.
    fn fate(
        &mut self,
        from: usize,
        to: usize,
        node: Option<usize>,
        len: usize,
        arrival: Instant,
        out: &mut Vec<Fate>,
    ) {
        let column = match node {
            Some(column) if to >= self.locals => column,
            _ => to,
        };
        let link = &mut self.links[from * self.columns + column];
        link.carry(to, arrival, len, &mut self.rng, out);
    }
}

fn mac_at(frame: &[u8], offset: usize) -> Option<Mac> {
    frame.get(offset..offset + 6)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::shape::{Chance, Loss, Rate, Reorder, Slot, SlotSpacing};

    const MS: Duration = Duration::from_millis(1);

    fn impairment(delay_ms: u32, jitter_ms: u32, loss: f64) -> Impairment {
        Impairment {
            delay: delay_ms * MS,
            jitter: jitter_ms * MS,
            loss: crate::lab::plan::shape::Loss::random(loss),
            ..Impairment::default()
        }
    }

    fn frame(dst: Mac, src: Mac) -> Vec<u8> {
        let mut frame = Vec::from(dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00, 0, 0]);
        frame
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

    #[test]
    fn routes_with_each_pairs_delay_and_floods_one_copy_per_port() {
        let a = [0x02, 0, 0, 0, 0, 0xa];
        let b = [0x02, 0, 0, 0, 0, 0xb];
        let matrix = vec![
            vec![
                impairment(0, 0, 0.0),
                impairment(5, 0, 0.0),
                impairment(7, 0, 1.0),
            ],
            vec![
                impairment(3, 0, 0.0),
                impairment(0, 0, 0.0),
                impairment(0, 0, 0.0),
            ],
            vec![
                impairment(0, 0, 0.0),
                impairment(0, 0, 0.0),
                impairment(0, 0, 0.0),
            ],
        ];
        let mut forwarder = Forwarder::new(&matrix, 0, &[], false, 5);
        let t0 = Instant::now();
        let mut out = Vec::new();
        forwarder
            .route(0, &frame([0xff; 6], a), t0, &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![
                Fate::Deliver {
                    to: 1,
                    due: t0 + 5 * MS,
                    flip: None
                },
                Fate::Lost { to: 2 }
            ]
        );
        out.clear();
        forwarder.route(1, &frame(a, b), t0, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Fate::Deliver {
                to: 0,
                due: t0 + 3 * MS,
                flip: None
            }]
        );
        out.clear();
        assert_eq!(
            forwarder.route(1, &frame(b, a), t0, &mut out),
            Err(Rejected::Filtered)
        );
        assert_eq!(
            forwarder.route(0, &[0; 13], t0, &mut out),
            Err(Rejected::Runt)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_seed_makes_jitter_and_loss_reproducible() {
        let jittery = impairment(10, 4, 0.3);
        let matrix = vec![vec![jittery; 2]; 2];
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let t0 = Instant::now();
        let fates = |seed: u64| {
            let mut forwarder = Forwarder::new(&matrix, 0, &[], true, seed);
            let mut out = Vec::new();
            for n in 0..200u32 {
                let at = t0 + n * MS;
                forwarder.route(0, &frame(b, a), at, &mut out).unwrap();
            }
            out
        };
        assert_eq!(fates(21), fates(21));
        assert_ne!(fates(21), fates(22));
    }

    /// Ports 0 and 1 local, 2 and 3 other hosts; the wire everywhere.
    fn stretched() -> Forwarder {
        Forwarder::new(&vec![vec![Impairment::default(); 4]; 4], 2, &[], false, 9)
    }

    fn destinations(out: &[Fate]) -> Vec<usize> {
        out.iter()
            .map(|v| match *v {
                Fate::Deliver { to, .. } | Fate::Lost { to } | Fate::Overflowed { to } => to,
            })
            .collect()
    }

    #[test]
    fn a_local_flood_reaches_every_host_once_and_a_remote_one_stays_local() {
        let (a, b) = ([0x02, 0, 0, 0, 0, 0xa], [0x02, 0, 0, 0, 0, 0xb]);
        let mut forwarder = stretched();
        let now = Instant::now();
        let mut out = Vec::new();
        forwarder
            .route(0, &frame([0xff; 6], a), now, &mut out)
            .unwrap();
        assert_eq!(destinations(&out), [1, 2, 3]);
        out.clear();
        // Split horizon: host 2 sent its flood to host 3 itself.
        forwarder
            .route(2, &frame([0xff; 6], b), now, &mut out)
            .unwrap();
        assert_eq!(destinations(&out), [0, 1]);
    }

    #[test]
    fn learns_across_the_uplink_and_sends_known_unicast_to_one_host() {
        let (a, b, c) = (
            [0x02, 0, 0, 0, 0, 0xa],
            [0x02, 0, 0, 0, 0, 0xb],
            [0x02, 0, 0, 0, 0, 0xc],
        );
        let mut forwarder = stretched();
        let now = Instant::now();
        let mut out = Vec::new();
        // b answers from host 3, c from host 2: both are learned on those ports.
        forwarder.route(3, &frame(a, b), now, &mut out).unwrap();
        assert_eq!(destinations(&out), [0, 1], "a is not known yet");
        out.clear();
        forwarder.route(2, &frame(a, c), now, &mut out).unwrap();
        out.clear();
        forwarder.route(0, &frame(b, a), now, &mut out).unwrap();
        assert_eq!(destinations(&out), [3]);
        out.clear();
        forwarder.route(1, &frame(c, a), now, &mut out).unwrap();
        assert_eq!(destinations(&out), [2]);
        out.clear();
        // a was learned on port 1 just now; a frame from a host reaches it there.
        forwarder.route(3, &frame(a, b), now, &mut out).unwrap();
        assert_eq!(destinations(&out), [1]);
        out.clear();
        // Host 3 never relays to host 2, even for an address learned there.
        assert_eq!(
            forwarder.route(3, &frame(c, b), now, &mut out),
            Err(Rejected::Filtered)
        );
        assert!(out.is_empty());
    }

    /// Carries `n` frames of 100 bytes, one per millisecond from `t0`.
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
            copies
                .iter()
                .all(|c| matches!(c, Fate::Deliver { flip: Some(f), .. } if f.byte >= 14)),
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

    #[test]
    fn a_loss_models_state_lasts_until_the_links_impairment_changes() {
        // Good to bad on the first frame, never back: the first is delivered
        // (good loses nothing), every later one lost.
        let trap = Impairment {
            loss: Loss::GilbertElliott {
                p: 1.0,
                r: 0.0,
                bad_loss: 1.0,
                good_loss: 0.0,
            },
            ..Impairment::default()
        };
        let wire = Impairment::default();
        let mut forwarder = Forwarder::new(&[vec![wire, trap], vec![wire, wire]], 0, &[], false, 7);
        let frame = [0xffu8; 60];
        let now = Instant::now();
        let send = |forwarder: &mut Forwarder| {
            let mut out = Vec::new();
            forwarder.route(0, &frame, now, &mut out).unwrap();
            matches!(out[..], [Fate::Lost { .. }])
        };
        assert!(!send(&mut forwarder));
        assert!(send(&mut forwarder));
        forwarder.set_matrix(&[vec![wire, trap], vec![wire, wire]]);
        assert!(send(&mut forwarder), "unchanged: still in the bad state");
        let slower = Impairment { delay: MS, ..trap };
        forwarder.set_matrix(&[vec![wire, slower], vec![wire, wire]]);
        assert!(!send(&mut forwarder), "changed: good again");
        assert!(send(&mut forwarder));
    }

    #[test]
    fn a_new_matrix_takes_effect_for_the_next_frame() {
        let wire = Impairment::default();
        let slow = Impairment {
            delay: Duration::from_millis(30),
            ..Impairment::default()
        };
        let mut forwarder = Forwarder::new(&[vec![wire, wire], vec![wire, wire]], 0, &[], false, 7);
        let frame = [0xffu8; 14];
        let now = Instant::now();
        let mut out = Vec::new();
        forwarder.route(0, &frame, now, &mut out).unwrap();
        let before: Vec<Fate> = std::mem::take(&mut out);
        forwarder.set_matrix(&[vec![wire, slow], vec![wire, wire]]);
        forwarder.route(0, &frame, now, &mut out).unwrap();
        assert_ne!(before, out, "the delay of 0 -> 1 changed");
        assert!(
            out.iter().any(|v| matches!(v, Fate::Deliver { due, .. } if *due >= now + Duration::from_millis(30))),
            "{out:?}"
        );
    }

    /// An IPv4 frame (no options, no payload) from `src` to `dst` at layer 3.
    fn ipv4(dst: Mac, src: Mac, to: Ipv4Addr) -> Vec<u8> {
        let mut frame = Vec::from(dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&[198, 18, 0, 1]);
        frame.extend_from_slice(&to.octets());
        frame
    }

    /// Ports 0 and 1 local, 2 and 3 other hosts; remote nodes X (on host 2)
    /// and Y (on host 3) are columns 4 and 5. From port 0: its own link
    /// 1 ms, to X 7 ms, to Y cut; from port 1 to X 9 ms. From the hosts:
    /// the wire (the sender's host applied the pair).
    fn paired() -> (Forwarder, Ipv4Addr, Ipv4Addr) {
        let (x, y) = (Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11));
        let wire = Impairment::default();
        let own = impairment(1, 0, 0.0);
        let matrix = vec![
            vec![
                wire,
                wire,
                own,
                own,
                impairment(7, 0, 0.0),
                impairment(0, 0, 1.0),
            ],
            vec![wire, wire, own, own, impairment(9, 0, 0.0), wire],
            vec![wire; 6],
            vec![wire; 6],
        ];
        (Forwarder::new(&matrix, 2, &[x, y], false, 3), x, y)
    }

    #[test]
    fn a_frame_to_a_remote_node_takes_its_pair_and_anything_else_the_senders_link() {
        let (a, b, c) = (
            [0x02, 0, 0, 0, 0, 0xa],
            [0x02, 0, 0, 0, 0, 0xb],
            [0x02, 0, 0, 0, 0, 0xc],
        );
        let (mut forwarder, x, y) = paired();
        let t0 = Instant::now();
        let mut out = Vec::new();
        // b is learned behind host 2, c behind host 3.
        forwarder.route(2, &frame(a, b), t0, &mut out).unwrap();
        forwarder.route(3, &frame(a, c), t0, &mut out).unwrap();
        out.clear();
        forwarder.route(0, &ipv4(b, a, x), t0, &mut out).unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 2,
                due: t0 + 7 * MS,
                flip: None
            }],
            "pair 0 -> X"
        );
        out.clear();
        forwarder.route(1, &ipv4(b, a, x), t0, &mut out).unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 2,
                due: t0 + 9 * MS,
                flip: None
            }],
            "pair 1 -> X"
        );
        out.clear();
        forwarder.route(0, &ipv4(c, a, y), t0, &mut out).unwrap();
        assert_eq!(out, [Fate::Lost { to: 3 }], "pair 0 -> Y is cut");
        out.clear();
        // ARP (and any frame not IPv4 to a remote node) takes the port's column.
        forwarder.route(0, &frame(b, a), t0, &mut out).unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 2,
                due: t0 + MS,
                flip: None
            }],
            "0's own link"
        );
        out.clear();
        let local = Ipv4Addr::new(198, 18, 0, 2);
        forwarder
            .route(0, &ipv4(b, a, local), t0, &mut out)
            .unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 2,
                due: t0 + MS,
                flip: None
            }],
            "not a remote node's"
        );
        out.clear();
        // A flood to X: the other hosts' copies take the pair, local ones their port.
        forwarder
            .route(0, &ipv4([0xff; 6], a, x), t0, &mut out)
            .unwrap();
        assert_eq!(
            out,
            [
                Fate::Deliver {
                    to: 1,
                    due: t0,
                    flip: None
                },
                Fate::Deliver {
                    to: 2,
                    due: t0 + 7 * MS,
                    flip: None
                },
                Fate::Deliver {
                    to: 3,
                    due: t0 + 7 * MS,
                    flip: None
                },
            ]
        );
        out.clear();
        // From another host: its row, whatever the frame's address.
        forwarder.route(2, &ipv4(a, b, x), t0, &mut out).unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 0,
                due: t0,
                flip: None
            }]
        );
    }

    #[test]
    fn a_new_matrix_moves_the_remote_nodes_columns_too() {
        let (b, a) = ([0x02, 0, 0, 0, 0, 0xb], [0x02, 0, 0, 0, 0, 0xa]);
        let (mut forwarder, x, _) = paired();
        let t0 = Instant::now();
        let mut out = Vec::new();
        forwarder.route(2, &frame(a, b), t0, &mut out).unwrap();
        out.clear();
        let wire = Impairment::default();
        let mut matrix = vec![vec![wire; 6]; 4];
        matrix[0][4] = impairment(0, 0, 1.0);
        forwarder.set_matrix(&matrix);
        forwarder.route(0, &ipv4(b, a, x), t0, &mut out).unwrap();
        assert_eq!(out, [Fate::Lost { to: 2 }]);
    }
}
