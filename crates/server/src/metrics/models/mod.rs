//! The `ferroserve_*` families, read from the repository at each scrape: every ready version's
//! statistics snapshot, its queue, its cache, and each composite's own counts. A version that
//! is unloaded leaves the exposition with it; a rebuilt one starts its counters from zero,
//! which Prometheus's `rate` reads as a reset.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{
    HistogramSample, Labels, UnroutedFailures, counters, gauges, histograms, version_labels,
};
use crate::composite::Composite;
use crate::monitor::{ColumnReport, MonitorReport, Status};
use crate::payload::PayloadLog;
use crate::repository::{Executor, LoadedVersion, Repository};
use crate::stats::{FailureReason, LATENCY_BUCKETS, LatencyHistogram, StatsSnapshot};

/// Upper bounds of the batch-size histogram's buckets (then `+Inf`).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Encodes the `ferroserve_*` families.
#[derive(Debug)]
pub(super) struct ModelCollector {
    repository: Arc<Repository>,
    unrouted: Arc<UnroutedFailures>,
}

impl ModelCollector {
    pub(super) fn new(repository: Arc<Repository>, unrouted: Arc<UnroutedFailures>) -> Self {
        ModelCollector {
            repository,
            unrouted,
        }
    }
}

/// A ready version and a copy of its statistics, taken once per scrape.
struct Observed {
    version: Arc<LoadedVersion>,
    stats: StatsSnapshot,
}

impl Observed {
    fn labels(&self) -> Labels {
        version_labels(&self.version.model_name, self.version.version)
    }
}

impl Collector for ModelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let entries = self.repository.entries();
        let observed: Vec<Observed> = entries
            .iter()
            .flat_map(|e| e.ready_versions())
            .map(|version| Observed {
                stats: version.stats.snapshot(),
                version,
            })
            .collect();
        let e = &mut encoder;

        gauges(
            e,
            "ferroserve_build_info",
            "The ferroserve build: 1, labelled with its version.",
            false,
            [(
                vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
                1u64,
            )],
        )?;

        // Traffic.
        counters(
            e,
            "ferroserve_requests",
            "Inference requests that reached a model version, answered or failed.",
            observed
                .iter()
                .map(|o| (o.labels(), o.stats.success.count + o.stats.fail.count)),
        )?;
        counters(
            e,
            "ferroserve_request_successes",
            "Inference requests answered successfully.",
            observed.iter().map(|o| (o.labels(), o.stats.success.count)),
        )?;
        let routed_failures = observed.iter().flat_map(|o| {
            FailureReason::ALL
                .iter()
                .filter(move |r| o.stats.failures[**r as usize] > 0)
                .map(move |r| {
                    let mut labels = o.labels();
                    labels.push(("reason", r.as_str().to_owned()));
                    (labels, o.stats.failures[*r as usize])
                })
        });
        let unrouted_failures = FailureReason::ALL
            .iter()
            .filter(|r| self.unrouted.get(**r) > 0)
            .map(|r| {
                let labels = vec![
                    ("model", String::new()),
                    ("version", String::new()),
                    ("reason", r.as_str().to_owned()),
                ];
                (labels, self.unrouted.get(*r))
            });
        counters(
            e,
            "ferroserve_request_failures",
            "Inference requests that failed, by reason (invalid_request, overloaded, timeout, \
             model_error, unavailable, not_found); empty model and version when the request \
             named no loaded model.",
            routed_failures.chain(unrouted_failures),
        )?;
        counters(
            e,
            "ferroserve_inference_rows",
            "Rows inferred (a batch of n counts n; cache hits do not count).",
            observed
                .iter()
                .map(|o| (o.labels(), o.stats.inference_count)),
        )?;
        counters(
            e,
            "ferroserve_executions",
            "Model executions (rows / executions is the mean batch size).",
            observed
                .iter()
                .map(|o| (o.labels(), o.stats.execution_count)),
        )?;

        // Latency and batching.
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
        )?;

        // Lifecycle.
        gauges(
            e,
            "ferroserve_model_versions_loaded",
            "Versions of the model ready to serve, now (0 when none is).",
            false,
            entries.iter().map(|m| {
                (
                    vec![("model", m.name.clone())],
                    m.ready_versions().len() as u64,
                )
            }),
        )?;
        gauges(
            e,
            "ferroserve_model_version_ready",
            "1 for each version ready to serve, labelled with the runtime that runs it.",
            false,
            observed.iter().map(|o| {
                let mut labels = o.labels();
                labels.push(("runtime", o.version.runtime.to_owned()));
                (labels, 1u64)
            }),
        )?;
        counters(
            e,
            "ferroserve_model_load_failures",
            "Loads that failed since start: a model, its model.toml or one of its versions \
             (an older build may still be serving; see the repository index).",
            self.repository
                .load_failures()
                .into_iter()
                .map(|(model, n)| (vec![("model", model)], n)),
        )?;

        // The prediction cache.
        let cached: Vec<&Observed> = observed
            .iter()
            .filter(|o| o.version.cache.is_some())
            .collect();
        counters(
            e,
            "ferroserve_cache_hits",
            "Requests answered from the prediction cache.",
            cached.iter().map(|o| (o.labels(), o.stats.cache_hit.count)),
        )?;
        counters(
            e,
            "ferroserve_cache_misses",
            "Requests looked up in the prediction cache and not found.",
            cached
                .iter()
                .map(|o| (o.labels(), o.stats.cache_miss.count)),
        )?;
        gauges(
            e,
            "ferroserve_cache_bytes",
            "Bytes held by the prediction cache, now.",
            false,
            cached.iter().filter_map(|o| {
                let (bytes, _) = o.version.cache.as_ref()?.usage();
                Some((o.labels(), bytes as u64))
            }),
        )?;

        let logged: Vec<(&Observed, &PayloadLog)> = observed
            .iter()
            .filter_map(|o| Some((o, o.version.payload_log.as_deref()?)))
            .collect();
        counters(
            e,
            "ferroserve_payload_log_records",
            "Request/response records written to the payload log.",
            logged
                .iter()
                .map(|(o, l)| (o.labels(), l.counts().written.load(Ordering::Relaxed))),
        )?;
        counters(
            e,
            "ferroserve_payload_log_dropped",
            "Payload log records dropped because the writer was behind (or a write failed).",
            logged.iter().map(|(o, l)| {
                let c = l.counts();
                (
                    o.labels(),
                    c.dropped.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed),
                )
            }),
        )?;
        encode_composites(e, &observed)?;
        encode_drift(e, &observed)
    }
}

