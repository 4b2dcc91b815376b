//! What a node reports about itself: the contract between the runtime, its
//! human and JSON renderers, and the lab that reads a node's `--json` stream.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::protocol::{Dialect, NodeId};

/// One thing that happened in a node. Serialized as one JSON object per line,
/// tagged by `"event"`; see README.md for the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The node is bound and about to announce itself.
    Started {
        /// This node's ID.
        id: NodeId,
        /// The TCP timestamp server's port, as announced.
        tcp_port: u16,
        /// The UDP port broadcasts go to and are heard on.
        broadcast_port: u16,
        /// Where announcements go, as `interface -> address:port` or `address:port`.
        destinations: Vec<String>,
        /// Announcement period in milliseconds.
        interval_ms: u64,
        /// Broadcasts between two measurements of a peer.
        refresh_every: u32,
    },
    /// A datagram from a peer (only with `--verbose`).
    Heard {
        /// The peer's ID.
        id: NodeId,
        /// Source address of the datagram.
        ip: IpAddr,
        /// The TCP port it announced.
        port: u16,
    },
    /// A peer was seen for the first time; an exchange with it starts now.
    Discovered {
        /// The peer's ID.
        id: NodeId,
        /// Source address of its datagram.
        ip: IpAddr,
        /// The TCP port it announced.
        port: u16,
    },
    /// An exchange with a peer succeeded: its latest measurement and running statistics.
    Neighbor(NeighborReport),
    /// A peer left the table.
    Removed {
        /// The peer's ID.
        id: NodeId,
        /// Its last known address.
        ip: IpAddr,
        /// Why, for programs.
        cause: RemovalCause,
        /// Human-readable reason.
        reason: String,
    },
    /// A timestamp client was served (only with `--verbose`).
    Served {
        /// The client's address.
        peer: SocketAddr,
        /// The dialect the answer was written in.
        dialect: Dialect,
        /// The dialect of what the client sent, if it sent anything readable.
        client_dialect: Option<Dialect>,
    },
    /// Something worth a human's attention that changes no state: malformed input,
    /// a peer with a broken clock or encoding, a full table.
    Warning {
        /// What it is about, for programs.
        kind: WarningKind,
        /// What happened, for a human.
        message: String,
        /// Warnings of the same kind from the same address left out since the
        /// last one shown (they are limited to one per period).
        #[serde(default, skip_serializing_if = "is_zero")]
        suppressed: u64,
        /// The peer concerned, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<NodeId>,
        /// Its address, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<IpAddr>,
    },
    /// The node shut down cleanly.
    Stopped,
}

/// A neighbor's measurements after a successful exchange (PROTOCOL.md section 3).
///
/// Delay figures are `null` when the peer answered in a form that carries no
/// usable time (a 4-byte float): it is reachable, so it stays a neighbor with its RTT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighborReport {
    /// The peer's ID.
    pub id: NodeId,
    /// Its address.
    pub ip: IpAddr,
    /// Its timestamp server port.
    pub port: u16,
    /// The seed's quantity: our clock when its time arrived minus its time (B -> A).
    pub delay_ms: Option<f64>,
    /// TCP handshake time, monotonic.
    pub rtt_ms: f64,
    /// Estimated offset of its clock against ours, assuming a symmetric path.
    pub offset_ms: Option<f64>,
    /// Smallest delay seen.
    pub min_ms: Option<f64>,
    /// Mean delay over all samples.
    pub mean_ms: Option<f64>,
    /// Mean absolute difference between consecutive delays.
    pub jitter_ms: Option<f64>,
    /// Delay samples so far.
    pub samples: u64,
    /// Successful exchanges so far (with or without a readable time).
    pub successes: u64,
    /// Failed exchanges so far.
    pub failures: u64,
    /// The encoding the peer's time came in.
    pub dialect: Dialect,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// Why a peer left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalCause {
    /// Its server refused the connection: the node is gone.
    Refused,
    /// The exchange did not complete in time.
    Timeout,
    /// No route to it.
    Unreachable,
    /// It reset the connection before sending its time.
    Reset,
    /// It closed without sending anything.
    NoAnswer,
    /// Another socket error.
    Io,
    /// It answered with bytes that are no plausible time.
    BadAnswer,
    /// It stopped announcing itself (the seed forgets such peers), though its
    /// server may still answer.
    Silent,
}

