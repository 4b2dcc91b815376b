//! The link probe's datagram: a magic, the pair's number, a sequence number
//! and the send time, padded with zeros to the size the probe was given.
//! Every datagram that reaches a probe socket is treated as hostile: anything
//! but exactly this, at exactly that size, is refused.

use thiserror::Error;

/// The first bytes of every probe datagram.
pub const MAGIC: [u8; 4] = *b"SLP1";

/// Bytes before the padding: magic, pair (u32), sequence (u64), send time (u64 ns).
pub const HEADER_LEN: usize = 4 + 4 + 8 + 8;

/// The largest size a probe datagram may be given (an Ethernet MTU's UDP payload).
pub const MAX_LEN: usize = 1500 - 20 - 8;

/// One probe datagram's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The ordered pair it belongs to (the receiver's numbering).
    pub pair: u32,
    /// Its place in the pair's stream, from 0.
    pub seq: u64,
    /// When it was sent, nanoseconds since the probe's monotonic origin.
    pub sent_ns: u64,
}

/// Why a datagram is not a probe packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Not the size the probe sends.
    #[error("{got} bytes, probe packets are {want}")]
    Length {
        /// Its size.
        got: usize,
        /// The probe's.
        want: usize,
    },
    /// Its first bytes are not [`MAGIC`].
    #[error("no probe magic")]
    Magic,
    /// Its padding is not zeros.
    #[error("padding is not zeros")]
    Padding,
}

impl Packet {
    /// Writes the packet into `buf`, the whole of which is the datagram:
    /// at least [`HEADER_LEN`] bytes (checked by the caller's size).
    pub fn encode(&self, buf: &mut [u8]) {
        let (header, padding) = buf.split_at_mut(HEADER_LEN.min(buf.len()));
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..8].copy_from_slice(&self.pair.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.seq.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        header.copy_from_slice(&bytes[..header.len()]);
        padding.fill(0);
    }

    /// Reads a datagram that must be `size` bytes long.
    pub fn parse(datagram: &[u8], size: usize) -> Result<Packet, PacketError> {
        if datagram.len() != size || size < HEADER_LEN {
            return Err(PacketError::Length {
                got: datagram.len(),
                want: size,
            });
        }
        let (header, padding) = datagram.split_at(HEADER_LEN);
        if header[..4] != MAGIC {
            return Err(PacketError::Magic);
        }
        if padding.iter().any(|&b| b != 0) {
            return Err(PacketError::Padding);
        }
        let word = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 8];
            bytes[8 - range.len()..].copy_from_slice(&header[range]);
            u64::from_be_bytes(bytes)
        };
        Ok(Packet {
            pair: word(4..8) as u32,
            seq: word(8..16),
            sent_ns: word(16..24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Packet {
        Packet {
            pair: 7,
            seq: u64::MAX - 1,
            sent_ns: 123_456_789_012,
        }
    }

    #[test]
    fn a_packet_reads_back_as_written_at_every_size() {
        for size in [HEADER_LEN, 64, MAX_LEN] {
            let mut buf = vec![0xAA; size];
            packet().encode(&mut buf);
            assert_eq!(Packet::parse(&buf, size), Ok(packet()));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let mut buf = vec![0u8; 64];
        packet().encode(&mut buf);
        assert_eq!(
            Packet::parse(&buf[..63], 64),
            Err(PacketError::Length { got: 63, want: 64 })
        );
        assert!(matches!(
            Packet::parse(&buf, 65),
            Err(PacketError::Length { .. })
        ));
        // A size too small for the header is never valid, even if both agree.
        assert!(matches!(
            Packet::parse(&buf[..10], 10),
            Err(PacketError::Length { .. })
        ));
        let mut wrong = buf.clone();
        wrong[0] ^= 1;
        assert_eq!(Packet::parse(&wrong, 64), Err(PacketError::Magic));
        let mut padded = buf.clone();
        padded[63] = 1;
        assert_eq!(Packet::parse(&padded, 64), Err(PacketError::Padding));
        assert_eq!(
            Packet::parse(&[], 64),
            Err(PacketError::Length { got: 0, want: 64 })
        );
    }

    #[test]
    fn random_datagrams_never_panic_and_are_refused() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let len = rng.usize(0..200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            assert!(Packet::parse(&bytes, 64).is_err() || bytes[..4] == MAGIC);
        }
    }
}
