//! `[verify]`'s link probe keys (`link_rate`, `link_duration`, `link_size`):
//! their ranges, checked where the file says them.

use std::time::Duration;

use super::{Locator, Topology, TopologyError};

/// Smallest payload: the probe's own header (magic, pair, sequence, time).
pub const MIN_SIZE: u16 = 24;
/// Largest payload: one unfragmented datagram on a 1500-byte link.
pub const MAX_SIZE: u16 = 1472;
/// Most packets per second of one pair.
pub const MAX_RATE: u32 = 10_000;
/// Longest stream.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

impl Topology {
    /// Each link probe key in its range, or an error where it is written.
    pub(super) fn check_link_probe(&self, at: &Locator<'_>) -> Result<(), TopologyError> {
        let verify = &self.verify;
        if let Some(rate) = &verify.link_rate {
            if !(1..=MAX_RATE).contains(rate.get_ref()) {
                return Err(at.error(
                    Some(rate.span()),
                    format!(
                        "link_rate {} packets/s is out of range: expected 1 to {MAX_RATE}",
                        rate.get_ref()
                    ),
                ));
            }
        }
        if let Some(size) = &verify.link_size {
            if !(MIN_SIZE..=MAX_SIZE).contains(size.get_ref()) {
                return Err(at.error(
                    Some(size.span()),
                    format!(
                        "link_size {} bytes is out of range: expected {MIN_SIZE} (the probe's header) to {MAX_SIZE} (one unfragmented datagram)",
                        size.get_ref()
                    ),
                ));
            }
        }
        if let Some(duration) = &verify.link_duration {
            if duration.0.is_zero() || duration.0 > MAX_DURATION {
                return Err(at.error(
                    Some(duration.1..duration.1),
                    format!(
                        "link_duration {:?} is out of range: expected more than 0 and at most {MAX_DURATION:?}",
                        duration.0
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(verify: &str) -> (usize, usize, String) {
        let text = format!("name = \"t\"\n[[node]]\nname = \"a\"\n[verify]\nlink = true\n{verify}");
        match Topology::parse(Path::new("t.toml"), &text) {
            Err(TopologyError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("{verify}: {other:?}"),
        }
    }

    #[test]
    fn each_link_probe_key_out_of_range_is_located() {
        let (line, column, message) = error("link_rate = 0\n");
        assert_eq!((line, column), (6, 13), "{message}");
        assert!(message.contains("link_rate 0"), "{message}");
        let (line, _, message) = error("link_size = 10\n");
        assert_eq!(line, 6);
        assert!(message.contains("link_size 10 bytes"), "{message}");
        let (line, column, message) = error("link_duration = \"0s\"\n");
        assert_eq!((line, column), (6, 17), "{message}");
        assert!(message.contains("link_duration"), "{message}");
        let (line, _, message) = error("link_duration = \"11min\"\n");
        assert_eq!(line, 6, "{message}");
    }

    #[test]
    fn keys_in_range_are_read() {
        let text = "name = \"t\"\n[[node]]\nname = \"a\"\n[verify]\nlink = true\nlink_rate = 10\nlink_size = 1472\nlink_duration = \"2s\"\n";
        assert!(Topology::parse(Path::new("t.toml"), text).is_ok());
    }
}
