//! Rate limiting of warnings: a hostile or broken peer must not flood the output.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys remembered at most; beyond, the oldest half is forgotten.
const MAX_KEYS: usize = 1024;

/// Admits one warning per key per period and counts the rest.
#[derive(Debug)]
pub struct WarningLimiter {
    period: Duration,
    last: HashMap<String, (Instant, u64)>,
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
    pub fn admit(&mut self, key: String, now: Instant) -> Option<u64> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_once_per_period_and_counts_the_rest() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(limiter.admit("a".into(), now), Some(0));
        assert_eq!(
            limiter.admit("a".into(), now + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            limiter.admit("a".into(), now + Duration::from_secs(2)),
            None
        );
        assert_eq!(
            limiter.admit("b".into(), now),
            Some(0),
            "keys are independent"
        );
        assert_eq!(
            limiter.admit("a".into(), now + Duration::from_secs(10)),
            Some(2)
        );
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_keys() {
        let mut limiter = WarningLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..10 * MAX_KEYS as u64 {
            limiter.admit(format!("k{i}"), now + Duration::from_micros(i));
        }
        assert!(limiter.last.len() <= MAX_KEYS);
    }
}
