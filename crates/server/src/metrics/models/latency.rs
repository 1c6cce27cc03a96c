//! Latency and batching, from each version's statistics and its scheduler: the duration
//! histograms (end to end, queue, compute), the batch-size histogram and the queue depth.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Scrape;
use crate::metrics::{HistogramSample, gauges, histograms};
use crate::repository::Executor;
use crate::stats::{LATENCY_BUCKETS, LatencyHistogram, StatsSnapshot};

/// Upper bounds of the batch-size histogram's buckets (then `+Inf`).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// `ferroserve_request_duration_seconds`, `_queue_duration_seconds`,
/// `_compute_duration_seconds`, `_batch_size` and `_queue_depth`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let observed = &scrape.observed;
    let latency = |pick: fn(&StatsSnapshot) -> (&LatencyHistogram, u64)| {
        observed.iter().map(move |o| {
            let (h, ns) = pick(&o.stats);
            (o.labels(), latency_sample(h, ns))
        })
    };
    histograms(
        e,
        "ferroserve_request_duration_seconds",
        "End-to-end time of successful requests, from arrival to the response encoded.",
        latency(|s| (&s.success_latency, s.success.ns)),
    )?;
    histograms(
        e,
        "ferroserve_queue_duration_seconds",
        "Time successful requests waited in the queue for the model.",
        latency(|s| (&s.queue_latency, s.queue.ns)),
    )?;
    histograms(
        e,
        "ferroserve_compute_duration_seconds",
        "Time successful requests spent in the model (their batch's execution).",
        latency(|s| (&s.compute_latency, s.compute_infer.ns)),
    )?;
    histograms(
        e,
        "ferroserve_batch_size",
        "Rows per model execution.",
        observed
            .iter()
            .map(|o| (o.labels(), batch_sample(&o.stats))),
    )?;
    gauges(
        e,
        "ferroserve_queue_depth",
        "Requests admitted and waiting for a batch, now.",
        false,
        observed.iter().filter_map(|o| match &o.version.executor {
            Executor::Model(scheduler) => Some((o.labels(), scheduler.queued() as u64)),
            Executor::Composite(_) => None,
        }),
    )
}

/// A latency histogram in seconds, with the summed time in `ns`.
fn latency_sample(h: &LatencyHistogram, ns: u64) -> HistogramSample {
    let buckets = LATENCY_BUCKETS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(h.counts)
        .collect();
    HistogramSample {
        sum: ns as f64 / 1e9,
        count: h.counts.iter().sum(),
        buckets,
    }
}

/// The batch-size histogram, from the per-size execution counts.
fn batch_sample(s: &StatsSnapshot) -> HistogramSample {
    let mut counts = [0u64; BATCH_BUCKETS.len() + 1];
    let mut sum = 0.0;
    for (&size, batch) in &s.batches {
        let ix = BATCH_BUCKETS.partition_point(|&bound| bound < size as f64);
        counts[ix] += batch.count;
        sum += size as f64 * batch.count as f64;
    }
    HistogramSample {
        sum,
        count: counts.iter().sum(),
        buckets: BATCH_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts)
            .collect(),
    }
}
