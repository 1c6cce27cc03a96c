//! Per-version inference statistics, the counters behind Triton's statistics extension
//! (`GET /v2/models/{m}/stats`) and the Prometheus metrics (`GET /metrics`), which read the
//! same snapshot: the hot path takes one lock per request and nothing more.
//!
//! Semantics follow Triton: `inference_count` counts batch rows, `execution_count` model
//! executions; the per-request durations (`success`, `queue`, `compute_*`) are recorded together
//! when a request completes, under one lock, so a snapshot never shows `compute_input` counted
//! for a request whose `compute_infer` is not (perf_analyzer aborts on unequal counts).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds, in seconds, of the latency histograms' buckets; a last bucket, `+Inf`,
/// follows. From 50 µs (an in-process tree model) to 10 s (a large batch on CPU).
pub(crate) const LATENCY_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// How many requests fell in each latency bucket (not cumulative; the last is `+Inf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Per bucket of [`LATENCY_BUCKETS`], then the `+Inf` bucket.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: [0; LATENCY_BUCKETS.len() + 1],
        }
    }
}

impl LatencyHistogram {
    fn record(&mut self, d: Duration) {
        let seconds = d.as_secs_f64();
        // Buckets are inclusive of their upper bound, as Prometheus's `le` says.
        let ix = LATENCY_BUCKETS.partition_point(|&bound| bound < seconds);
        self.counts[ix] += 1;
    }
}

/// Why a request that reached a model failed: the classes that `/metrics` labels failures
/// with. Chosen from the error by its [`Failure`] implementation, which follows its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The request was malformed or did not match the signature (HTTP 400).
    InvalidRequest,
    /// The queue was full (HTTP 503, Triton's `REJECTED`).
    Overloaded,
    /// The request's deadline passed before it ran (HTTP 504).
    Timeout,
    /// The model failed while running (HTTP 500).
    ModelError,
    /// The model or a composite's target could not take it (HTTP 503).
    Unavailable,
    /// No such model, version or label (HTTP 404).
    NotFound,
}

/// An error that can end a request, classed for the failure counters.
pub trait Failure {
    /// The class this error is counted in.
    fn failure_reason(&self) -> FailureReason;
}

impl FailureReason {
    /// Every reason, in the order of [`StatsSnapshot::failures`].
    pub const ALL: [FailureReason; 6] = [
        FailureReason::InvalidRequest,
        FailureReason::Overloaded,
        FailureReason::Timeout,
        FailureReason::ModelError,
        FailureReason::Unavailable,
        FailureReason::NotFound,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InvalidRequest => "invalid_request",
            FailureReason::Overloaded => "overloaded",
            FailureReason::Timeout => "timeout",
            FailureReason::ModelError => "model_error",
            FailureReason::Unavailable => "unavailable",
            FailureReason::NotFound => "not_found",
        }
    }
}

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
    /// Those failures by reason, in the order of [`FailureReason::ALL`].
    pub failures: [u64; FailureReason::ALL.len()],
    /// End-to-end durations of successful requests.
    pub success_latency: LatencyHistogram,
    /// Queue waits of successful requests.
    pub queue_latency: LatencyHistogram,
    /// Engine times of successful requests.
    pub compute_latency: LatencyHistogram,
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
            s.success_latency.record(t.total);
            s.queue_latency.record(t.queue);
            s.compute_latency.record(t.compute_infer);
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

    /// Records a request that failed after `total`, for `reason`.
    pub fn record_failure(&self, total: Duration, reason: FailureReason) {
        self.with(|s| {
            s.fail.record(total);
            s.failures[reason as usize] += 1;
        });
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
        s.record_failure(Duration::from_micros(1), FailureReason::Overloaded);
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
        assert_eq!(snap.failures[FailureReason::Overloaded as usize], 1);
        assert_eq!(snap.failures.iter().sum::<u64>(), 1);
    }

    #[test]
    fn latency_buckets_include_their_upper_bound() {
        let mut h = LatencyHistogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_micros(51));
        h.record(Duration::from_secs(11));
        assert_eq!(h.counts[0], 1, "50 µs is in the le=0.00005 bucket");
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[LATENCY_BUCKETS.len()], 1, "past 10 s is +Inf");
        for (i, r) in FailureReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in discriminant order");
        }
    }
}
