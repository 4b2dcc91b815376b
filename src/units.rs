//! Durations as people write them (`1s`, `250ms`, `2.5ms`, `40us`), and sizes
//! (`512MiB`, `64 MiB`, `1GiB`), shared by the command line and lab files so
//! both accept the same spellings.

use std::time::Duration;

use thiserror::Error;

/// Why a duration string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Missing number or unit, or something that is neither.
    #[error("{0:?} is not a duration: a duration is a non-negative number with a unit: 500us, 20ms, 1.5s, 2m")]
    Syntax(String),
    /// A unit outside `ns`, `us`, `ms`, `s`, `m`.
    #[error("{unit:?} in {text:?} is not a unit: use ns, us, ms, s or m")]
    Unit {
        /// The whole input.
        text: String,
        /// The unknown unit.
        unit: String,
    },
    /// Negative, not finite or too large.
    #[error("{0:?} is out of range")]
    Range(String),
}

/// Parses `<number><unit>` with an optional decimal fraction; `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::Syntax(text.to_owned()))?;
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() || number.chars().filter(|c| *c == '.').count() > 1 {
        return Err(DurationError::Syntax(text.to_owned()));
    }
    let nanos_per_unit: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        other => {
            return Err(DurationError::Unit {
                text: text.to_owned(),
                unit: other.to_owned(),
            })
        }
    };
    // In integers, so `60us` is 60000 ns exactly, not the float nearest 6e-5 s.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let range = || DurationError::Range(text.to_owned());
    let digits = |s: &str| -> Result<u128, DurationError> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse().map_err(|_| range())
        }
    };
    let fraction = &fraction[..fraction.len().min(18)];
    let scale = 10u128.pow(fraction.len() as u32);
    let part = (digits(fraction)? * nanos_per_unit + scale / 2) / scale;
    let nanos = digits(whole)?
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(part))
        .ok_or_else(range)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| range())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// A duration in milliseconds for JSON and tables, computed from its integer
/// nanoseconds so `60us` is `0.06`, not `0.060000000000000005`.
pub fn millis(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1e6
}

/// A figure in milliseconds as people read it: at most three decimals (the
/// microsecond), trailing zeros dropped (`0.06`, `2.05`, `5`).
pub fn format_ms(ms: f64) -> String {
    let text = format!("{:.3}", round(ms, 3));
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Prints a duration in the unit people would write it in (`1s`, `2.5ms`, `40us`).
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let (value, unit) = match nanos {
        0 => return "0".to_owned(),
        n if n % 1_000_000_000 == 0 => (n as f64 / 1e9, "s"),
        n if n >= 1_000_000 => (n as f64 / 1e6, "ms"),
        n if n >= 1_000 => (n as f64 / 1e3, "us"),
        n => (n as f64, "ns"),
    };
    format!("{value}{unit}")
}

/// Why a size string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// Missing number or unit, a unit that is not one, or out of range.
    #[error("{0:?} is not a size: write a number and a unit, e.g. 512MiB, 64MiB, 1GiB")]
    Syntax(String),
}

/// `value` rounded to `digits` decimals, for figures people read (`0.06`,
/// not `0.060000000000000005`).
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Parses a rate as tc writes one: bits per second with `bit`, `kbit`,
/// `mbit`, `gbit` (or `tbit`), bytes per second with `bps`, `kbps`, `mbps`,
/// `gbps`; the prefixes decimal, `Kibit`-style binary ones too.
pub fn parse_rate(text: &str) -> Result<u64, RateError> {
    let syntax = || RateError(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(syntax)?;
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| syntax())?;
    let unit = unit.trim().to_ascii_lowercase();
    let (prefix, per_byte) = if let Some(prefix) = unit.strip_suffix("bit") {
        (prefix, false)
    } else if let Some(prefix) = unit.strip_suffix("bps") {
        (prefix, true)
    } else {
        return Err(syntax());
    };
    let scale: f64 = match prefix {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(syntax()),
    };
    let bits = value * scale * if per_byte { 8.0 } else { 1.0 };
    if !bits.is_finite() || !(1.0..=u64::MAX as f64).contains(&bits) {
        return Err(syntax());
    }
    Ok(bits.round() as u64)
}

