//! Per-version inference statistics, the counters behind Triton's statistics extension
//! (`GET /v2/models/{m}/stats`) and, later, the Prometheus metrics.
//!
//! Semantics follow Triton: `inference_count` counts batch rows, `execution_count` model
//! executions; the per-request durations (`success`, `queue`, `compute_*`) are recorded together
//! when a request completes, under one lock, so a snapshot never shows `compute_input` counted
//! for a request whose `compute_infer` is not (perf_analyzer aborts on unequal counts).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count of events and their summed duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurationStat {
    /// Events.
    pub count: u64,
    /// Their summed duration, ns.
    pub ns: u64,
}

impl DurationStat {
    fn record(&mut self, d: Duration) {
        self.count += 1;
        self.ns += d.as_nanos() as u64;
    }
}

/// Durations of the executions of one batch size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStat {
    /// Executions of this batch size.
    pub count: u64,
    /// Summed engine time, ns.
    pub compute_infer_ns: u64,
}

/// Where one successful request spent its time.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestTimes {
    /// Arrival to response encoded.
    pub total: Duration,
    /// Waiting in the queue for an instance.
    pub queue: Duration,
    /// Decoding and validating.
    pub compute_input: Duration,
    /// In the engine.
    pub compute_infer: Duration,
    /// Encoding the response.
    pub compute_output: Duration,
}

/// A consistent copy of a version's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
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
    /// Requests answered from the prediction cache, and the lookups' time.
    pub cache_hit: DurationStat,
    /// Requests not in the prediction cache, and the time looking and storing.
    pub cache_miss: DurationStat,
    /// Rows inferred.
    pub inference_count: u64,
    /// Model executions.
    pub execution_count: u64,
    /// Milliseconds since the Unix epoch of the last inference, 0 if none.
    pub last_inference_ms: u64,
    /// Per batch size of execution, ascending.
    pub batches: BTreeMap<usize, BatchStat>,
}

/// The statistics of one model version.
#[derive(Debug, Default)]
pub struct VersionStats {
    /// A std `Mutex`: held for a few additions per request, never across an await.
    inner: Mutex<StatsSnapshot>,
}

impl VersionStats {
    fn with<R>(&self, f: impl FnOnce(&mut StatsSnapshot) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records one model execution over `rows` rows that took `infer`.
    pub fn record_execution(&self, rows: usize, infer: Duration) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.with(|s| {
            s.inference_count += rows as u64;
            s.execution_count += 1;
            s.last_inference_ms = now_ms as u64;
            let batch = s.batches.entry(rows).or_default();
            batch.count += 1;
            batch.compute_infer_ns += infer.as_nanos() as u64;
        });
    }

    /// Records a request answered successfully.
    pub fn record_success(&self, t: RequestTimes) {
        self.with(|s| {
            s.success.record(t.total);
            s.queue.record(t.queue);
            s.compute_input.record(t.compute_input);
            s.compute_infer.record(t.compute_infer);
            s.compute_output.record(t.compute_output);
        });
    }

    /// Records a prediction-cache lookup: a hit or a miss, and its time.
    pub fn record_cache(&self, hit: bool, took: Duration) {
        self.with(|s| {
            if hit {
                s.cache_hit.record(took);
            } else {
                s.cache_miss.record(took);
            }
        });
    }

    /// Records a request that failed after `total`.
    pub fn record_failure(&self, total: Duration) {
        self.with(|s| s.fail.record(total));
    }

    /// A consistent copy.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.with(|s| s.clone())
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
        let snap = s.snapshot();
        assert_eq!(snap.inference_count, 9);
        assert_eq!(snap.execution_count, 2);
        assert_eq!(snap.batches.keys().copied().collect::<Vec<_>>(), vec![1, 8]);
    }

    #[test]
    fn request_durations_move_together() {
        let s = VersionStats::default();
        s.record_success(RequestTimes {
            compute_infer: Duration::from_micros(3),
            ..Default::default()
        });
        s.record_failure(Duration::from_micros(1));
        let snap = s.snapshot();
        assert_eq!(snap.success.count, 1);
        assert_eq!(snap.queue.count, 1);
        assert_eq!(snap.compute_input.count, snap.compute_output.count);
        assert_eq!(
            snap.compute_infer,
            DurationStat {
                count: 1,
                ns: 3_000
            }
        );
        assert_eq!(snap.fail.count, 1);
    }
}
