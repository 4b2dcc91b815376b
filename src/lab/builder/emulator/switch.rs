//! The learning switch: which port a MAC address was last seen on. Plain state that
//! takes `now` as an argument, so learning and ageing are tested without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Bytes of the Ethernet header the switch needs (destination, source, type).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// A MAC address.
pub type Mac = [u8; 6];

/// How long a learned address is trusted without being seen again (the 802.1D default).
pub const MAC_MAX_AGE: Duration = Duration::from_secs(300);

/// Addresses the table holds at most, so a node sending from random source MACs
/// cannot grow it without bound; beyond it, unknown destinations are flooded.
pub const MAC_TABLE_CAPACITY: usize = 4096;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Every port but the one it came from: broadcast, multicast, unknown unicast.
    Flood,
    /// The one port its destination was learned on.
    Port(usize),
    /// Nowhere: the destination lives behind the port the frame came from.
    Filter,
}

/// MAC address -> port, with ageing and a size bound.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<Mac, (usize, Instant)>,
    max_age: Duration,
    capacity: usize,
}

impl Default for MacTable {
    fn default() -> Self {
        Self::new(MAC_MAX_AGE, MAC_TABLE_CAPACITY)
    }
}

/// Whether an address is a group address (broadcast included), never learned.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

impl MacTable {
    /// An empty table.
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max_age,
            capacity,
        }
    }

    /// Records that `mac` sent from `port`; group and all-zero sources are ignored.
    pub fn learn(&mut self, mac: Mac, port: usize, now: Instant) {
        if is_group(&mac) || mac == [0; 6] {
            return;
        }
        if !self.entries.contains_key(&mac) && self.entries.len() >= self.capacity {
            let max_age = self.max_age;
            self.entries
                .retain(|_, (_, seen)| now.saturating_duration_since(*seen) <= max_age);
            if self.entries.len() >= self.capacity {
                return;
            }
        }
        self.entries.insert(mac, (port, now));
    }

    /// The port `mac` was last seen on, unless that is older than the maximum age.
    pub fn lookup(&self, mac: &Mac, now: Instant) -> Option<usize> {
        self.entries
            .get(mac)
            .filter(|(_, seen)| now.saturating_duration_since(*seen) <= self.max_age)
            .map(|(port, _)| *port)
    }

    /// Learns the source of a frame that arrived on `from` and decides where it goes.
    pub fn forward(&mut self, from: usize, dst: Mac, src: Mac, now: Instant) -> Destination {
        self.learn(src, from, now);
        if is_group(&dst) {
            return Destination::Flood;
        }
        match self.lookup(&dst, now) {
            Some(port) if port == from => Destination::Filter,
            Some(port) => Destination::Port(port),
            None => Destination::Flood,
        }
    }

    /// Number of addresses held, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been learned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0, 0, 0, 0, 0xa];
    const B: Mac = [0x02, 0, 0, 0, 0, 0xb];
    const BROADCAST: Mac = [0xff; 6];
    const MULTICAST: Mac = [0x33, 0x33, 0, 0, 0, 1];

    #[test]
    fn floods_unknown_and_group_destinations_then_learns() {
        let now = Instant::now();
        let mut table = MacTable::default();
        assert_eq!(table.forward(0, BROADCAST, A, now), Destination::Flood);
        assert_eq!(table.forward(1, MULTICAST, B, now), Destination::Flood);
        assert_eq!(table.forward(1, A, B, now), Destination::Port(0));
        assert_eq!(table.forward(0, B, A, now), Destination::Port(1));
        assert_eq!(
            table.forward(2, [0x02, 9, 9, 9, 9, 9], A, now),
            Destination::Flood
        );
    }

    #[test]
    fn follows_a_moved_address_and_filters_same_port_traffic() {
        let now = Instant::now();
        let mut table = MacTable::default();
        table.learn(A, 0, now);
        table.learn(B, 0, now);
        assert_eq!(table.forward(0, B, A, now), Destination::Filter);
        table.learn(A, 3, now);
        assert_eq!(table.lookup(&A, now), Some(3));
    }

    #[test]
    fn never_learns_group_or_zero_sources() {
        let now = Instant::now();
        let mut table = MacTable::default();
        table.learn(BROADCAST, 0, now);
        table.learn(MULTICAST, 0, now);
        table.learn([0; 6], 0, now);
        assert!(table.is_empty());
    }

    #[test]
    fn forgets_addresses_not_seen_for_max_age() {
        let start = Instant::now();
        let mut table = MacTable::new(Duration::from_secs(10), 16);
        table.learn(A, 1, start);
        assert_eq!(table.lookup(&A, start + Duration::from_secs(10)), Some(1));
        assert_eq!(table.lookup(&A, start + Duration::from_secs(11)), None);
    }

    #[test]
    fn stays_bounded_and_makes_room_from_expired_entries() {
        let start = Instant::now();
        let mut table = MacTable::new(Duration::from_secs(10), 2);
        table.learn(A, 0, start);
        table.learn(B, 1, start);
        let c = [0x02, 0, 0, 0, 0, 0xc];
        table.learn(c, 2, start);
        assert_eq!(table.len(), 2);
        assert_eq!(table.lookup(&c, start), None);
        let later = start + Duration::from_secs(20);
        table.learn(c, 2, later);
        assert_eq!(table.lookup(&c, later), Some(2));
        assert_eq!(table.len(), 1);
    }
}
