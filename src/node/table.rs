//! The neighbor table (the seed's `NeighborInfo` hashtable) as plain state:
//! every operation takes `now`, so refresh, removal, expiry and the bound are
//! tested without sleeping. The runtime turns what it returns into I/O.
//!
//! Announcements are unauthenticated, so an ID proves nothing until its server
//! has answered a plausible time: until then it is *unverified*, measured in a
//! pool of its own, forgotten soon after it falls silent, and the first to go
//! when room is needed. Which source address may add IDs is [`Admission`]'s call.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::protocol::{Dialect, FirstSpeaker, Manner, NodeId};

use super::admission::{Admission, AdmissionConfig, Refusal};
use super::event::NeighborReport;
use super::server::ClientHint;

/// When to measure and when to forget.
#[derive(Debug, Clone, Copy)]
pub struct TableConfig {
    /// Broadcasts from a peer between two exchanges with it (the seed's 10).
    pub refresh_every: u32,
    /// How long a peer may stay silent before it is probed, and dropped if unreachable:
    /// the time `refresh_every` broadcasts take. A neighbor silent twice as
    /// long is forgotten even when its server still answers.
    pub silence_after: Duration,
    /// How long an unverified peer is kept once it is neither heard nor measured.
    pub unverified_for: Duration,
    /// Most peers tracked at once, so a flood of fake IDs cannot exhaust memory.
    pub capacity: usize,
    /// What one source address may add.
    pub admission: AdmissionConfig,
    /// Staggers refreshes: with `Some(salt)`, a new peer's first refresh
    /// comes after 1 to `refresh_every` broadcasts (its phase, from a hash of
    /// the salt and its ID), then every `refresh_every`. Nodes started
    /// together otherwise refresh every peer on the same broadcast, a burst
    /// of n(n-1) exchanges per round whose load delays their own answers.
    pub stagger: Option<u64>,
}

impl TableConfig {
    /// The table of a node announcing every `interval`: silence and expiry
    /// follow the announcement cadence.
    pub fn new(interval: Duration, refresh_every: u32, capacity: usize) -> Self {
        TableConfig {
            refresh_every,
            silence_after: interval * refresh_every.max(1),
            unverified_for: interval * 2,
            capacity,
            admission: AdmissionConfig {
                per_address: 32,
                burst: 16,
                refill_every: interval,
            },
            stagger: None,
        }
    }

    /// Broadcasts already counted toward a new peer's first refresh.
    fn phase(&self, id: &NodeId) -> u32 {
        let Some(salt) = self.stagger else {
            return 0;
        };
        let mut hasher = std::hash::DefaultHasher::new();
        (salt, id).hash(&mut hasher);
        (hasher.finish() % u64::from(self.refresh_every.max(1))) as u32
    }
}

/// Why an exchange is started; shown in events and used to word removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeReason {
    /// First broadcast from a new ID.
    New,
    /// `refresh_every` broadcasts since the last exchange.
    Refresh,
    /// The peer went silent: is it still there?
    Probe,
}

/// An exchange the runtime must run now; the table has marked it in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOrder {
    /// The peer.
    pub id: NodeId,
    /// Its timestamp server.
    pub addr: SocketAddr,
    /// How it exchanged times so far.
    pub known: Manner,
    /// Why now.
    pub reason: ExchangeReason,
    /// Whether the peer ever answered a plausible time: exchanges with
    /// unverified peers never hold up those with verified ones.
    pub verified: bool,
}

/// What hearing a broadcast did to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A new ID: it is tracked and must be measured now.
    New(ExchangeOrder),
    /// A known peer; an exchange is due when `Some`.
    Known(Option<ExchangeOrder>),
    /// The broadcast is ignored.
    Refused(Ignored),
}

