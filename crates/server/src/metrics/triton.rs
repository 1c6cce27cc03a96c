//! Triton's `nv_inference_*` families over the same statistics, so that dashboards and alerts
//! written for Triton work unchanged (`--metrics-triton-names`). Names, labels and meanings
//! follow Triton's `metrics.md`; the cumulative counters are exposed untyped because a
//! counter's name must end in `_total` and Triton's do not (PromQL's `rate` reads them alike).

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{Labels, gauges, version_labels};
use crate::repository::{Executor, LoadedVersion, Repository};
use crate::stats::{FailureReason, StatsSnapshot};

/// Encodes the `nv_*` families.
#[derive(Debug)]
pub(super) struct TritonCollector {
    repository: Arc<Repository>,
}

impl TritonCollector {
    pub(super) fn new(repository: Arc<Repository>) -> Self {
        TritonCollector { repository }
    }
}

/// Triton's failure `reason` for ours: a full queue or a passed deadline is `REJECTED`, a
/// model's error `BACKEND`, the rest `OTHER`.
fn triton_reason(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::Overloaded | FailureReason::Timeout => "REJECTED",
        FailureReason::ModelError => "BACKEND",
        FailureReason::InvalidRequest | FailureReason::Unavailable | FailureReason::NotFound => {
            "OTHER"
        }
    }
}

impl Collector for TritonCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let observed: Vec<(Arc<LoadedVersion>, StatsSnapshot)> = self
            .repository
            .ready_versions()
            .into_iter()
            .map(|v| {
                let s = v.stats.snapshot();
                (v, s)
            })
            .collect();
        let labels = |v: &LoadedVersion| -> Labels { version_labels(&v.model_name, v.version) };
        let e = &mut encoder;
        let each = |pick: fn(&StatsSnapshot) -> u64| {
            observed.iter().map(move |(v, s)| (labels(v), pick(s)))
        };
        let us = |ns: u64| ns / 1_000;

        gauges(
            e,
            "nv_inference_request_success",
            "Number of successful inference requests, all batch sizes",
            true,
            each(|s| s.success.count),
        )?;
        gauges(
            e,
            "nv_inference_request_failure",
            "Number of failed inference requests, all batch sizes",
            true,
            observed.iter().flat_map(|(v, s)| {
                ["REJECTED", "CANCELED", "BACKEND", "OTHER"].map(|reason| {
                    let n: u64 = FailureReason::ALL
                        .iter()
                        .filter(|r| triton_reason(**r) == reason)
                        .map(|r| s.failures[*r as usize])
                        .sum();
                    let mut l = labels(v);
                    l.push(("reason", reason.to_owned()));
                    (l, n)
                })
            }),
        )?;
        gauges(
            e,
            "nv_inference_count",
            "Number of inferences performed (does not include cached requests)",
            true,
            each(|s| s.inference_count),
        )?;
        gauges(
            e,
            "nv_inference_exec_count",
            "Number of model executions performed (does not include cached requests)",
            true,
            each(|s| s.execution_count),
        )?;
        gauges(
            e,
            "nv_inference_request_duration_us",
            "Cumulative inference request duration in microseconds (includes cached requests)",
            true,
            observed.iter().map(|(v, s)| (labels(v), us(s.success.ns))),
        )?;
        gauges(
            e,
            "nv_inference_queue_duration_us",
            "Cumulative inference queuing duration in microseconds (includes cached requests)",
            true,
            observed.iter().map(|(v, s)| (labels(v), us(s.queue.ns))),
        )?;
        gauges(
            e,
            "nv_inference_compute_input_duration_us",
            "Cumulative compute input duration in microseconds (does not include cached requests)",
            true,
            observed
                .iter()
                .map(|(v, s)| (labels(v), us(s.compute_input.ns))),
        )?;
        gauges(
            e,
            "nv_inference_compute_infer_duration_us",
            "Cumulative compute inference duration in microseconds (does not include cached requests)",
            true,
            observed
                .iter()
                .map(|(v, s)| (labels(v), us(s.compute_infer.ns))),
        )?;
        gauges(
            e,
            "nv_inference_compute_output_duration_us",
            "Cumulative inference compute output duration in microseconds (does not include cached requests)",
            true,
            observed
                .iter()
                .map(|(v, s)| (labels(v), us(s.compute_output.ns))),
        )?;
        gauges(
            e,
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model.",
            false,
            observed.iter().filter_map(|(v, _)| match &v.executor {
                Executor::Model(scheduler) => Some((labels(v), scheduler.queued() as u64)),
                Executor::Composite(_) => None,
            }),
        )?;
        let cached = || observed.iter().filter(|(v, _)| v.cache.is_some());
        gauges(
            e,
            "nv_cache_num_hits_per_model",
            "Number of cache hits per model",
            true,
            cached().map(|(v, s)| (labels(v), s.cache_hit.count)),
        )?;
        gauges(
            e,
            "nv_cache_num_misses_per_model",
            "Number of cache misses per model",
            true,
            cached().map(|(v, s)| (labels(v), s.cache_miss.count)),
        )
    }
}
