//! The queue between a node's tasks and its output: sending never blocks, and
//! what does not fit is counted in the node's tally and reported.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::event::{NodeEvent, WarningKind};
use super::tally::Tally;

/// Events waiting for the output at most; beyond, new ones are dropped and counted.
pub const EVENT_QUEUE: usize = 4096;

/// A node's end of its event queue. Sending never blocks: a stalled reader of
/// stdout must not stall the node, so what does not fit is counted instead.
///
/// The bound is a count, not a preallocated array: `sync_channel(4096)` writes
/// all 4096 slots (~170 bytes each) at creation, 0.7 MB resident for a queue
/// that is almost always empty. This one holds what is queued and no more.
#[derive(Debug, Clone)]
pub struct EventSender {
    queue: Sender<NodeEvent>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
    tally: Arc<Tally>,
}

/// The output's end of the queue.
#[derive(Debug)]
pub struct EventReceiver {
    queue: mpsc::Receiver<NodeEvent>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    tally: Arc<Tally>,
}

/// A queue of `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, EventReceiver) {
    let (queue, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Tally::default());
    (
        EventSender {
            queue,
            queued: queued.clone(),
            capacity,
            dropped: dropped.clone(),
            tally: tally.clone(),
        },
        EventReceiver {
            queue: receiver,
            queued,
            dropped,
            tally,
        },
    )
}

/// What became of an event offered to the queue.
enum Offer {
    Queued,
    Full(NodeEvent),
}

impl EventSender {
    /// Queues `event`, or counts it dropped when the queue is full. An output
    /// that is gone drops everything silently.
    pub fn send(&self, event: NodeEvent) {
        if let Offer::Full(_) = self.offer(event) {
            self.drop_one();
        }
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.tally.warnings(WarningKind::EventsDropped, 1);
    }

    /// The node's counts, which travel beside the queue.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Queues `event` if fewer than `capacity` wait; a gone reader takes it too.
    fn offer(&self, event: NodeEvent) -> Offer {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Offer::Full(event);
        }
        if self.queue.send(event).is_err() {
            // The output is gone: nothing will ever take it off the count.
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        Offer::Queued
    }

    /// Queues the last event, waiting up to `patience` for room: unlike the
    /// others, a reader that is merely slow should still see it.
    pub async fn send_last(&self, event: NodeEvent, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        let mut event = event;
        loop {
            match self.offer(event) {
                Offer::Queued => return,
                Offer::Full(back) => event = back,
            }
            if tokio::time::Instant::now() >= deadline {
                self.drop_one();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl EventReceiver {
    /// The node's counts, exact where events are limited or dropped.
    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    /// The next event, waiting at most `wait`. Events dropped since the last
    /// call come first, as one `events_dropped` warning with their count.
    pub fn recv_timeout(&self, wait: Duration) -> Result<NodeEvent, RecvTimeoutError> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Ok(NodeEvent::Warning {
                kind: WarningKind::EventsDropped,
                message: format!("{dropped} events left out: the output did not keep up"),
                suppressed: dropped,
                peer: None,
                ip: None,
            });
        }
        let event = self.queue.recv_timeout(wait)?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_holds_capacity_events_counts_the_rest_and_frees_room_as_read() {
        let (sender, receiver) = channel(3);
        for _ in 0..5 {
            sender.send(NodeEvent::Stopped);
        }
        let wait = Duration::from_millis(10);
        match receiver.recv_timeout(wait) {
            Ok(NodeEvent::Warning {
                kind: WarningKind::EventsDropped,
                suppressed: 2,
                ..
            }) => {}
            other => panic!("expected 2 events dropped, got {other:?}"),
        }
        for _ in 0..3 {
            assert_eq!(receiver.recv_timeout(wait), Ok(NodeEvent::Stopped));
        }
        assert_eq!(receiver.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        sender.send(NodeEvent::Stopped);
        assert_eq!(receiver.recv_timeout(wait), Ok(NodeEvent::Stopped));
    }
}
