//! [`Pending`]: the requests of one model version waiting for a batch, by priority level and in
//! arrival order within a level. It decides which requests make the next batch: highest
//! priority first, whole requests only, only requests whose tensors stack with the first one's
//! (same dimensions after the batch dimension), never more rows than the batch may hold.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::Entry;

/// Waiting requests, one FIFO per priority level (index 0 is the highest).
#[derive(Debug)]
pub(super) struct Pending {
    levels: Vec<VecDeque<Entry>>,
    len: usize,
}

impl Pending {
    /// An empty queue with `levels` priority levels.
    pub(super) fn new(levels: usize) -> Pending {
        Pending {
            levels: (0..levels.max(1)).map(|_| VecDeque::new()).collect(),
            len: 0,
        }
    }

    /// Adds a request at its priority level.
    pub(super) fn push(&mut self, entry: Entry) {
        self.len += 1;
        let level = entry.priority.min(self.levels.len() - 1);
        self.levels[level].push_back(entry);
    }

    /// Whether no request waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Requests waiting.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// When the longest-waiting request arrived.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|level| level.front().map(|e| e.enqueued_at))
            .min()
    }

    /// The earliest deadline of any waiting request.
    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.levels
            .iter()
            .flatten()
            .filter_map(|e| e.deadline)
            .min()
    }

    /// Removes the requests whose deadline has passed or whose client went away, handing each
    /// to `expired` (which answers it).
    pub(super) fn remove_stale(&mut self, now: Instant, mut expired: impl FnMut(Entry)) {
        for level in &mut self.levels {
            let mut kept = VecDeque::with_capacity(level.len());
            for entry in level.drain(..) {
                if entry.reply.is_closed() || entry.deadline.is_some_and(|d| d <= now) {
                    self.len -= 1;
                    if !entry.reply.is_closed() {
                        expired(entry);
                    }
                } else {
                    kept.push_back(entry);
                }
            }
            *level = kept;
        }
    }

    /// Takes the next batch: the first request of the highest non-empty level, then, in
    /// priority and arrival order, every request that stacks with it while the rows stay within
    /// `limit` (a first request larger than `limit` goes alone: admission checked it against
    /// the model's maximum). A request that does not fit stays for a later batch.
    pub(super) fn take_batch(&mut self, limit: usize) -> Vec<Entry> {
        let mut batch: Vec<Entry> = Vec::new();
        let mut rows = 0;
        for level in &mut self.levels {
            let mut kept = VecDeque::with_capacity(level.len());
            while let Some(entry) = level.pop_front() {
                let fits = match batch.first() {
                    None => true,
                    Some(first) => rows + entry.rows <= limit && stacks(first, &entry),
                };
                if fits {
                    rows += entry.rows;
                    batch.push(entry);
                } else {
                    kept.push_back(entry);
                }
            }
            *level = kept;
        }
        self.len -= batch.len();
        batch
    }

    /// Rows that would join a batch led by the first waiting request (up to `limit`).
    pub(super) fn batchable_rows(&self, limit: usize) -> usize {
        let mut iter = self.levels.iter().flatten();
        let Some(first) = iter.next() else { return 0 };
        let mut rows = first.rows;
        for entry in iter {
            if rows + entry.rows <= limit && stacks(first, entry) {
                rows += entry.rows;
            }
        }
        rows
    }
}

/// Whether the inputs of `b` stack under those of `a`: same datatypes and the same
/// dimensions after the first.
fn stacks(a: &Entry, b: &Entry) -> bool {
    a.batchable
        && b.batchable
        && a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.datatype() == y.datatype() && x.shape.get(1..) == y.shape.get(1..))
}