/// Data monitoring: per profiled column of every monitored version, drift scores and counts.
fn encode_drift(e: &mut DescriptorEncoder, observed: &[Observed]) -> fmt::Result {
    let reports: Vec<(Labels, MonitorReport)> = observed
        .iter()
        .filter_map(|o| Some((o.labels(), o.version.monitor.as_ref()?.report())))
        .collect();
    let columns = || {
        reports.iter().flat_map(|(labels, r)| {
            let side = |side: &'static str, c: &'_ ColumnReport| {
                let mut l = labels.clone();
                l.push(("feature", c.name.clone()));
                l.push(("side", side.to_owned()));
                l
            };
            r.inputs
                .iter()
                .map(move |c| (side("input", c), c.clone()))
                .chain(
                    r.outputs
                        .iter()
                        .map(move |c| (side("output", c), c.clone())),
                )
        })
    };
    gauges(
        e,
        "ferroserve_drift_psi",
        "Population stability index of the live window against the reference profile.",
        false,
        columns().filter_map(|(l, c)| Some((l, c.psi?))),
    )?;
    gauges(
        e,
        "ferroserve_drift_ks",
        "Two-sample Kolmogorov-Smirnov statistic of the live window against the reference \
         sample (numeric columns).",
        false,
        columns().filter_map(|(l, c)| Some((l, c.ks?))),
    )?;
    gauges(
        e,
        "ferroserve_drift_alert",
        "1 while the column is over its alert threshold (model.toml [monitoring]).",
        false,
        columns().map(|(l, c)| (l, u64::from(c.status == Status::Alert))),
    )?;
    counters(
        e,
        "ferroserve_feature_values",
        "Values of the column seen since load.",
        columns().map(|(l, c)| (l, c.count)),
    )?;
    counters(
        e,
        "ferroserve_feature_missing",
        "Missing (NaN) values of the column since load.",
        columns().map(|(l, c)| (l, c.missing)),
    )?;
    counters(
        e,
        "ferroserve_feature_out_of_range",
        "Values outside the reference's range, or categories it never saw, since load.",
        columns().map(|(l, c)| (l, c.out_of_range)),
    )
}

