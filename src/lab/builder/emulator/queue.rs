//! Frames in flight, ordered by due time, with a bound per link so a flooding node
//! fills its own links' queues and nobody else's.
//!
//! An entry is whatever the emulator schedules (one frame and all its copies): it
//! is keyed by its next due time and put back, keeping its place in arrival order,
//! until its last copy has left. The bound counts copies per link.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// An entry waiting for its due time.
#[derive(Debug)]
pub struct Pending<T> {
    /// When it is next due.
    pub due: Instant,
    /// The entry.
    pub item: T,
    seq: u64,
}

impl<T> PartialEq for Pending<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Pending<T> {}

impl<T> PartialOrd for Pending<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Pending<T> {
    /// Reversed, so the max-heap yields the earliest due first; equal due times
    /// leave in arrival order, which keeps a FIFO link FIFO.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// All entries in flight, earliest due first, and the copies held per link.
#[derive(Debug)]
pub struct TimedQueue<T> {
    heap: BinaryHeap<Pending<T>>,
    per_link: Vec<usize>,
    ports: usize,
    limit: usize,
    seq: u64,
}

impl<T> TimedQueue<T> {
    /// An empty queue for `ports` ports holding at most `limit` copies per link.
    pub fn new(ports: usize, limit: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            per_link: vec![0; ports * ports],
            ports,
            limit,
            seq: 0,
        }
    }

    /// Takes room for one copy on `from -> to`; false when that link is full.
    pub fn admit(&mut self, from: usize, to: usize) -> bool {
        let count = &mut self.per_link[from * self.ports + to];
        if *count >= self.limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Gives back the room of a copy of `from -> to` that has left.
    pub fn done(&mut self, from: usize, to: usize) {
        let count = &mut self.per_link[from * self.ports + to];
        *count = count.saturating_sub(1);
    }

    /// Copies on `from -> to` admitted and not yet done.
    pub fn link_len(&self, from: usize, to: usize) -> usize {
        self.per_link[from * self.ports + to]
    }

    /// Queues a new entry, after every entry already queued for the same time.
    pub fn push(&mut self, due: Instant, item: T) {
        self.seq += 1;
        let seq = self.seq;
        self.heap.push(Pending { due, item, seq });
    }

    /// Puts a popped entry back for its next due time, in its original place
    /// among entries due at the same time.
    pub fn push_again(&mut self, mut pending: Pending<T>, due: Instant) {
        pending.due = due;
        self.heap.push(pending);
    }

    /// The earliest due time in the queue.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|pending| pending.due)
    }

    /// Takes the earliest entry out, due or not.
    pub fn pop(&mut self) -> Option<Pending<T>> {
        self.heap.pop()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn yields_earliest_first_and_ties_in_arrival_order() {
        let t0 = Instant::now();
        let mut queue = TimedQueue::new(3, 10);
        queue.push(t0 + 5 * MS, "late");
        queue.push(t0 + MS, "early");
        queue.push(t0 + 3 * MS, "tie-1");
        queue.push(t0 + 3 * MS, "tie-2");
        assert_eq!(queue.next_due(), Some(t0 + MS));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).map(|p| p.item).collect();
        assert_eq!(order, ["early", "tie-1", "tie-2", "late"]);
        assert!(queue.is_empty());
        assert_eq!(queue.next_due(), None);
    }

    #[test]
    fn an_entry_put_back_keeps_its_place_among_equal_due_times() {
        let t0 = Instant::now();
        let mut queue = TimedQueue::new(2, 10);
        queue.push(t0, "flood");
        queue.push(t0 + 2 * MS, "unicast");
        let flood = queue.pop().unwrap();
        assert_eq!(flood.item, "flood");
        // The flood's next copy is due with the unicast frame that came after it.
        queue.push_again(flood, t0 + 2 * MS);
        assert_eq!(queue.len(), 2);
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).map(|p| p.item).collect();
        assert_eq!(order, ["flood", "unicast"]);
    }

    #[test]
    fn bounds_each_link_separately_and_frees_room_when_done() {
        let mut queue = TimedQueue::<()>::new(2, 2);
        assert!(queue.admit(0, 1));
        assert!(queue.admit(0, 1));
        assert!(!queue.admit(0, 1));
        assert!(queue.admit(1, 0));
        assert_eq!(queue.link_len(0, 1), 2);
        queue.done(0, 1);
        assert_eq!(queue.link_len(0, 1), 1);
        assert!(queue.admit(0, 1));
        assert!(!queue.admit(0, 1));
    }
}
