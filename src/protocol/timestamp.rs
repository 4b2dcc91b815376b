//! The timestamp exchanged over TCP, in every encoding real peers use.
//!
//! sdss sends the assignment's encoding (Python `struct.pack("!d", t)`) unless a
//! peer is known to speak another one, and reads all of them: which reading is
//! meant is decided by plausibility against the local clock, never by length alone.

use std::fmt;

use thiserror::Error;

/// A decoded time further than this from the local clock is not a reading of a clock.
pub const PLAUSIBLE_WINDOW_SECS: f64 = 86_400.0;

/// How a peer encodes its time on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// 8-byte big-endian IEEE-754 double, `struct.pack("!d", t)`: the assignment's encoding.
    BinaryBe,
    /// 8-byte little-endian double, `struct.pack("d", t)` on x86 and ARM.
    BinaryLe,
    /// Decimal seconds as text, `str(t).encode()`.
    Ascii,
    /// 4-byte big-endian float, `struct.pack("!f", t)`: too coarse to measure anything.
    Float32,
}

impl Dialect {
    /// Every dialect, in the order readings are tried.
    pub const ALL: [Dialect; 4] = [
        Dialect::BinaryBe,
        Dialect::BinaryLe,
        Dialect::Ascii,
        Dialect::Float32,
    ];

    /// The name used in events and reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::BinaryBe => "binary_be",
            Dialect::BinaryLe => "binary_le",
            Dialect::Ascii => "ascii",
            Dialect::Float32 => "float32",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A peer's time and the dialect it was read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedTimestamp {
    /// Seconds since the Unix epoch, UTC, as the peer claims.
    pub seconds: f64,
    /// The encoding the bytes were in.
    pub dialect: Dialect,
}

/// Why bytes from a peer yield no usable time.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TimestampError {
    /// The peer closed without sending anything.
    #[error("no timestamp bytes received")]
    Empty,
    /// A 4-byte float: at today's epoch its steps are minutes apart.
    #[error(
        "4-byte float timestamp ({seconds:.0}): its resolution here is {resolution_secs:.0} s, \
         useless for delay measurement; send an 8-byte double (struct.pack(\"!d\", t))"
    )]
    Float32 {
        /// The value the float encodes.
        seconds: f64,
        /// The distance to the next representable float at that value.
        resolution_secs: f64,
    },
    /// No encoding yields a time within a day of the local clock.
    #[error(
        "{len} bytes ({preview}) are no time within a day of the local clock in any known encoding"
    )]
    Unrecognised {
        /// How many bytes arrived.
        len: usize,
        /// Up to 16 of them, escaped.
        preview: String,
    },
}

/// Encodes `seconds` (UTC epoch seconds) as `dialect` would.
pub fn encode_timestamp(seconds: f64, dialect: Dialect) -> Vec<u8> {
    match dialect {
        Dialect::BinaryBe => seconds.to_be_bytes().to_vec(),
        Dialect::BinaryLe => seconds.to_le_bytes().to_vec(),
        Dialect::Ascii => python_float_repr(seconds).into_bytes(),
        Dialect::Float32 => (seconds as f32).to_be_bytes().to_vec(),
    }
}

/// `str(float)` as Python prints it, so text-reading peers see what they expect.
fn python_float_repr(seconds: f64) -> String {
    let text = format!("{seconds}");
    if text.contains(['.', 'e', 'E']) || !seconds.is_finite() {
        text
    } else {
        text + ".0"
    }
}

/// Reads a peer's time from the bytes it sent, choosing the encoding whose
/// reading is within [`PLAUSIBLE_WINDOW_SECS`] of `local_now`.
pub fn decode_timestamp(bytes: &[u8], local_now: f64) -> Result<DecodedTimestamp, TimestampError> {
    if bytes.is_empty() {
        return Err(TimestampError::Empty);
    }
    let plausible =
        |seconds: f64| seconds.is_finite() && (seconds - local_now).abs() <= PLAUSIBLE_WINDOW_SECS;
    for dialect in Dialect::ALL {
        let Some(seconds) = read_as(bytes, dialect) else {
            continue;
        };
        if !plausible(seconds) {
            continue;
        }
        if dialect == Dialect::Float32 {
            return Err(TimestampError::Float32 {
                seconds,
                resolution_secs: f32_resolution(seconds as f32),
            });
        }
        return Ok(DecodedTimestamp { seconds, dialect });
    }
    Err(TimestampError::Unrecognised {
        len: bytes.len(),
        preview: bytes
            .iter()
            .take(16)
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect(),
    })
}