impl RemovalCause {
    /// Every cause, in declaration order.
    pub const ALL: [RemovalCause; 8] = [
        RemovalCause::Refused,
        RemovalCause::Timeout,
        RemovalCause::Unreachable,
        RemovalCause::Reset,
        RemovalCause::NoAnswer,
        RemovalCause::Io,
        RemovalCause::BadAnswer,
        RemovalCause::Silent,
    ];
}

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A datagram that is not an announcement.
    MalformedDatagram,
    /// A peer answered a 4-byte float: reachable, but its time is useless.
    Float32Timestamp,
    /// A peer answered bytes that are no plausible time: not a neighbor.
    BadTimestamp,
    /// A peer's clock is a whole number of hours off: local time instead of UTC.
    TimeZone,
    /// An exchange with a peer that is not a neighbor failed.
    ExchangeFailed,
    /// New IDs from one address arrive faster than they are admitted.
    AdmissionLimited,
    /// One address announces more IDs than it may hold in the table.
    AddressFull,
    /// The table is full of neighbors.
    TableFull,
    /// A neighbor's ID announced from another address: ignored while the
    /// neighbor answers at its own.
    IdConflict,
    /// Sending an announcement failed.
    SendFailed,
    /// No interface to announce on.
    NoDestination,
    /// Receiving a datagram failed.
    ReceiveFailed,
    /// Accepting a timestamp client failed.
    AcceptFailed,
    /// The output did not keep up: events were left out.
    EventsDropped,
}

impl WarningKind {
    /// Every kind, in declaration order.
    pub const ALL: [WarningKind; 14] = [
        WarningKind::MalformedDatagram,
        WarningKind::Float32Timestamp,
        WarningKind::BadTimestamp,
        WarningKind::TimeZone,
        WarningKind::ExchangeFailed,
        WarningKind::AdmissionLimited,
        WarningKind::AddressFull,
        WarningKind::TableFull,
        WarningKind::IdConflict,
        WarningKind::SendFailed,
        WarningKind::NoDestination,
        WarningKind::ReceiveFailed,
        WarningKind::AcceptFailed,
        WarningKind::EventsDropped,
    ];

    /// What many warnings of this kind are about, for a summary line.
    pub fn plural(self) -> &'static str {
        match self {
            WarningKind::MalformedDatagram => "malformed datagrams",
            WarningKind::Float32Timestamp => "4-byte float timestamps",
            WarningKind::BadTimestamp => "answers that are no time",
            WarningKind::TimeZone => "clocks in local time",
            WarningKind::ExchangeFailed => "failed exchanges",
            WarningKind::AdmissionLimited => "new IDs beyond the admission rate",
            WarningKind::AddressFull => "new IDs beyond the address's share",
            WarningKind::TableFull => "new IDs refused by a full table",
            WarningKind::IdConflict => "neighbors' IDs from another address",
            WarningKind::SendFailed => "failed announcements",
            WarningKind::NoDestination => "announcements with no destination",
            WarningKind::ReceiveFailed => "failed receives",
            WarningKind::AcceptFailed => "failed accepts",
            WarningKind::EventsDropped => "events left out",
        }
    }
}

/// An event with the wall-clock time it was reported: one line of `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StampedEvent {
    /// When the event was rendered, UTC.
    pub ts: chrono::DateTime<chrono::Utc>,
    /// The event, its fields inline.
    #[serde(flatten)]
    pub event: NodeEvent,
}

#[cfg(test)]
mod stamped_tests {
    use super::*;

    #[test]
    fn stamped_events_are_flat_json_lines_that_parse_back() {
        let stamped = StampedEvent {
            ts: "2026-11-24T19:30:00.123456Z".parse().unwrap(),
            event: NodeEvent::Removed {
                id: "cc89e682".parse().unwrap(),
                ip: "10.0.0.2".parse().unwrap(),
                cause: RemovalCause::Refused,
                reason: "refresh failed: connection refused".into(),
            },
        };
        let line = serde_json::to_string(&stamped).unwrap();
        assert_eq!(
            line,
            r#"{"ts":"2026-11-24T19:30:00.123456Z","event":"removed","id":"cc89e682","ip":"10.0.0.2","cause":"refused","reason":"refresh failed: connection refused"}"#
        );
        assert_eq!(
            serde_json::from_str::<StampedEvent>(&line).unwrap(),
            stamped
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_an_event_tag_and_parse_back() {
        let events = [
            NodeEvent::Discovered {
                id: "cc89e682".parse().unwrap(),
                ip: "10.0.0.2".parse().unwrap(),
                port: 6758,
            },
            NodeEvent::Neighbor(NeighborReport {
                id: "cc89e682".parse().unwrap(),
                ip: "10.0.0.2".parse().unwrap(),
                port: 6758,
                delay_ms: Some(10.25),
                rtt_ms: 20.5,
                offset_ms: Some(0.01),
                min_ms: Some(10.0),
                mean_ms: Some(10.2),
                jitter_ms: None,
                samples: 3,
                successes: 3,
                failures: 0,
                dialect: Dialect::BinaryBe,
            }),
            NodeEvent::Stopped,
        ];
        for event in events {
            let line = serde_json::to_string(&event).unwrap();
            assert!(line.starts_with("{\"event\":"), "{line}");
            assert_eq!(serde_json::from_str::<NodeEvent>(&line).unwrap(), event);
        }
        let line = serde_json::to_string(&NodeEvent::Stopped).unwrap();
        assert_eq!(line, r#"{"event":"stopped"}"#);
    }
}