/// Why a broadcast changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Its source address may not add this ID now.
    Admission(Refusal),
    /// The table is full of neighbors, which are never evicted.
    TableFull,
    /// A neighbor's ID from another address: a neighbor's address changes
    /// only once it stops answering at the old one.
    IdConflict,
}

/// One successful exchange (PROTOCOL.md section 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// `t2 - T_B` in seconds; `None` when the peer's time could not be read.
    pub delay: Option<f64>,
    /// TCP handshake duration in seconds.
    pub rtt: f64,
    /// `T_B - (t2 - rtt/2)` in seconds, when the time could be read.
    pub offset: Option<f64>,
    /// The encoding of the peer's answer.
    pub dialect: Dialect,
    /// Whether its server wrote first or waited for us.
    pub first: FirstSpeaker,
}

/// Running statistics over a peer's delay samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct DelayStats {
    count: u64,
    sum: f64,
    min: f64,
    jitter_sum: f64,
    last: Option<f64>,
}

impl DelayStats {
    fn add(&mut self, delay: f64) {
        if let Some(previous) = self.last {
            self.jitter_sum += (delay - previous).abs();
        }
        self.min = if self.count == 0 {
            delay
        } else {
            self.min.min(delay)
        };
        self.count += 1;
        self.sum += delay;
        self.last = Some(delay);
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    fn jitter(&self) -> Option<f64> {
        (self.count > 1).then(|| self.jitter_sum / (self.count - 1) as f64)
    }
}

#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    /// It answered a plausible time at least once.
    verified: bool,
    broadcasts_since_exchange: u32,
    last_heard: Instant,
    last_exchange: Option<Instant>,
    in_flight: bool,
    /// `Some` while the peer is a neighbor: its last exchange succeeded.
    last_sample: Option<Sample>,
    delays: DelayStats,
    successes: u64,
    failures: u64,
    manner: Manner,
}

impl Peer {
    fn is_neighbor(&self) -> bool {
        self.last_sample.is_some()
    }

    fn order(&mut self, id: &NodeId, reason: ExchangeReason, now: Instant) -> ExchangeOrder {
        self.in_flight = true;
        self.broadcasts_since_exchange = 0;
        self.last_exchange = Some(now);
        ExchangeOrder {
            id: id.clone(),
            addr: self.addr,
            known: self.manner,
            reason,
            verified: self.verified,
        }
    }

    fn report(&self, id: &NodeId) -> Option<NeighborReport> {
        let sample = self.last_sample?;
        let ms = |seconds: f64| seconds * 1e3;
        Some(NeighborReport {
            id: id.clone(),
            ip: self.addr.ip(),
            port: self.addr.port(),
            delay_ms: sample.delay.map(ms),
            rtt_ms: ms(sample.rtt),
            offset_ms: sample.offset.map(ms),
            min_ms: (self.delays.count > 0).then(|| ms(self.delays.min)),
            mean_ms: self.delays.mean().map(ms),
            jitter_ms: self.delays.jitter().map(ms),
            samples: self.delays.count,
            successes: self.successes,
            failures: self.failures,
            dialect: sample.dialect,
        })
    }
}

/// A peer that left the neighbor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// The peer.
    pub id: NodeId,
    /// Its last address.
    pub ip: IpAddr,
}

/// What one sweep of the table found to do.
#[derive(Debug, Default, PartialEq)]
pub struct Sweep {
    /// Exchanges with neighbors that went silent: are they still there?
    pub probes: Vec<ExchangeOrder>,
    /// Neighbors forgotten because they stopped announcing themselves.
    pub departures: Vec<Departure>,
}

/// Every peer heard, keyed by ID. Peers whose exchange failed stay tracked (but
/// are not neighbors) so that they are retried every `refresh_every` broadcasts
/// rather than on every broadcast.
#[derive(Debug)]
pub struct NeighborTable {
    config: TableConfig,
    peers: HashMap<NodeId, Peer>,
    admission: Admission,
}

