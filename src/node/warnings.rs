//! Rate limiting of warnings: a hostile or broken peer must not flood the output.
//! Warnings are keyed by their kind and the source address, never by anything
//! a sender writes (an ID costs nothing to change; an address does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::event::WarningKind;

/// What one warning is limited by.
pub type WarningKey = (WarningKind, Option<IpAddr>);

/// Keys remembered at most; beyond, the oldest half is forgotten.
const MAX_KEYS: usize = 1024;

/// Admits one warning per key per period and counts the rest.
#[derive(Debug)]
pub struct WarningLimiter {
    period: Duration,
    last: HashMap<WarningKey, (Instant, u64)>,
}

impl WarningLimiter {
    /// A limiter admitting one warning per key every `period`.
    pub fn new(period: Duration) -> Self {
        WarningLimiter {
            period,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed since the last admitted)` when this warning should be shown.
    pub fn admit(&mut self, key: WarningKey, now: Instant) -> Option<u64> {
        if let Some((at, suppressed)) = self.last.get_mut(&key) {
            if now.saturating_duration_since(*at) < self.period {
                *suppressed += 1;
                return None;
            }
            let count = *suppressed;
            *at = now;
            *suppressed = 0;
            return Some(count);
        }
        if self.last.len() >= MAX_KEYS {
            let mut ages: Vec<Instant> = self.last.values().map(|(at, _)| *at).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            self.last.retain(|_, (at, _)| *at > cutoff);
        }
        self.last.insert(key, (now, 0));
        Some(0)
    }

    /// Keys whose period has ended with warnings suppressed in it, with their
    /// counts (then reset): so a count is reported even when no later warning
    /// of its key comes to carry it.
    pub fn overdue(&mut self, now: Instant) -> Vec<(WarningKey, u64)> {
        let period = self.period;
        self.last
            .iter_mut()
            .filter(|(_, (at, suppressed))| {
                *suppressed > 0 && now.saturating_duration_since(*at) >= period
            })
            .map(|(key, (at, suppressed))| {
                *at = now;
                (*key, std::mem::take(suppressed))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_once_per_period_and_counts_the_rest() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        let a = (WarningKind::BadTimestamp, Some(IpAddr::from([10, 0, 0, 1])));
        let b = (WarningKind::BadTimestamp, Some(IpAddr::from([10, 0, 0, 2])));
        let c = (WarningKind::TimeZone, Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(limiter.admit(a, now), Some(0));
        assert_eq!(limiter.admit(a, now + Duration::from_secs(1)), None);
        assert_eq!(limiter.admit(a, now + Duration::from_secs(2)), None);
        assert_eq!(limiter.admit(b, now), Some(0), "addresses are independent");
        assert_eq!(limiter.admit(c, now), Some(0), "kinds are independent");
        assert_eq!(limiter.admit(a, now + Duration::from_secs(10)), Some(2));
    }

    #[test]
    fn counts_left_without_a_later_warning_are_reported_when_their_period_ends() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        let key = (
            WarningKind::AdmissionLimited,
            Some(IpAddr::from([10, 0, 0, 1])),
        );
        limiter.admit(key, now);
        for i in 1..=5 {
            assert_eq!(limiter.admit(key, now + Duration::from_secs(i)), None);
        }
        assert!(limiter.overdue(now + Duration::from_secs(9)).is_empty());
        assert_eq!(limiter.overdue(now + Duration::from_secs(10)), [(key, 5)]);
        assert!(limiter.overdue(now + Duration::from_secs(30)).is_empty());
        assert_eq!(
            limiter.admit(key, now + Duration::from_secs(30)),
            Some(0),
            "counted once"
        );
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_keys() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..10 * MAX_KEYS as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            limiter.admit(
                (WarningKind::MalformedDatagram, Some(ip)),
                now + Duration::from_micros(i.into()),
            );
        }
        assert!(limiter.last.len() <= MAX_KEYS);
    }
}