/// The composites' own families: split and bandit choices, shadow mirroring and agreement.
fn encode_composites(e: &mut DescriptorEncoder, observed: &[Observed]) -> fmt::Result {
    let composites: Vec<(&str, &Composite)> = observed
        .iter()
        .filter_map(|o| {
            Some((
                o.version.model_name.as_str(),
                o.version.executor.composite()?.as_ref(),
            ))
        })
        .collect();
    let variant =
        |model: &str, variant: String| vec![("model", model.to_owned()), ("variant", variant)];
    let splits = composites.iter().filter_map(|(m, c)| match c {
        Composite::Split(s) => Some((*m, s)),
        _ => None,
    });
    counters(
        e,
        "ferroserve_split_requests",
        "Requests a split composite sent to each variant.",
        splits.flat_map(|(m, s)| s.served().into_iter().map(move |(v, n)| (variant(m, v), n))),
    )?;

    let bandits: Vec<_> = composites
        .iter()
        .filter_map(|(m, c)| match c {
            Composite::Bandit(b) => Some((*m, b.arm_counts())),
            _ => None,
        })
        .collect();
    counters(
        e,
        "ferroserve_bandit_choices",
        "Requests a bandit composite sent to each variant (restored with its state file).",
        bandits.iter().flat_map(|(m, arms)| {
            arms.iter()
                .map(|a| (variant(m, a.target.clone()), a.chosen))
        }),
    )?;
    counters(
        e,
        "ferroserve_bandit_feedback",
        "Rewards a bandit composite received per variant.",
        bandits.iter().flat_map(|(m, arms)| {
            arms.iter()
                .map(|a| (variant(m, a.target.clone()), a.rewarded))
        }),
    )?;
    counters(
        e,
        "ferroserve_bandit_reward",
        "Sum of the rewards (each in [0, 1]) a bandit composite received per variant; \
         divided by the feedback count, the mean reward.",
        bandits.iter().flat_map(|(m, arms)| {
            arms.iter()
                .map(|a| (variant(m, a.target.clone()), a.reward_sum))
        }),
    )?;

    let shadows: Vec<_> = composites
        .iter()
        .filter_map(|(m, c)| match c {
            Composite::Shadow(s) => Some((*m, s.mirrored_and_skipped(), s.counts())),
            _ => None,
        })
        .collect();
    counters(
        e,
        "ferroserve_shadow_mirrored",
        "Requests a shadow composite mirrored to its shadows.",
        shadows
            .iter()
            .map(|(m, (mirrored, _), _)| (vec![("model", (*m).to_owned())], *mirrored)),
    )?;
    counters(
        e,
        "ferroserve_shadow_skipped",
        "Requests drawn for mirroring but skipped because max_in_flight mirrors were running.",
        shadows
            .iter()
            .map(|(m, (_, skipped), _)| (vec![("model", (*m).to_owned())], *skipped)),
    )?;
    let per_shadow =
        |m: &str, shadow: &str| vec![("model", m.to_owned()), ("shadow", shadow.to_owned())];
    counters(
        e,
        "ferroserve_shadow_comparisons",
        "Shadow answers compared with the primary's, by result (agree, disagree).",
        shadows.iter().flat_map(|(m, _, counts)| {
            counts.iter().flat_map(move |c| {
                [("agree", c.agreed), ("disagree", c.compared - c.agreed)]
                    .into_iter()
                    .map(move |(result, n)| {
                        let mut labels = per_shadow(m, &c.target);
                        labels.push(("result", result.to_owned()));
                        (labels, n)
                    })
            })
        }),
    )?;
    counters(
        e,
        "ferroserve_shadow_failures",
        "Mirrored requests a shadow failed.",
        shadows.iter().flat_map(|(m, _, counts)| {
            counts
                .iter()
                .map(move |c| (per_shadow(m, &c.target), c.failed))
        }),
    )?;
    gauges(
        e,
        "ferroserve_shadow_agreement_ratio",
        "Share of a shadow's compared answers that agreed with the primary's, since load.",
        false,
        shadows.iter().flat_map(|(m, _, counts)| {
            counts.iter().filter(|c| c.compared > 0).map(move |c| {
                (
                    per_shadow(m, &c.target),
                    c.agreed as f64 / c.compared as f64,
                )
            })
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
