//! Counts of what a node did, kept beside its event queue. Events are limited
//! (one warning per kind and address per period) and may be dropped when the
//! output does not keep up; counts are exact, so the node counts at the
//! source and the output reads them when it needs them (the metrics).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::event::{RemovalCause, WarningKind};

/// What became of a datagram the node sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatagramKind {
    /// An announcement of ours went out.
    Sent,
    /// An announcement from a peer (what a `heard` event reports).
    Heard,
    /// Our own announcement, come back: ignored.
    Own,
    /// A datagram that is not an announcement: ignored.
    Malformed,
}

impl DatagramKind {
    /// Every kind, in the order of their counts.
    pub const ALL: [DatagramKind; 4] = [
        DatagramKind::Sent,
        DatagramKind::Heard,
        DatagramKind::Own,
        DatagramKind::Malformed,
    ];
}

/// How an exchange with a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeResult {
    /// It answered a time (a 4-byte float counts: the peer is reachable).
    Success,
    /// It failed, for the same reason a neighbor would be removed.
    Failed(RemovalCause),
}

impl ExchangeResult {
    /// Every result, in the order of their counts.
    pub const ALL: [ExchangeResult; 8] = [
        ExchangeResult::Success,
        ExchangeResult::Failed(RemovalCause::Refused),
        ExchangeResult::Failed(RemovalCause::Timeout),
        ExchangeResult::Failed(RemovalCause::Unreachable),
        ExchangeResult::Failed(RemovalCause::Reset),
        ExchangeResult::Failed(RemovalCause::NoAnswer),
        ExchangeResult::Failed(RemovalCause::Io),
        ExchangeResult::Failed(RemovalCause::BadAnswer),
    ];

    /// Its slot: success first, then one per removal cause (`silent` ends no
    /// exchange: its slot stays empty and is not reported).
    fn index(self) -> usize {
        match self {
            ExchangeResult::Success => 0,
            ExchangeResult::Failed(cause) => 1 + cause as usize,
        }
    }
}

/// The counts; shared by the node (which adds) and its output (which reads).
#[derive(Debug)]
pub struct Tally {
    datagrams: [AtomicU64; DatagramKind::ALL.len()],
    exchanges: [AtomicU64; 1 + RemovalCause::ALL.len()],
    warnings: [AtomicU64; WarningKind::ALL.len()],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            datagrams: std::array::from_fn(|_| AtomicU64::new(0)),
            exchanges: std::array::from_fn(|_| AtomicU64::new(0)),
            warnings: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Tally {
    /// Counts one datagram of `kind`.
    pub fn datagram(&self, kind: DatagramKind) {
        self.datagrams[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one exchange that ended with `result`.
    pub fn exchange(&self, result: ExchangeResult) {
        self.exchanges[result.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `count` warnings of `kind`, shown or suppressed.
    pub fn warnings(&self, kind: WarningKind, count: u64) {
        self.warnings[kind as usize].fetch_add(count, Ordering::Relaxed);
    }

    /// Datagrams so far, per kind.
    pub fn datagram_counts(&self) -> impl Iterator<Item = (DatagramKind, u64)> + '_ {
        DatagramKind::ALL
            .into_iter()
            .map(|kind| (kind, self.datagrams[kind as usize].load(Ordering::Relaxed)))
    }

    /// Exchanges so far, per result.
    pub fn exchange_counts(&self) -> impl Iterator<Item = (ExchangeResult, u64)> + '_ {
        ExchangeResult::ALL.into_iter().map(|result| {
            (
                result,
                self.exchanges[result.index()].load(Ordering::Relaxed),
            )
        })
    }

    /// Warnings so far, per kind.
    pub fn warning_counts(&self) -> impl Iterator<Item = (WarningKind, u64)> + '_ {
        WarningKind::ALL
            .into_iter()
            .map(|kind| (kind, self.warnings[kind as usize].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_result_has_its_own_count() {
        let tally = Tally::default();
        for (n, kind) in DatagramKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, n);
            tally.datagram(kind);
        }
        for (n, cause) in RemovalCause::ALL.into_iter().enumerate() {
            assert_eq!(cause as usize, n);
        }
        for result in ExchangeResult::ALL {
            tally.exchange(result);
        }
        for (n, kind) in WarningKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, n);
            tally.warnings(kind, 2);
        }
        assert!(tally.datagram_counts().all(|(_, count)| count == 1));
        assert!(tally.exchange_counts().all(|(_, count)| count == 1));
        assert!(tally.warning_counts().all(|(_, count)| count == 2));
    }
}
