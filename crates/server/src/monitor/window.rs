//! The live values of a tensor's monitored columns: the last `rows` rows in a ring of atomic
//! slots, written without locks. A request reserves its rows with one `fetch_add` and stores
//! each value with a relaxed store; a reader copies the slots. A reader racing a writer may
//! see a row half old and half new, never a torn value: for distribution statistics over a
//! thousand rows that is noise, and it keeps the request path free of locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// A ring of the last `rows` rows of `width` values each (`f64` bits).
#[derive(Debug)]
pub(super) struct Window {
    rows: usize,
    width: usize,
    /// Rows written since start (the next row's position, modulo `rows`).
    next: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Window {
    pub(super) fn new(rows: usize, width: usize) -> Window {
        let rows = rows.max(1);
        Window {
            rows,
            width,
            next: AtomicU64::new(0),
            slots: (0..rows * width).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Reserves `n` rows; `put(row, column, value)` then fills them, `row` from the first
    /// reserved one.
    pub(super) fn reserve(&self, n: usize) -> u64 {
        self.next.fetch_add(n as u64, Ordering::Relaxed)
    }

    /// Stores `value` in column `column` of the row reserved at `row`.
    pub(super) fn put(&self, row: u64, column: usize, value: f64) {
        let slot = (row % self.rows as u64) as usize * self.width + column;
        self.slots[slot].store(value.to_bits(), Ordering::Relaxed);
    }

    /// Rows written since start.
    pub(super) fn written(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// The values of `column` in the window now (at most `rows` of them).
    pub(super) fn column(&self, column: usize) -> Vec<f64> {
        let filled = (self.written() as usize).min(self.rows);
        (0..filled)
            .map(|r| f64::from_bits(self.slots[r * self.width + column].load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_rows() {
        let w = Window::new(3, 2);
        for i in 0..5u64 {
            let row = w.reserve(1);
            w.put(row, 0, i as f64);
            w.put(row, 1, -(i as f64));
        }
        let mut c = w.column(0);
        c.sort_by(f64::total_cmp);
        assert_eq!(c, vec![2.0, 3.0, 4.0]);
        assert_eq!(w.written(), 5);
        assert_eq!(w.column(1).len(), 3);
    }
}
