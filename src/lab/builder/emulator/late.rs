//! Which frames the machine made late, for the lab's judge: a node's delay
//! sample whose answer arrived late measures the machine, not the link.
//!
//! A frame is late when the emulator wrote it more than [`super::LATE`] after
//! its due time, or when it is a time (an answer's: 8 bytes of a binary
//! double, or a decimal) that reached the emulator more than [`HELD`] after
//! the time it carries: its sender's process or kernel did not run between
//! stamping and sending, and the link starts only when the frame leaves.
//! Only frames that carry a TCP payload are logged (an answer's time is one; a
//! pure ACK or a broadcast is none), each as a [`LateDelivery`]. The real-time
//! thread records into a fixed [`LateRing`] (atomics, no lock, no allocation);
//! another thread drains it and appends the entries to a text file the lab
//! follows ([`LateDelivery::line`], [`LateDelivery::parse`]).

use std::ops::Range;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

/// Entries the ring holds: at 100 nodes on a loaded 2-core machine about 1500
/// payload frames a second were late, so this is ten seconds of them between
/// two drains (the drain runs every second).
pub const RING: usize = 16_384;

/// How long after the time it carries a time may reach the emulator before it
/// counts as held by its sender: an idle machine takes tens of microseconds.
pub const HELD: Duration = Duration::from_micros(100);

/// Beyond this the time in a frame is not one its sender held but a wrong one
/// (local time, a clock of its own): a sample made of it must fail as the
/// node's fault, not be set aside as the machine's.
pub const HELD_AT_MOST: Duration = Duration::from_secs(1);

/// One frame that carried a TCP payload and was late: written to its port late,
/// or held by its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LateDelivery {
    /// When it was written, wall clock, microseconds since the Unix epoch.
    pub at_us: u64,
    /// The emulator port it came from (a node's, in plan order).
    pub from: u16,
    /// The emulator port it was written to.
    pub to: u16,
    /// Its TCP source port: a node's timestamp server answers from its own.
    pub source_port: u16,
    /// How late it was written, microseconds (saturated; 0 if on time).
    pub late_us: u32,
    /// How long after the time it carries it reached the emulator, if it carries
    /// one, microseconds (saturated; 0 if none or unknown).
    pub held_us: u32,
}

impl LateDelivery {
    /// One line of the late log: `at_us from to source_port late_us held_us`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.at_us, self.from, self.to, self.source_port, self.late_us, self.held_us
        )
    }

    /// Parses one line of the late log; none for anything else.
    pub fn parse(line: &str) -> Option<LateDelivery> {
        let mut fields = line.split_ascii_whitespace();
        let entry = LateDelivery {
            at_us: fields.next()?.parse().ok()?,
            from: fields.next()?.parse().ok()?,
            to: fields.next()?.parse().ok()?,
            source_port: fields.next()?.parse().ok()?,
            late_us: fields.next()?.parse().ok()?,
            held_us: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(entry)
    }
}

/// The TCP source port of an Ethernet frame that carries a TCP segment with a
/// payload (IPv4 unfragmented or IPv6 without extension headers, an 802.1Q tag
/// allowed), and where its payload lies in the frame; none for anything else
/// (a pure ACK, a SYN, UDP, ARP, a runt). Reads only headers: no allocation.
pub fn tcp_payload(frame: &[u8]) -> Option<(u16, Range<usize>)> {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
    };
    let (mut ethertype, mut ip) = (be16(12)?, 14);
    if ethertype == 0x8100 {
        (ethertype, ip) = (be16(16)?, 18);
    }
    let (tcp, segment_len) = match ethertype {
        0x0800 => {
            let first = *frame.get(ip)?;
            let header = usize::from(first & 0x0f) * 4;
            let total = usize::from(be16(ip + 2)?);
            let fragment = be16(ip + 6)? & 0x1fff;
            if first >> 4 != 4 || *frame.get(ip + 9)? != 6 || fragment != 0 || header < 20 {
                return None;
            }
            (ip + header, total.checked_sub(header)?)
        }
        0x86dd => {
            if *frame.get(ip + 6)? != 6 {
                return None;
            }
            (ip + 40, usize::from(be16(ip + 4)?))
        }
        _ => return None,
    };
    let offset = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    if offset < 20 || segment_len <= offset {
        return None;
    }
    let payload = (tcp + offset).min(frame.len())..(tcp + segment_len).min(frame.len());
    Some((be16(tcp)?, payload))
}