/// Prints a rate as tc would read it back: `10 Mbit/s`, `1.5 Gbit/s`.
pub fn format_rate(bits_per_second: u64) -> String {
    for (scale, unit) in [(1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")] {
        if bits_per_second as f64 >= scale {
            return format!("{} {unit}", round(bits_per_second as f64 / scale, 3));
        }
    }
    format!("{bits_per_second} bit/s")
}

/// A rate that is not `<number><unit>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a rate: expected a number and a unit of tc's, e.g. \"10mbit\", \"512kbit\", \"1gbit\" (bits per second) or \"100kbps\" (bytes)")]
pub struct RateError(String);

/// Parses `<number><unit>`, the unit one of `B`, `KiB`, `MiB`, `GiB` (or the
/// decimal `kB`, `MB`, `GB`), with an optional space and fraction.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let syntax = || SizeError::Syntax(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(syntax)?;
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| syntax())?;
    let scale: u64 = match unit.trim() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(syntax()),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(syntax());
    }
    Ok(bytes.round() as u64)
}

/// Prints a size the way people would write it: `512 MiB`, `1.5 GiB`, `100 B`.
pub fn format_size(bytes: u64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (scale, unit) in units {
        if bytes >= scale {
            let value = bytes as f64 / scale as f64;
            let rounded = (value * 10.0).round() / 10.0;
            return format!("{rounded} {unit}");
        }
    }
    format!("{bytes} B")
}

/// Serde adapter for `Duration` fields written as strings like `"10ms"`.
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads `"10ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// Writes `"10ms"`.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }
}

/// Serde for `Option<Duration>` as `"10ms"` or null.
pub mod serde_duration_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads `"10ms"` or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// Writes `"10ms"` or null.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_str(&super::format_duration(*duration)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_tc_reads_them() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("512kbit"), Ok(512_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("100kbps"), Ok(800_000));
        assert_eq!(parse_rate("1Mibit"), Ok(1_048_576));
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("0bit").is_err());
        assert!(parse_rate("10 parsecs").is_err());
        assert_eq!(format_rate(10_000_000), "10 Mbit/s");
        assert_eq!(round(0.060000000000000005, 3), 0.06);
    }

    #[test]
    fn sizes_read_and_print_as_people_write_them() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for bad in ["512", "MiB", "5 mib", "1.2.3MiB", "-1MiB", "1e30GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(100), "100 B");
    }

    #[test]
    fn parses_every_unit_and_fractions() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2.5ms"), Ok(Duration::from_micros(2500)));
        assert_eq!(parse_duration("40us"), Ok(Duration::from_micros(40)));
        assert_eq!(parse_duration("40µs"), Ok(Duration::from_micros(40)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("60us"), Ok(Duration::from_micros(60)));
        assert_eq!(parse_duration("0.1ms"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn milliseconds_carry_no_float_noise() {
        assert_eq!(millis(parse_duration("60us").unwrap()), 0.06);
        assert_eq!(millis(Duration::from_micros(2050)), 2.05);
        assert_eq!(format_ms(0.060000000000000005), "0.06");
        assert_eq!(format_ms(2.0500000000000003), "2.05");
        assert_eq!(format_ms(5.0), "5");
        assert_eq!(format_ms(-0.0001), "0");
        assert_eq!(format_ms(12.3456), "12.346");
    }

    #[test]
    fn a_bad_duration_says_what_a_duration_is() {
        let message = parse_duration("-1s").unwrap_err().to_string();
        assert!(
            message.contains("a non-negative number with a unit: 500us"),
            "{message}"
        );
    }

    #[test]
    fn rejects_missing_units_unknown_units_and_garbage() {
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("ms"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("1.2.3ms"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("-1ms"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("10 parsecs"),
            Err(DurationError::Unit { .. })
        ));
        assert!(matches!(
            parse_duration("10h"),
            Err(DurationError::Unit { .. })
        ));
    }

    #[test]
    fn formats_in_the_natural_unit_and_round_trips() {
        for text in ["1s", "2.5ms", "40us", "7ns", "120s", "0"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
        assert_eq!(format_duration(Duration::from_micros(2500)), "2.5ms");
        assert_eq!(format_duration(Duration::from_secs(1)), "1s");
    }
}
