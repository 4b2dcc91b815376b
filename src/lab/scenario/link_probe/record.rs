//! What the link probe keeps of one ordered pair: how many packets left and
//! which arrived when. Both ends live on one machine, so both times are read
//! from the one CLOCK_MONOTONIC and a one-way delay is their difference.

use std::time::Duration;

/// Bytes a probe packet carries below its UDP payload on an Ethernet link:
/// Ethernet (14), IPv4 (20) and UDP (8) headers.
pub const HEADERS_BYTES: usize = 14 + 20 + 8;

/// One datagram received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its sequence number (0 is the pair's first packet).
    pub seq: u64,
    /// When it was sent, since the probe's monotonic origin.
    pub sent: Duration,
    /// When it was received, since the same origin.
    pub received: Duration,
}

/// Everything measured of one ordered pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRecord {
    /// The sending node.
    pub from: String,
    /// The receiving node.
    pub to: String,
    /// Packets sent, numbered `0..sent`.
    pub sent: u64,
    /// What arrived, in the order it arrived (duplicates included).
    pub arrivals: Vec<Arrival>,
    /// Arrivals not kept because the pair's preallocated room was full
    /// (duplicates beyond it); they are not in `arrivals`.
    pub overflow: u64,
    /// Time between two packets of the pair.
    pub spacing: Duration,
    /// UDP payload bytes of each packet.
    pub payload_bytes: usize,
}

impl PairRecord {
    /// Bytes each packet takes on the link (what a rate counts).
    pub fn wire_bytes(&self) -> usize {
        self.payload_bytes + HEADERS_BYTES
    }
}