/// The Unix time (seconds) a payload carries, if it is one as nodes send them
/// (PROTOCOL.md section 2): 8 bytes of a big- or little-endian double, or a
/// decimal such as `1733216462.123456`, within [`HELD_AT_MOST`] before `now`
/// (or a millisecond after, for rounding): anything else is no time held,
/// though it may be a wrong one.
pub fn carried_time(payload: &[u8], now: f64) -> Option<f64> {
    let plausible = |t: f64| (now - HELD_AT_MOST.as_secs_f64()..=now + 1e-3).contains(&t);
    if let Ok(bytes) = <[u8; 8]>::try_from(payload) {
        let (be, le) = (f64::from_be_bytes(bytes), f64::from_le_bytes(bytes));
        return [be, le].into_iter().find(|t| plausible(*t));
    }
    if payload.len() > 32 || !payload.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return None;
    }
    let time: f64 = std::str::from_utf8(payload).ok()?.parse().ok()?;
    plausible(time).then_some(time)
}

/// A fixed ring of late deliveries: one writer (the real-time thread) that never
/// waits, one reader that drains it and learns how many it missed if it fell
/// more than [`RING`] entries behind. A seqlock in spirit: the writer claims an
/// entry before it fills its slot and publishes it after, so the reader can tell
/// an entry it read while the slot was being reused.
#[derive(Debug)]
pub struct LateRing {
    /// Per slot: wall time, ports (from, to, source), lateness.
    slots: Box<[[AtomicU64; 3]]>,
    /// Entries whose writing began; entry `n` lives in slot `n % len`.
    claimed: AtomicU64,
    /// Entries completely written.
    written: AtomicU64,
}

impl Default for LateRing {
    fn default() -> LateRing {
        LateRing::with_capacity(RING)
    }
}