/// The dialect `bytes` are written in, when they are a time at all: unlike
/// [`decode_timestamp`], a 4-byte float counts, because what a peer *sends*
/// tells what it reads, however useless its time.
pub fn dialect_of(bytes: &[u8], local_now: f64) -> Option<Dialect> {
    match decode_timestamp(bytes, local_now) {
        Ok(decoded) => Some(decoded.dialect),
        Err(TimestampError::Float32 { .. }) => Some(Dialect::Float32),
        Err(_) => None,
    }
}

/// Which side of a timestamp connection writes first (PROTOCOL.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstSpeaker {
    /// The server writes its time on accept: the assignment's way.
    Server,
    /// The server reads the client's time before it answers.
    Client,
}

/// What is known of how a peer exchanges times: learnt from its answers to
/// us, or from what it sent when it was our client. Nothing known is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Manner {
    /// The encoding it writes, and so reads.
    pub dialect: Option<Dialect>,
    /// Who writes first on its server's connections.
    pub first: Option<FirstSpeaker>,
}

/// A server-first server writes its time within this of `accept`; one that
/// stays mute for longer is waiting for the client to speak.
pub const SERVER_FIRST_WITHIN: std::time::Duration = std::time::Duration::from_millis(250);

fn read_as(bytes: &[u8], dialect: Dialect) -> Option<f64> {
    match dialect {
        Dialect::BinaryBe => Some(f64::from_be_bytes(bytes.try_into().ok()?)),
        Dialect::BinaryLe => Some(f64::from_le_bytes(bytes.try_into().ok()?)),
        Dialect::Float32 => {
            let four: [u8; 4] = bytes.try_into().ok()?;
            let be = f32::from_be_bytes(four);
            let le = f32::from_le_bytes(four);
            // Either byte order of a 4-byte float is the same fault; report whichever reads as a time.
            Some(if be.is_finite() && be > 1.0e9 { be } else { le } as f64)
        }
        Dialect::Ascii => {
            let text = std::str::from_utf8(bytes).ok()?;
            let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
            let looks_numeric = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            looks_numeric.then(|| text.parse().ok()).flatten()
        }
    }
}

fn f32_resolution(value: f32) -> f64 {
    (f32::from_bits(value.to_bits() + 1) - value) as f64
}