impl NeighborTable {
    /// An empty table.
    pub fn new(config: TableConfig) -> Self {
        NeighborTable {
            config,
            peers: HashMap::new(),
            admission: Admission::new(config.admission, config.capacity),
        }
    }

    /// Records a broadcast from `id`, whose timestamp server is at `addr`.
    pub fn heard(&mut self, id: &NodeId, addr: SocketAddr, now: Instant) -> Heard {
        let refresh_every = self.config.refresh_every.max(1);
        if let Some(peer) = self.peers.get_mut(id) {
            if peer.addr.ip() != addr.ip() {
                if peer.is_neighbor() {
                    return Heard::Refused(Ignored::IdConflict);
                }
                if let Err(refusal) = self.admission.moved(peer.addr.ip(), addr.ip(), now) {
                    return Heard::Refused(Ignored::Admission(refusal));
                }
            }
            peer.addr = addr;
            peer.last_heard = now;
            peer.broadcasts_since_exchange = peer.broadcasts_since_exchange.saturating_add(1);
            let due = !peer.in_flight && peer.broadcasts_since_exchange >= refresh_every;
            return Heard::Known(due.then(|| peer.order(id, ExchangeReason::Refresh, now)));
        }
        if let Err(refusal) = self.admission.check(addr.ip(), now) {
            return Heard::Refused(Ignored::Admission(refusal));
        }
        if self.peers.len() >= self.config.capacity && !self.evict_one() {
            return Heard::Refused(Ignored::TableFull);
        }
        self.admission.admitted(addr.ip());
        let mut peer = Peer {
            addr,
            verified: false,
            broadcasts_since_exchange: 0,
            last_heard: now,
            last_exchange: None,
            in_flight: false,
            last_sample: None,
            delays: DelayStats::default(),
            successes: 0,
            failures: 0,
            manner: Manner::default(),
        };
        let order = peer.order(id, ExchangeReason::New, now);
        peer.broadcasts_since_exchange = self.config.phase(id);
        self.peers.insert(id.clone(), peer);
        Heard::New(order)
    }

