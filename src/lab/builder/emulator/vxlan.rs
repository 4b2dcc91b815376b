//! The VXLAN header (RFC 7348 §5), as the kernel's `vxlan` device writes it, so
//! that a host on the emulator and a host on kernel VXLAN share one segment.
//! Pure: bytes in, bytes out; datagrams are hostile, so every malformation is an
//! error value, never a panic.
//!
//! ```text
//!  0               1               2               3
//! |R|R|R|R|I|R|R|R|           Reserved (24 bits)                 |
//! |          VXLAN Network Identifier (24 bits)  | Reserved (8)  |
//! ```

use thiserror::Error;

/// Bytes of the header that precedes the Ethernet frame in the UDP payload.
pub const HEADER_LEN: usize = 8;

/// The UDP port IANA assigned to VXLAN (the kernel device's default `dstport`).
pub const DEFAULT_PORT: u16 = 4789;

/// The largest VNI: the field has 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// The I flag: the VNI field is valid. The only flag RFC 7348 defines.
const FLAG_VNI: u8 = 0x08;

/// Why a datagram is not a frame of our segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Shorter than the header.
    #[error("{0} bytes is shorter than a VXLAN header")]
    Short(usize),
    /// The I flag is clear: the VNI field means nothing.
    #[error("VXLAN flags {0:#04x} lack the I flag")]
    NoVni(u8),
    /// Another segment's frame.
    #[error("VNI {0} is not this segment's")]
    WrongVni(u32),
}

/// The header of every frame of segment `vni` (which must be at most [`MAX_VNI`];
/// higher bits are cut off).
pub fn encode_header(vni: u32) -> [u8; HEADER_LEN] {
    let [_, a, b, c] = (vni & MAX_VNI).to_be_bytes();
    [FLAG_VNI, 0, 0, 0, a, b, c, 0]
}

/// The VNI of a datagram, if its header is well formed. Reserved bits are
/// ignored, as RFC 7348 asks of a receiver.
pub fn parse_vni(datagram: &[u8]) -> Result<u32, HeaderError> {
    let Some(header) = datagram.first_chunk::<HEADER_LEN>() else {
        return Err(HeaderError::Short(datagram.len()));
    };
    if header[0] & FLAG_VNI == 0 {
        return Err(HeaderError::NoVni(header[0]));
    }
    Ok(u32::from_be_bytes([0, header[4], header[5], header[6]]))
}

/// The Ethernet frame inside a datagram of segment `vni`.
pub fn decapsulate(datagram: &[u8], vni: u32) -> Result<&[u8], HeaderError> {
    match parse_vni(datagram)? {
        found if found == vni => Ok(&datagram[HEADER_LEN..]),
        found => Err(HeaderError::WrongVni(found)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_kernels_bytes() {
        // What Linux's vxlan device sends for VNI 42 (and Wireshark decodes as such).
        assert_eq!(encode_header(42), [0x08, 0, 0, 0, 0, 0, 0x2a, 0]);
        assert_eq!(encode_header(MAX_VNI), [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        assert_eq!(
            encode_header(0x0123_4567),
            [0x08, 0, 0, 0, 0x23, 0x45, 0x67, 0]
        );
    }

    #[test]
    fn round_trips_and_returns_the_inner_frame() {
        for vni in [0, 1, 42, 0x12_3456, MAX_VNI] {
            let mut datagram = encode_header(vni).to_vec();
            datagram.extend_from_slice(b"frame");
            assert_eq!(parse_vni(&datagram), Ok(vni));
            assert_eq!(decapsulate(&datagram, vni), Ok(&b"frame"[..]));
        }
        // A header alone is an empty frame: the switch rejects it as a runt.
        assert_eq!(decapsulate(&encode_header(7), 7), Ok(&[][..]));
    }

    #[test]
    fn rejects_short_flagless_and_foreign_datagrams() {
        assert_eq!(parse_vni(&[]), Err(HeaderError::Short(0)));
        assert_eq!(
            parse_vni(&[0x08, 0, 0, 0, 0, 0, 1]),
            Err(HeaderError::Short(7))
        );
        assert_eq!(
            parse_vni(&[0, 0, 0, 0, 0, 0, 1, 0]),
            Err(HeaderError::NoVni(0))
        );
        assert_eq!(
            parse_vni(&[0xf7, 0, 0, 0, 0, 0, 1, 0]),
            Err(HeaderError::NoVni(0xf7))
        );
        let mut datagram = encode_header(43).to_vec();
        datagram.extend_from_slice(&[0; 14]);
        assert_eq!(decapsulate(&datagram, 42), Err(HeaderError::WrongVni(43)));
    }

    #[test]
    fn ignores_reserved_bits() {
        let header = [0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff];
        assert_eq!(parse_vni(&header), Ok(42));
    }
}