/// If `offset_secs` (a peer's clock minus ours) is a whole number of half hours
/// away from zero, give it in hours: the signature of a peer that sends local time
/// instead of UTC.
pub fn time_zone_offset_hours(offset_secs: f64) -> Option<f64> {
    const HALF_HOUR: f64 = 1800.0;
    const TOLERANCE: f64 = 120.0;
    let half_hours = (offset_secs / HALF_HOUR).round();
    let distance = (offset_secs - half_hours * HALF_HOUR).abs();
    (half_hours != 0.0 && distance <= TOLERANCE).then_some(half_hours / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-11-24 18:40:00.123456 UTC.
    const T: f64 = 1732473600.123456;

    // Golden bytes from CPython 3.11:
    //   struct.pack("!d", 1732473600.123456), struct.pack("<d", ...), struct.pack("!f", ...)
    const PACK_BE_DOUBLE: [u8; 8] = [65, 217, 208, 220, 192, 7, 230, 180];
    const PACK_LE_DOUBLE: [u8; 8] = [180, 230, 7, 192, 220, 208, 217, 65];
    const PACK_BE_FLOAT: [u8; 4] = [78, 206, 134, 230];
    const PYTHON_STR: &[u8] = b"1732473600.123456";

    #[test]
    fn encodes_like_python_struct_pack() {
        assert_eq!(encode_timestamp(T, Dialect::BinaryBe), PACK_BE_DOUBLE);
        assert_eq!(encode_timestamp(T, Dialect::BinaryLe), PACK_LE_DOUBLE);
        assert_eq!(encode_timestamp(T, Dialect::Float32), PACK_BE_FLOAT);
        assert_eq!(encode_timestamp(T, Dialect::Ascii), PYTHON_STR);
    }

    #[test]
    fn ascii_whole_seconds_keep_python_trailing_zero() {
        assert_eq!(
            encode_timestamp(1732473600.0, Dialect::Ascii),
            b"1732473600.0"
        );
    }

    #[test]
    fn decodes_big_endian_double() {
        let got = decode_timestamp(&PACK_BE_DOUBLE, T + 0.5).unwrap();
        assert_eq!(
            got,
            DecodedTimestamp {
                seconds: T,
                dialect: Dialect::BinaryBe
            }
        );
    }

    #[test]
    fn decodes_little_endian_double() {
        let got = decode_timestamp(&PACK_LE_DOUBLE, T - 3.0).unwrap();
        assert_eq!(
            got,
            DecodedTimestamp {
                seconds: T,
                dialect: Dialect::BinaryLe
            }
        );
    }

    #[test]
    fn decodes_ascii_with_trailing_newline_and_nuls() {
        for bytes in [
            PYTHON_STR,
            b"1732473600.123456\n",
            b" 1732473600.123456\0\0",
            b"1.732473600123456e9",
        ] {
            let got = decode_timestamp(bytes, T).unwrap();
            assert_eq!(got.dialect, Dialect::Ascii, "{bytes:?}");
            assert!((got.seconds - T).abs() < 1e-6, "{bytes:?}");
        }
    }

    #[test]
    fn rejects_float32_naming_its_resolution() {
        match decode_timestamp(&PACK_BE_FLOAT, T) {
            Err(TimestampError::Float32 {
                seconds,
                resolution_secs,
            }) => {
                assert_eq!(seconds, 1732473600.0);
                assert_eq!(resolution_secs, 128.0);
            }
            other => panic!("expected Float32, got {other:?}"),
        }
        let mut le = PACK_BE_FLOAT;
        le.reverse();
        assert!(matches!(
            decode_timestamp(&le, T),
            Err(TimestampError::Float32 { .. })
        ));
    }

    #[test]
    fn rejects_readings_outside_a_day_of_the_local_clock() {
        let err = decode_timestamp(&PACK_BE_DOUBLE, T + 2.0 * PLAUSIBLE_WINDOW_SECS).unwrap_err();
        assert!(matches!(err, TimestampError::Unrecognised { len: 8, .. }));
        // Milliseconds since the epoch as text is a plausible mistake, but not a time in seconds.
        let err = decode_timestamp(b"1732473600123", T).unwrap_err();
        assert!(matches!(err, TimestampError::Unrecognised { len: 13, .. }));
    }

    #[test]
    fn rejects_empty_truncated_and_garbage() {
        assert_eq!(decode_timestamp(b"", T), Err(TimestampError::Empty));
        assert!(matches!(
            decode_timestamp(&PACK_BE_DOUBLE[..7], T),
            Err(TimestampError::Unrecognised { len: 7, .. })
        ));
        assert!(matches!(
            decode_timestamp(b"hello, world", T),
            Err(TimestampError::Unrecognised { len: 12, .. })
        ));
        assert!(matches!(
            decode_timestamp(b"nan", T),
            Err(TimestampError::Unrecognised { .. })
        ));
        assert!(matches!(
            decode_timestamp(b"inf", T),
            Err(TimestampError::Unrecognised { .. })
        ));
    }

    #[test]
    fn every_dialect_round_trips_except_float32() {
        for dialect in [Dialect::BinaryBe, Dialect::BinaryLe, Dialect::Ascii] {
            let got = decode_timestamp(&encode_timestamp(T, dialect), T).unwrap();
            assert_eq!(
                got,
                DecodedTimestamp {
                    seconds: T,
                    dialect
                }
            );
        }
    }

    #[test]
    fn flags_whole_and_half_hour_offsets_as_time_zone_bugs() {
        assert_eq!(time_zone_offset_hours(3.0 * 3600.0 + 0.004), Some(3.0));
        assert_eq!(time_zone_offset_hours(-7.0 * 3600.0 - 30.0), Some(-7.0));
        assert_eq!(time_zone_offset_hours(5.5 * 3600.0), Some(5.5));
        assert_eq!(time_zone_offset_hours(0.020), None);
        assert_eq!(time_zone_offset_hours(600.0), None);
        assert_eq!(time_zone_offset_hours(3600.0 + 600.0), None);
    }

    #[test]
    fn what_a_peer_sends_names_its_dialect_even_a_float32() {
        assert_eq!(dialect_of(&PACK_BE_FLOAT, T), Some(Dialect::Float32));
        assert_eq!(dialect_of(PYTHON_STR, T), Some(Dialect::Ascii));
        assert_eq!(dialect_of(&PACK_LE_DOUBLE, T), Some(Dialect::BinaryLe));
        assert_eq!(dialect_of(b"hello", T), None);
        assert_eq!(dialect_of(b"", T), None);
    }

    #[test]
    fn dialect_names_are_stable() {
        let names: Vec<_> = Dialect::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["binary_be", "binary_le", "ascii", "float32"]);
        assert_eq!(
            serde_json::to_string(&Dialect::BinaryLe).unwrap(),
            "\"binary_le\""
        );
    }
}