    /// Makes room by forgetting a peer that is no neighbor: unverified ones
    /// first, idle before in flight, longest silent first. Neighbors are never
    /// evicted, so a flood cannot push out a real peer.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .peers
            .iter()
            .filter(|(_, peer)| !peer.is_neighbor())
            .min_by_key(|(_, peer)| (peer.verified, peer.in_flight, peer.last_heard))
            .map(|(id, _)| id.clone());
        victim.is_some_and(|id| self.forget(&id).is_some())
    }

    fn forget(&mut self, id: &NodeId) -> Option<Peer> {
        let peer = self.peers.remove(id)?;
        self.admission.forgotten(peer.addr.ip());
        Some(peer)
    }

    /// Records an exchange that brought a plausible time (a 4-byte float counts:
    /// it is a time, only a coarse one); returns the neighbor's new report.
    pub fn exchange_succeeded(&mut self, id: &NodeId, sample: Sample) -> Option<NeighborReport> {
        let peer = self.peers.get_mut(id)?;
        peer.in_flight = false;
        peer.verified = true;
        peer.successes += 1;
        peer.manner = Manner {
            dialect: Some(sample.dialect),
            first: Some(sample.first),
        };
        if let Some(delay) = sample.delay {
            peer.delays.add(delay);
        }
        peer.last_sample = Some(sample);
        peer.report(id)
    }

    /// Records a failed exchange. Returns the departure when the peer was a
    /// neighbor until now (the seed removes the unreachable).
    pub fn exchange_failed(&mut self, id: &NodeId) -> Option<Departure> {
        let peer = self.peers.get_mut(id)?;
        peer.in_flight = false;
        peer.failures += 1;
        let was_neighbor = peer.last_sample.take().is_some();
        peer.delays = DelayStats::default();
        was_neighbor.then(|| Departure {
            id: id.clone(),
            ip: peer.addr.ip(),
        })
    }

    /// Probes neighbors that went silent, forgets those silent for twice the
    /// refresh period, and expires silent peers that are no neighbors:
    /// unverified ones after [`TableConfig::unverified_for`], so that a flood
    /// of fake IDs drains within a refresh period. Call once per interval.
    pub fn sweep(&mut self, now: Instant) -> Sweep {
        let config = self.config;
        let silent_for =
            |instant: Instant, span: Duration| now.saturating_duration_since(instant) >= span;
        let mut sweep = Sweep::default();
        let mut forgotten = Vec::new();
        for (id, peer) in &mut self.peers {
            if peer.in_flight {
                continue;
            }
            let expiry = if peer.is_neighbor() {
                config.silence_after * 2
            } else if peer.verified {
                config.silence_after
            } else {
                config.unverified_for
            };
            if silent_for(peer.last_heard, expiry) {
                forgotten.push(id.clone());
                if peer.is_neighbor() {
                    sweep.departures.push(Departure {
                        id: id.clone(),
                        ip: peer.addr.ip(),
                    });
                }
            } else if peer.is_neighbor()
                && silent_for(peer.last_heard, config.silence_after)
                && peer
                    .last_exchange
                    .is_none_or(|at| silent_for(at, config.silence_after))
            {
                sweep
                    .probes
                    .push(peer.order(id, ExchangeReason::Probe, now));
            }
        }
        for id in forgotten {
            self.forget(&id);
        }
        self.admission.prune(now);
        sweep
    }

    /// What is known of the dialect a client at `ip` reads: the one every
    /// peer at that address speaks; pending for `hold` after an exchange began
    /// with one of them that has not spoken yet (it will tell); pending until
    /// `unheard_until`, when given, for an address no peer announced yet.
    pub fn client_hint(
        &self,
        ip: IpAddr,
        hold: Duration,
        unheard_until: Option<Instant>,
    ) -> ClientHint {
        let mut heard = false;
        let mut agreed = None;
        let mut pending: Option<Instant> = None;
        for peer in self.peers.values().filter(|peer| peer.addr.ip() == ip) {
            heard = true;
            match (peer.manner.dialect, agreed) {
                (None, _) if peer.in_flight => {
                    let until = peer.last_exchange.map(|began| began + hold);
                    pending = pending.max(until);
                }
                (None, _) => {}
                (Some(dialect), None) => agreed = Some(dialect),
                (Some(dialect), Some(other)) if dialect != other => return ClientHint::Unknown,
                (Some(_), Some(_)) => {}
            }
        }
        if !heard {
            pending = unheard_until;
        }
        match (pending, agreed) {
            (Some(until), _) => ClientHint::Pending { until },
            (None, Some(dialect)) => ClientHint::Known(dialect),
            (None, None) => ClientHint::Unknown,
        }
    }

    /// Remembers what a client at `ip` sent (`spoke_first`: before our answer),
    /// when only one peer lives there and nothing better is known of it: a
    /// client that writes first usually serves the same way.
    pub fn learn_client(&mut self, ip: IpAddr, dialect: Dialect, spoke_first: bool) {
        let mut at_ip = self.peers.values_mut().filter(|peer| peer.addr.ip() == ip);
        let (Some(peer), None) = (at_ip.next(), at_ip.next()) else {
            return;
        };
        if peer.manner.dialect.is_none() {
            peer.manner.dialect = Some(dialect);
            if spoke_first {
                peer.manner.first = Some(FirstSpeaker::Client);
            }
        }
    }

    /// Current neighbors (peers whose last exchange succeeded), sorted by ID.
    pub fn neighbors(&self) -> Vec<NeighborReport> {
        let mut reports: Vec<_> = self
            .peers
            .iter()
            .filter_map(|(id, peer)| peer.report(id))
            .collect();
        reports.sort_by(|a, b| a.id.cmp(&b.id));
        reports
    }

    /// How many peers `ip` holds in the table.
    pub fn ids_at(&self, ip: IpAddr) -> usize {
        self.admission.ids_at(ip)
    }

    /// How many peers are tracked, neighbors or not.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn table() -> NeighborTable {
        NeighborTable::new(TableConfig {
            capacity: 4,
            ..TableConfig::new(SECOND, 10, 4)
        })
    }

    fn id(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    fn addr(last_octet: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last_octet], port))
    }

    fn sample(delay_ms: f64) -> Sample {
        Sample {
            delay: Some(delay_ms / 1e3),
            rtt: 2.0 * delay_ms / 1e3,
            offset: Some(0.0),
            dialect: Dialect::BinaryBe,
            first: FirstSpeaker::Server,
        }
    }

    /// Hears a peer `count` times, one second apart, from `start`; returns the orders issued.
    fn hear_n(
        table: &mut NeighborTable,
        peer: &NodeId,
        start: Instant,
        count: u32,
    ) -> Vec<(u32, ExchangeOrder)> {
        (1..=count)
            .filter_map(
                |i| match table.heard(peer, addr(2, 7000), start + i * SECOND) {
                    Heard::Known(Some(order)) | Heard::New(order) => Some((i, order)),
                    Heard::Known(None) => None,
                    Heard::Refused(why) => panic!("refused: {why:?}"),
                },
            )
            .collect()
    }

    #[test]
    fn a_new_id_is_measured_at_once() {
        let mut table = table();
        let now = Instant::now();
        let heard = table.heard(&id("aaaaaaaa"), addr(2, 7000), now);
        assert_eq!(
            heard,
            Heard::New(ExchangeOrder {
                id: id("aaaaaaaa"),
                addr: addr(2, 7000),
                known: Manner::default(),
                reason: ExchangeReason::New,
                verified: false,
            })
        );
    }

    #[test]
    fn broadcasts_during_an_exchange_never_start_another() {
        let mut table = table();
        let now = Instant::now();
        table.heard(&id("aaaaaaaa"), addr(2, 7000), now);
        // The first exchange never completes: 30 more broadcasts trigger nothing.
        assert!(hear_n(&mut table, &id("aaaaaaaa"), now, 30).is_empty());
    }

    #[test]
    fn refreshes_on_every_tenth_broadcast_after_an_exchange() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(5.0));
        let orders = hear_n(&mut table, &peer, now, 9);
        assert!(orders.is_empty(), "no refresh before the 10th broadcast");
        let orders = hear_n(&mut table, &peer, now + 9 * SECOND, 1);
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].1.reason, ExchangeReason::Refresh);
        assert_eq!(
            orders[0].1.known,
            Manner {
                dialect: Some(Dialect::BinaryBe),
                first: Some(FirstSpeaker::Server)
            }
        );
    }

    #[test]
    fn staggered_peers_refresh_first_after_their_phase_then_every_tenth_broadcast() {
        let mut table = NeighborTable::new(TableConfig {
            stagger: Some(7),
            ..TableConfig::new(SECOND, 10, 64)
        });
        let now = Instant::now();
        let mut firsts = Vec::new();
        for n in 0..40u32 {
            let peer = id(&format!("{n:08x}"));
            let at = SocketAddr::from(([10, 0, 1, n as u8], 7000));
            assert!(matches!(table.heard(&peer, at, now), Heard::New(_)));
            table.exchange_succeeded(&peer, sample(5.0));
            let mut refreshes = Vec::new();
            for i in 1..=30 {
                if let Heard::Known(Some(_)) = table.heard(&peer, at, now + i * SECOND) {
                    refreshes.push(i);
                    table.exchange_succeeded(&peer, sample(5.0));
                }
            }
            let first = refreshes[0];
            assert!((1..=10).contains(&first), "{refreshes:?}");
            assert_eq!(
                refreshes,
                [first, first + 10, first + 20],
                "then every tenth"
            );
            firsts.push(first);
        }
        // Forty peers heard together do not all refresh on the same broadcast.
        firsts.sort_unstable();
        firsts.dedup();
        assert!(firsts.len() >= 6, "phases {firsts:?}");
    }

    #[test]
    fn a_successful_refresh_replaces_the_delay_and_keeps_statistics() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(5.0));
        table.exchange_succeeded(&peer, sample(7.0));
        let report = table.exchange_succeeded(&peer, sample(6.0)).unwrap();
        assert_eq!(report.delay_ms, Some(6.0));
        assert_eq!(report.min_ms, Some(5.0));
        assert!((report.mean_ms.unwrap() - 6.0).abs() < 1e-9);
        assert!((report.jitter_ms.unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(
            (report.samples, report.successes, report.failures),
            (3, 3, 0)
        );
    }

    #[test]
    fn a_sample_without_a_readable_time_keeps_the_rtt_and_the_neighbor() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        table.heard(&peer, addr(2, 7000), Instant::now());
        let report = table
            .exchange_succeeded(
                &peer,
                Sample {
                    delay: None,
                    rtt: 0.004,
                    offset: None,
                    dialect: Dialect::Float32,
                    first: FirstSpeaker::Server,
                },
            )
            .unwrap();
        assert_eq!(report.delay_ms, None);
        assert_eq!(report.rtt_ms, 4.0);
        assert_eq!(report.samples, 0);
        assert_eq!(table.neighbors().len(), 1);
    }

    #[test]
    fn a_failed_refresh_removes_the_neighbor() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(5.0));
        hear_n(&mut table, &peer, now, 10);
        assert_eq!(
            table.exchange_failed(&peer),
            Some(Departure {
                id: peer.clone(),
                ip: addr(2, 7000).ip()
            })
        );
        assert!(table.neighbors().is_empty());
        // A second failure is no second departure.
        assert_eq!(table.exchange_failed(&peer), None);
    }

    #[test]
    fn an_unreachable_peer_is_retried_every_ten_broadcasts_not_every_one() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        assert_eq!(table.exchange_failed(&peer), None, "never a neighbor");
        let orders = hear_n(&mut table, &peer, now, 25);
        let at: Vec<u32> = orders.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [10], "the retry is in flight until it resolves");
        table.exchange_failed(&peer);
        let orders = hear_n(&mut table, &peer, now + 25 * SECOND, 10);
        assert_eq!(orders.len(), 1);
    }

    #[test]
    fn a_silent_neighbor_is_probed_once_the_refresh_period_passed() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(5.0));
        assert!(table.sweep(now + 9 * SECOND).probes.is_empty());
        let probes = table.sweep(now + 10 * SECOND).probes;
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].reason, ExchangeReason::Probe);
        assert!(probes[0].verified);
        assert!(
            table.sweep(now + 11 * SECOND).probes.is_empty(),
            "one probe in flight"
        );
        assert!(table.exchange_failed(&peer).is_some());
        assert!(table.neighbors().is_empty());
        assert_eq!(table.sweep(now + 12 * SECOND), Sweep::default());
        assert!(table.is_empty(), "a silent non-neighbor is forgotten");
    }

    #[test]
    fn a_silent_but_reachable_neighbor_is_forgotten_after_two_periods() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(5.0));
        assert_eq!(table.sweep(now + 10 * SECOND).probes.len(), 1);
        table.exchange_succeeded(&peer, sample(5.0));
        assert_eq!(table.sweep(now + 15 * SECOND), Sweep::default());
        assert_eq!(table.neighbors().len(), 1, "reachable: still a neighbor");
        let sweep = table.sweep(now + 20 * SECOND);
        assert_eq!(
            sweep.departures,
            [Departure {
                id: peer,
                ip: addr(2, 0).ip()
            }],
            "the seed forgets a peer that stopped announcing"
        );
        assert!(table.is_empty());
    }

    #[test]
    fn an_unverified_id_heard_once_expires_after_two_intervals() {
        let mut table = table();
        let fake = id("fakefake");
        let now = Instant::now();
        table.heard(&fake, addr(66, 1), now);
        table.exchange_failed(&fake);
        table.sweep(now + SECOND);
        assert_eq!(table.len(), 1);
        assert_eq!(table.sweep(now + 2 * SECOND), Sweep::default());
        assert!(
            table.is_empty(),
            "no probe, no departure: it never was a neighbor"
        );
    }

    #[test]
    fn only_a_plausible_time_makes_a_verified_neighbor() {
        let mut table = table();
        let peer = id("aaaaaaaa");
        let now = Instant::now();
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_failed(&peer);
        let (_, retry) = hear_n(&mut table, &peer, now, 10).pop().unwrap();
        assert!(!retry.verified, "a failed exchange verifies nothing");
        table.exchange_succeeded(&peer, sample(5.0));
        table.exchange_failed(&peer);
        let (_, retry) = hear_n(&mut table, &peer, now + 10 * SECOND, 10)
            .pop()
            .unwrap();
        assert!(
            retry.verified,
            "once verified, its retries keep their priority"
        );
    }

    #[test]
    fn a_flood_of_ids_from_one_address_is_bounded_and_never_evicts_neighbors() {
        let mut table = NeighborTable::new(TableConfig::new(SECOND, 10, 64));
        let now = Instant::now();
        let real = id("realpeer");
        table.heard(&real, addr(66, 7000), now);
        table.exchange_succeeded(&real, sample(1.0));
        let (mut new, mut refused) = (0, 0);
        // 10,000 fake IDs in 10 s from the real peer's own address.
        for i in 0..10_000u32 {
            let at = now + Duration::from_millis(i.into());
            match table.heard(&id(&format!("{i:08x}")), addr(66, 1), at) {
                Heard::New(_) => new += 1,
                Heard::Refused(Ignored::Admission(_)) => refused += 1,
                other => panic!("{other:?}"),
            }
            if i % 1000 == 999 {
                table.sweep(at);
            }
        }
        assert!(new <= 16 + 10, "a burst, then one per interval: {new}");
        assert_eq!(new + refused, 10_000);
        assert!(table.len() <= 32, "one address holds at most 32 IDs");
        assert_eq!(table.neighbors()[0].id, real);
        // Another address still gets in at once.
        assert!(matches!(
            table.heard(&id("newcomer"), addr(9, 1), now + 10 * SECOND),
            Heard::New(_)
        ));
    }

    #[test]
    fn unverified_peers_make_room_for_a_newcomer() {
        let mut table = table();
        let now = Instant::now();
        let real = id("realpeer");
        table.heard(&real, addr(2, 7000), now);
        table.exchange_succeeded(&real, sample(1.0));
        for i in 0..3u8 {
            // Fakes from three addresses, their exchanges still in flight.
            table.heard(&id(&format!("fake{i:04}")), addr(60 + i, 1), now);
        }
        assert_eq!(table.len(), 4);
        let newcomer = id("newcomer");
        assert!(matches!(
            table.heard(&newcomer, addr(9, 1), now + SECOND),
            Heard::New(_)
        ));
        assert_eq!(table.len(), 4);
        assert!(table.exchange_succeeded(&real, sample(1.0)).is_some());
    }

    #[test]
    fn a_table_full_of_neighbors_refuses_newcomers() {
        let mut table = table();
        let now = Instant::now();
        for i in 0..4u8 {
            let peer = id(&format!("peer{i:04}"));
            table.heard(&peer, addr(i, 1), now);
            table.exchange_succeeded(&peer, sample(1.0));
        }
        assert_eq!(
            table.heard(&id("newcomer"), addr(9, 1), now),
            Heard::Refused(Ignored::TableFull)
        );
    }

    #[test]
    fn a_neighbors_id_from_another_address_is_ignored() {
        let mut table = table();
        let now = Instant::now();
        let peer = id("aaaaaaaa");
        table.heard(&peer, addr(2, 7000), now);
        table.exchange_succeeded(&peer, sample(1.0));
        assert_eq!(
            table.heard(&peer, addr(66, 9), now),
            Heard::Refused(Ignored::IdConflict)
        );
        let order = hear_n(&mut table, &peer, now, 10).pop().unwrap().1;
        assert_eq!(order.addr, addr(2, 7000), "still measured where it answers");
        table.exchange_failed(&peer);
        assert!(
            matches!(
                table.heard(&peer, addr(3, 7000), now + 11 * SECOND),
                Heard::Known(_)
            ),
            "no neighbor any more: it may move"
        );
    }

    #[test]
    fn a_client_teaches_its_dialect_only_where_it_is_the_one_peer_at_its_address() {
        let mut table = table();
        let now = Instant::now();
        let (a, b) = (id("aaaaaaaa"), id("bbbbbbbb"));
        let ip = addr(2, 0).ip();
        table.heard(&a, addr(2, 7000), now);
        table.exchange_failed(&a);
        assert_eq!(table.client_hint(ip, SECOND, None), ClientHint::Unknown);
        table.learn_client(ip, Dialect::Ascii, true);
        assert_eq!(
            table.client_hint(ip, SECOND, None),
            ClientHint::Known(Dialect::Ascii)
        );
        let order = hear_n(&mut table, &a, now, 10).pop().unwrap().1;
        assert_eq!(
            order.known,
            Manner {
                dialect: Some(Dialect::Ascii),
                first: Some(FirstSpeaker::Client)
            },
            "a client that spoke first is spoken to first"
        );
        table.heard(&b, addr(2, 7001), now);
        table.exchange_failed(&b);
        table.learn_client(ip, Dialect::BinaryLe, false);
        assert_eq!(
            table.client_hint(ip, SECOND, None),
            ClientHint::Known(Dialect::Ascii),
            "two peers: not learnt"
        );
    }

    #[test]
    fn a_client_is_pending_while_an_exchange_with_its_address_is_in_flight() {
        let mut table = table();
        let now = Instant::now();
        let (a, b) = (id("aaaaaaaa"), id("bbbbbbbb"));
        let ip = addr(2, 0).ip();
        let hold = SECOND / 10;
        table.heard(&a, addr(2, 7000), now);
        assert_eq!(
            table.client_hint(ip, hold, None),
            ClientHint::Pending { until: now + hold }
        );
        table.exchange_succeeded(&a, sample(1.0));
        assert_eq!(
            table.client_hint(ip, hold, None),
            ClientHint::Known(Dialect::BinaryBe)
        );
        assert_eq!(
            table.client_hint(addr(3, 0).ip(), hold, None),
            ClientHint::Unknown
        );
        let later = now + SECOND;
        assert_eq!(
            table.client_hint(addr(3, 0).ip(), hold, Some(later)),
            ClientHint::Pending { until: later },
            "an address not heard yet, while worth waiting for"
        );
        assert_eq!(
            table.client_hint(ip, hold, Some(later)),
            ClientHint::Known(Dialect::BinaryBe),
            "a heard address is judged on its peers"
        );
        table.heard(&b, addr(2, 7001), now + SECOND);
        assert_eq!(
            table.client_hint(ip, hold, None),
            ClientHint::Pending {
                until: now + SECOND + hold
            },
            "b will tell"
        );
        table.exchange_succeeded(
            &b,
            Sample {
                dialect: Dialect::Float32,
                ..sample(1.0)
            },
        );
        assert_eq!(
            table.client_hint(ip, hold, None),
            ClientHint::Unknown,
            "two peers disagree"
        );
    }
}
