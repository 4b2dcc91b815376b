//! What a frame's trip through the emulator will be: which pairs' paths it
//! takes (the switch and its matrix, [`Forwarder`]); each path then says
//! whether each copy is lost and when it is due ([`super::path`]). Pure:
//! time and randomness come in as arguments.

use std::net::Ipv4Addr;
use std::time::Instant;

use fastrand::Rng;

use super::link::Fate;
use super::path::{Path, Stages};
use super::switch::ETHERNET_HEADER_LEN;
use super::switch::{Destination, Mac, MacTable};

/// Where an IPv4 header's destination address lies in an untagged frame.
const IPV4_DESTINATION: std::ops::Range<usize> = ETHERNET_HEADER_LEN + 16..ETHERNET_HEADER_LEN + 20;

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
/// A [`Path`] per matrix cell: a row per port, a column per port and then one per
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
    /// Paths per row: the ports, then the remote nodes.
    columns: usize,
    paths: Vec<Path>,
    /// Let jitter reorder a link's frames (the spec's `reorder`).
    reorder: bool,
    table: MacTable,
    /// Every link's draws come from it; a seed makes a lab run reproducible.
    rng: Rng,
}

impl Forwarder {
    /// A switch whose links follow `matrix` (row `from`, column `to`, then a
    /// column per remote node), of which the last `remotes` ports are other
    /// hosts and `remote_nodes` the addresses of the remote nodes' columns.
    /// A cell the matrix lacks passes frames unimpaired. A cell is a pair's
    /// [`Stages`] (or an
    /// [`Impairment`](crate::lab::plan::impairment::Impairment): one stage).
    pub fn new<C: Copy + Into<Stages>>(
        matrix: &[Vec<C>],
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
            paths: vec![Path::new(Stages::default(), reorder); ports * columns],
            reorder,
            table: MacTable::default(),
            rng: Rng::with_seed(seed),
        };
        forwarder.set_matrix(matrix);
        forwarder
    }

    /// Follows `matrix` from now on. A stage whose impairment is unchanged
    /// keeps its state; a changed one starts afresh (frames already queued
    /// keep the due time they were given).
    pub fn set_matrix<C: Copy + Into<Stages>>(&mut self, matrix: &[Vec<C>]) {
        let columns = self.columns;
        for (index, path) in self.paths.iter_mut().enumerate() {
            let stages = matrix
                .get(index / columns)
                .and_then(|row| row.get(index % columns))
                .map_or_else(Stages::default, |cell| (*cell).into());
            path.set(stages, self.reorder);
        }
    }

    /// Decides the fate of `frame`, which arrived on port `from` at `arrival`; the
    /// copies' fates are appended to `out` (per destination port, one, or
    /// more when duplicated: up to two per stage a copy crosses).
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
        let path = &mut self.paths[from * self.columns + column];
        path.carry(to, arrival, len, &mut self.rng, out);
    }
}

fn mac_at(frame: &[u8], offset: usize) -> Option<Mac> {
    frame.get(offset..offset + 6)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lab::plan::impairment::Impairment;
    use crate::lab::plan::shape::Loss;

    const MS: Duration = Duration::from_millis(1);

    use super::super::link::tests::impairment;

    fn frame(dst: Mac, src: Mac) -> Vec<u8> {
        let mut frame = Vec::from(dst);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&[0x08, 0x00, 0, 0]);
        frame
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
                Fate::Deliver { to, .. }
                | Fate::Lost { to }
                | Fate::Cut { to }
                | Fate::Overflowed { to } => to,
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
    fn a_cell_of_two_stages_crosses_both_and_a_new_matrix_can_drop_one() {
        let wire = Stages::default();
        let two = Stages::in_series(impairment(3, 0, 0.0), impairment(4, 0, 0.0));
        let mut forwarder = Forwarder::new(&[vec![wire, two], vec![wire, wire]], 0, &[], false, 7);
        let frame = [0xffu8; 60];
        let now = Instant::now();
        let mut out = Vec::new();
        forwarder.route(0, &frame, now, &mut out).unwrap();
        assert_eq!(
            out,
            [Fate::Deliver {
                to: 1,
                due: now + 7 * MS,
                flip: None
            }]
        );
        out.clear();
        forwarder.set_matrix(&[vec![wire, two.first.into()], vec![wire, wire]]);
        forwarder.route(0, &frame, now, &mut out).unwrap();
        assert!(matches!(out[..], [Fate::Deliver { due, .. }] if due == now + 3 * MS));
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
        assert_eq!(out, [Fate::Cut { to: 3 }], "pair 0 -> Y is cut");
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
        assert_eq!(out, [Fate::Cut { to: 2 }]);
    }
}
