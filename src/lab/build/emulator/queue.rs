//! Frames in flight, ordered by due time, with a bound per link so a flooding node
//! fills its own links' queues and nobody else's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A frame waiting for its due time on link `from -> to`.
#[derive(Debug)]
pub struct Pending<T> {
    /// When to write it.
    pub due: Instant,
    /// Sending port.
    pub from: usize,
    /// Receiving port.
    pub to: usize,
    /// The frame.
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

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

/// All frames in flight, earliest due first.
#[derive(Debug)]
pub struct TimedQueue<T> {
    heap: BinaryHeap<Pending<T>>,
    per_link: Vec<usize>,
    ports: usize,
    limit: usize,
    seq: u64,
}

impl<T> TimedQueue<T> {
    /// An empty queue for `ports` ports holding at most `limit` frames per link.
    pub fn new(ports: usize, limit: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            per_link: vec![0; ports * ports],
            ports,
            limit,
            seq: 0,
        }
    }

    /// Queues `item` on `from -> to`, or hands it back when that link is full.
    pub fn push(&mut self, from: usize, to: usize, due: Instant, item: T) -> Result<(), Full<T>> {
        let count = &mut self.per_link[from * self.ports + to];
        if *count >= self.limit {
            return Err(Full(item));
        }
        *count += 1;
        self.seq += 1;
        self.heap.push(Pending {
            due,
            from,
            to,
            item,
            seq: self.seq,
        });
        Ok(())
    }

    /// The earliest due time in the queue.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|pending| pending.due)
    }

    /// Takes the earliest frame out, due or not. It still counts against its link
    /// until [`TimedQueue::done`], so nobody overtakes it while it is being written.
    pub fn pop(&mut self) -> Option<Pending<T>> {
        self.heap.pop()
    }

    /// Records that a popped frame of `from -> to` has left.
    pub fn done(&mut self, from: usize, to: usize) {
        let count = &mut self.per_link[from * self.ports + to];
        *count = count.saturating_sub(1);
    }

    /// Frames on `from -> to` not yet written (queued or popped).
    pub fn link_len(&self, from: usize, to: usize) -> usize {
        self.per_link[from * self.ports + to]
    }

    /// Frames held in all.
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
        queue.push(0, 1, t0 + 5 * MS, "late").unwrap();
        queue.push(2, 1, t0 + MS, "early").unwrap();
        queue.push(0, 2, t0 + 3 * MS, "tie-1").unwrap();
        queue.push(0, 2, t0 + 3 * MS, "tie-2").unwrap();
        assert_eq!(queue.next_due(), Some(t0 + MS));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).map(|p| p.item).collect();
        assert_eq!(queue.link_len(0, 2), 2);
        assert_eq!(order, ["early", "tie-1", "tie-2", "late"]);
        assert!(queue.is_empty());
        assert_eq!(queue.next_due(), None);
    }

    #[test]
    fn bounds_each_link_separately_and_frees_room_on_pop() {
        let t0 = Instant::now();
        let mut queue = TimedQueue::new(2, 2);
        queue.push(0, 1, t0, 1).unwrap();
        queue.push(0, 1, t0, 2).unwrap();
        assert_eq!(queue.push(0, 1, t0, 3), Err(Full(3)));
        queue.push(1, 0, t0, 4).unwrap();
        assert_eq!(queue.link_len(0, 1), 2);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop().map(|p| p.item), Some(1));
        assert_eq!(queue.push(0, 1, t0, 5), Err(Full(5)));
        queue.done(0, 1);
        queue.push(0, 1, t0, 5).unwrap();
        assert_eq!(queue.link_len(0, 1), 2);
    }
}
