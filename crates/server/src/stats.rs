//! Per-version inference statistics, the counters behind Triton's statistics extension
//! (`GET /v2/models/{m}/stats`) and, later, the Prometheus metrics.
//!
//! Semantics follow Triton: `inference_count` counts batch rows, `execution_count` model
//! executions; durations are summed nanoseconds with a count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count of events and their summed duration.
#[derive(Debug, Default)]
pub struct DurationStat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationStat {
    /// Records one event that took `d`.
    pub fn record(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `(count, ns)`.
    pub fn get(&self) -> (u64, u64) {
        (self.count.load(Ordering::Relaxed), self.ns.load(Ordering::Relaxed))
    }
}

/// Durations of the executions of one batch size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStat {
    /// Executions of this batch size.
    pub count: u64,
    /// Summed time turning requests into engine inputs, ns.
    pub compute_input_ns: u64,
    /// Summed engine time, ns.
    pub compute_infer_ns: u64,
    /// Summed time turning engine outputs into responses, ns.
    pub compute_output_ns: u64,
}

/// The statistics of one model version.
#[derive(Debug, Default)]
pub struct VersionStats {
    /// Requests answered successfully, end to end.
    pub success: DurationStat,
    /// Requests that failed after reaching the model version.
    pub fail: DurationStat,
    /// Time requests waited in the queue.
    pub queue: DurationStat,
    /// Time decoding and validating requests.
    pub compute_input: DurationStat,
    /// Engine time.
    pub compute_infer: DurationStat,
    /// Time encoding responses.
    pub compute_output: DurationStat,
    /// Rows inferred.
    pub inference_count: AtomicU64,
    /// Model executions.
    pub execution_count: AtomicU64,
    /// Milliseconds since the Unix epoch of the last inference, 0 if none.
    pub last_inference_ms: AtomicU64,
    /// Per batch size of execution. A std `Mutex`: held for a map update only.
    batches: Mutex<BTreeMap<usize, BatchStat>>,
}

impl VersionStats {
    /// Records one model execution over `rows` rows that took `infer`.
    pub fn record_execution(&self, rows: usize, infer: Duration) {
        self.inference_count.fetch_add(rows as u64, Ordering::Relaxed);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.compute_infer.record(infer);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        self.last_inference_ms.store(now_ms as u64, Ordering::Relaxed);
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let entry = batches.entry(rows).or_default();
        entry.count += 1;
        entry.compute_infer_ns += infer.as_nanos() as u64;
    }

    /// Per batch size of execution, ascending.
    pub fn batches(&self) -> Vec<(usize, BatchStat)> {
        let batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        batches.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_executions_separately() {
        let s = VersionStats::default();
        s.record_execution(8, Duration::from_micros(5));
        s.record_execution(1, Duration::from_micros(1));
        assert_eq!(s.inference_count.load(Ordering::Relaxed), 9);
        assert_eq!(s.execution_count.load(Ordering::Relaxed), 2);
        assert_eq!(s.compute_infer.get(), (2, 6_000));
        assert_eq!(s.batches().iter().map(|(b, _)| *b).collect::<Vec<_>>(), vec![1, 8]);
    }
}
