//! [`Aimd`]: the adaptive batch-size controller (Clipper's AIMD). The batch size grows by a
//! fixed step after every full batch that ran within the latency objective and shrinks by 10 %
//! after one that did not, so it settles just under the largest batch the objective allows and
//! follows the model when the machine gets busier or quieter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The multiplicative decrease after a batch over the objective.
const BACK_OFF: f64 = 0.9;

/// The controller of one model version, shared by its batcher (which reads the size) and its
/// workers (which report every batch).
#[derive(Debug)]
pub(crate) struct Aimd {
    /// The batch size the batcher aims for now.
    current: AtomicUsize,
    max: usize,
    step: usize,
    objective: Duration,
}

impl Aimd {
    /// A controller that keeps batches under `objective`, between 1 and `max` rows, starting
    /// from one row and growing by about 1 % of `max` at a time.
    pub(crate) fn new(max: usize, objective: Duration) -> Aimd {
        Aimd {
            current: AtomicUsize::new(1),
            max: max.max(1),
            step: (max / 100).max(1),
            objective,
        }
    }

    /// The batch size to aim for.
    pub(crate) fn target(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Learns from a batch of `rows` rows that took `latency` to compute. A batch smaller than
    /// the target says nothing about larger ones, so only a full batch grows the target.
    pub(crate) fn observe(&self, rows: usize, latency: Duration) {
        let current = self.target();
        let next = if latency > self.objective {
            ((current as f64 * BACK_OFF) as usize).max(1)
        } else if rows >= current {
            (current + self.step).min(self.max)
        } else {
            current
        };
        self.current.store(next, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that takes 1 ms plus 100 µs a row: the objective of 5 ms allows 40 rows.
    fn latency(rows: usize) -> Duration {
        Duration::from_micros(1000 + 100 * rows as u64)
    }

    #[test]
    fn converges_under_the_objective_and_stays_near_it() {
        let aimd = Aimd::new(1024, Duration::from_millis(5));
        let mut sizes = Vec::new();
        for _ in 0..500 {
            let rows = aimd.target();
            aimd.observe(rows, latency(rows));
            sizes.push(rows);
        }
        let settled = &sizes[200..];
        assert!(
            settled.iter().all(|&b| (30..=50).contains(&b)),
            "{settled:?}"
        );
        let mean: Duration = settled.iter().map(|&b| latency(b)).sum::<Duration>() / 300;
        assert!(
            mean <= Duration::from_micros(5500),
            "mean batch latency {mean:?}"
        );
    }

    #[test]
    fn follows_a_slower_machine_down_and_never_below_one() {
        let aimd = Aimd::new(100, Duration::from_millis(5));
        for _ in 0..300 {
            let rows = aimd.target();
            aimd.observe(rows, latency(rows));
        }
        assert!(aimd.target() > 30);
        for _ in 0..100 {
            let rows = aimd.target();
            aimd.observe(rows, latency(rows) * 10);
        }
        assert_eq!(aimd.target(), 1);
    }

    #[test]
    fn a_partial_batch_does_not_grow_the_target() {
        let aimd = Aimd::new(100, Duration::from_millis(5));
        aimd.observe(1, latency(1));
        assert_eq!(aimd.target(), 2);
        aimd.observe(1, latency(1));
        assert_eq!(aimd.target(), 2);
    }
}