impl LateRing {
    /// A ring of `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> LateRing {
        LateRing {
            slots: (0..capacity.max(1)).map(|_| Default::default()).collect(),
            claimed: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Records one late delivery, overwriting the oldest if the ring is full.
    /// Only one thread may record.
    pub fn record(&self, entry: &LateDelivery) {
        let n = self.written.load(Ordering::Relaxed);
        self.claimed.store(n + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let slot = &self.slots[(n % self.slots.len() as u64) as usize];
        let ports =
            u64::from(entry.from) << 32 | u64::from(entry.to) << 16 | u64::from(entry.source_port);
        slot[0].store(entry.at_us, Ordering::Relaxed);
        slot[1].store(ports, Ordering::Relaxed);
        slot[2].store(
            u64::from(entry.held_us) << 32 | u64::from(entry.late_us),
            Ordering::Relaxed,
        );
        self.written.store(n + 1, Ordering::Release);
    }

    /// Appends to `out` the entries recorded since `cursor` (then moves it past
    /// them) and returns how many of those were overwritten before they were read.
    pub fn drain(&self, cursor: &mut u64, out: &mut Vec<LateDelivery>) -> u64 {
        let capacity = self.slots.len() as u64;
        let written = self.written.load(Ordering::Acquire);
        let first = (*cursor).max(written.saturating_sub(capacity));
        let start = out.len();
        for n in first..written {
            let slot = &self.slots[(n % capacity) as usize];
            let (ports, times) = (
                slot[1].load(Ordering::Relaxed),
                slot[2].load(Ordering::Relaxed),
            );
            out.push(LateDelivery {
                at_us: slot[0].load(Ordering::Relaxed),
                from: (ports >> 32) as u16,
                to: (ports >> 16) as u16,
                source_port: ports as u16,
                late_us: times as u32,
                held_us: (times >> 32) as u32,
            });
        }
        // Entry `n` is intact unless the writer claimed `n + capacity` (its slot)
        // before the reads above ended.
        fence(Ordering::Acquire);
        let intact_from = self
            .claimed
            .load(Ordering::Relaxed)
            .saturating_sub(capacity);
        let torn = intact_from.saturating_sub(first).min(written - first);
        out.drain(start..start + torn as usize);
        let missed = first - *cursor + torn;
        *cursor = written;
        missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (20-byte header) + TCP (`offset` bytes) + `payload` bytes.
    fn ipv4_tcp(offset: usize, payload: usize) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + offset + payload];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        let total = (20 + offset + payload) as u16;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame[23] = 6;
        frame[34..36].copy_from_slice(&7000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&40000u16.to_be_bytes());
        frame[46] = ((offset / 4) as u8) << 4;
        frame
    }

    #[test]
    fn the_classifier_takes_tcp_payloads_and_nothing_else() {
        assert_eq!(tcp_payload(&ipv4_tcp(20, 8)), Some((7000, 54..62)));
        assert_eq!(
            tcp_payload(&ipv4_tcp(32, 8)),
            Some((7000, 66..74)),
            "with options"
        );
        assert_eq!(tcp_payload(&ipv4_tcp(20, 0)), None, "a pure ACK");
        assert_eq!(
            tcp_payload(&ipv4_tcp(32, 0)),
            None,
            "an ACK with timestamps"
        );
        // Ethernet padding of a short segment is no payload: IPv4's length says so.
        let mut padded = ipv4_tcp(20, 0);
        padded.resize(60, 0);
        assert_eq!(tcp_payload(&padded), None, "a padded ACK");
        let mut udp = ipv4_tcp(20, 8);
        udp[23] = 17;
        assert_eq!(tcp_payload(&udp), None, "UDP");
        let mut fragment = ipv4_tcp(20, 8);
        fragment[21] = 1;
        assert_eq!(tcp_payload(&fragment), None, "a later fragment");
        let mut arp = ipv4_tcp(20, 8);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(tcp_payload(&arp), None, "ARP");
        assert_eq!(tcp_payload(&ipv4_tcp(20, 8)[..40]), None, "a runt");
        assert_eq!(tcp_payload(&[]), None);
        let mut tagged = ipv4_tcp(20, 8);
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(tcp_payload(&tagged), Some((7000, 58..66)), "802.1Q");
        let mut v6 = vec![0u8; 14 + 40 + 20 + 8];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[18..20].copy_from_slice(&28u16.to_be_bytes());
        v6[20] = 6;
        v6[54..56].copy_from_slice(&7000u16.to_be_bytes());
        v6[66] = 5 << 4;
        assert_eq!(tcp_payload(&v6), Some((7000, 74..82)), "IPv6");
        v6[18..20].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(tcp_payload(&v6), None, "an IPv6 pure ACK");
    }

    #[test]
    fn a_time_is_read_in_the_dialects_nodes_send_and_nothing_else_is() {
        let now: f64 = 1_767_225_600.5;
        let sent = now - 0.012;
        assert_eq!(carried_time(&sent.to_be_bytes(), now), Some(sent));
        assert_eq!(carried_time(&sent.to_le_bytes(), now), Some(sent));
        assert_eq!(
            carried_time(b"1767225600.488", now),
            Some(1_767_225_600.488)
        );
        assert_eq!(
            carried_time(&(now - 120.0).to_be_bytes(), now),
            None,
            "too old"
        );
        // A node whose clock is 30 s behind sends a wrong time, not a held
        // one: its samples must fail as its own, not be set aside.
        assert_eq!(carried_time(&(now - 30.0).to_be_bytes(), now), None);
        assert_eq!(
            carried_time(&(now - 0.9).to_be_bytes(), now),
            Some(now - 0.9)
        );
        assert_eq!(
            carried_time(&(now + 1.0).to_be_bytes(), now),
            None,
            "from the future"
        );
        assert_eq!(
            carried_time(&(sent as f32).to_be_bytes(), now),
            None,
            "4-byte floats"
        );
        assert_eq!(carried_time(b"hello wo", now), None);
        assert_eq!(carried_time(b"GET / HTTP/1.0", now), None);
        assert_eq!(carried_time(b"", now), None);
    }

    fn entry(n: u64) -> LateDelivery {
        LateDelivery {
            at_us: 1_700_000_000_000_000 + n,
            from: 3,
            to: 65_535,
            source_port: 40_000,
            late_us: 70_000 + n as u32,
            held_us: 5_000_000,
        }
    }

    #[test]
    fn the_ring_hands_over_each_entry_once_and_counts_what_it_overwrote() {
        let ring = LateRing::with_capacity(4);
        let (mut cursor, mut out) = (0, Vec::new());
        assert_eq!(ring.drain(&mut cursor, &mut out), 0);
        assert!(out.is_empty());
        for n in 0..3 {
            ring.record(&entry(n));
        }
        assert_eq!(ring.drain(&mut cursor, &mut out), 0);
        assert_eq!(out, [entry(0), entry(1), entry(2)]);
        out.clear();
        assert_eq!(ring.drain(&mut cursor, &mut out), 0, "nothing new");
        assert!(out.is_empty());
        for n in 3..10 {
            ring.record(&entry(n));
        }
        // Seven new entries in four slots: the three oldest are gone.
        assert_eq!(ring.drain(&mut cursor, &mut out), 3);
        assert_eq!(out, [entry(6), entry(7), entry(8), entry(9)]);
    }

    #[test]
    fn a_log_line_parses_back_and_nothing_else_does() {
        let late = entry(5);
        assert_eq!(LateDelivery::parse(late.line().trim_end()), Some(late));
        assert_eq!(LateDelivery::parse("1 2 3 4 5"), None);
        assert_eq!(LateDelivery::parse("1 2 3 4 5 6 7"), None);
        assert_eq!(LateDelivery::parse("# lost 4"), None);
    }
}
