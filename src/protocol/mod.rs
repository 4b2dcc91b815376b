//! The SDSS wire formats as pure functions over bytes: no sockets, no clocks.
//!
//! Everything that crosses the network is parsed and produced here, so the node
//! runtime and the lab grader agree on one reading of what peers send
//! (`../shared/PROTOCOL.md`, sections 1 and 2).

mod announcement;
mod timestamp;

pub use announcement::{
    AnnounceError, Announcement, NodeId, NodeIdError, ID_LEN, MAX_DATAGRAM_LEN,
};
pub use timestamp::{
    decode_timestamp, dialect_of, encode_timestamp, time_zone_offset_hours, DecodedTimestamp,
    Dialect, FirstSpeaker, Manner, TimestampError, PLAUSIBLE_WINDOW_SECS, SERVER_FIRST_WITHIN,
};

/// The one constant of the assignment: every node broadcasts to this UDP port.
pub const DEFAULT_BROADCAST_PORT: u16 = 35498;

/// The assignment's announcement period (PROTOCOL.md section 1).
pub const ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The assignment's refresh: a new exchange every this many broadcasts of a
/// peer (PROTOCOL.md section 4).
pub const REFRESH_EVERY: u32 = 10;
