//! `GET /metrics`: the Prometheus exposition of the server, rendered on each scrape from the
//! statistics the request path already keeps (one lock per request, taken anyway for Triton's
//! statistics), so turning metrics on adds nothing to a request.
//!
//! - [`models`]: `ferroserve_*` per model and version: requests, successes, failures by
//!   reason, latency histograms (end to end, queue, compute), batch sizes, queue depth,
//!   loaded versions, load failures, the prediction cache, and the composites' shadow
//!   agreement, split and bandit choices.
//! - [`triton`]: the same counters under Triton's `nv_inference_*` names (opt-in).
//! - [`process`]: `process_*`: CPU, memory, file descriptors, threads, start time.
//!
//! Encoding is prometheus-client's: the Prometheus text format (0.0.4) by default, OpenMetrics
//! when the scraper asks for it in `Accept` (as Prometheus itself does).

mod models;
mod process;
mod triton;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::access::Access;

use crate::repository::Repository;
use crate::stats::FailureReason;

/// The label pairs of one sample.
type Labels = Vec<(&'static str, String)>;

/// The metrics of one server: what `/metrics` renders.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    unrouted: Arc<UnroutedFailures>,
}

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// The Prometheus text format, version 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Exposition {
    /// The format a scraper asks for in its `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Exposition {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::PrometheusText,
        }
    }

    /// The `Content-Type` of a rendering in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::PrometheusText => {
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE
            }
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Metrics {
    /// The metrics of a server over `repository` and `access`; with `triton_names`, also
    /// Triton's `nv_inference_*` families.
    pub fn new(repository: &Arc<Repository>, triton_names: bool, access: &Access) -> Metrics {
        let unrouted = Arc::new(UnroutedFailures::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(models::ModelCollector::new(
            Arc::clone(repository),
            Arc::clone(&unrouted),
        )));
        if triton_names {
            registry.register_collector(Box::new(triton::TritonCollector::new(Arc::clone(
                repository,
            ))));
        }
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        registry.register(
            "ferroserve_access_refusals",
            "Requests refused by access control, by API key name (empty: no valid key, or a \
             client address) and reason (unauthenticated, forbidden, rate_limited, cross_site)",
            access.refusals().clone(),
        );
        Metrics { registry, unrouted }
    }

    /// Counts a request that failed before it reached a model version (no such model, a body
    /// too large): `ferroserve_request_failures_total` with empty `model` and `version`.
    pub fn count_unrouted(&self, reason: FailureReason) {
        self.unrouted.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every metric, in `format`.
    pub fn render(&self, format: Exposition) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let encoded = match format {
            Exposition::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Exposition::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        // Writing to a String cannot fail; a collector's error would be a bug.
        if let Err(error) = encoded {
            tracing::error!(%error, "cannot encode the metrics");
        }
        out
    }
}

/// Requests that failed before reaching a model version, by reason.
#[derive(Debug, Default)]
struct UnroutedFailures {
    counts: [AtomicU64; FailureReason::ALL.len()],
}

impl UnroutedFailures {
    fn get(&self, reason: FailureReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }
}

/// The `model` and `version` labels of a model version.
fn version_labels(model: &str, version: u64) -> Labels {
    vec![
        ("model", model.to_owned()),
        ("version", version.to_string()),
    ]
}

/// Writes one family of counters (prometheus-client appends `_total` to `name`).
fn counters<V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// Writes one family of gauges, or of untyped samples with `untyped` (Triton's counters keep
/// their names that way: a counter's name must end in `_total`, and theirs do not).
fn gauges<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    untyped: bool,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> fmt::Result {
    let kind = if untyped {
        MetricType::Unknown
    } else {
        MetricType::Gauge
    };
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A histogram's sample: its sum, count and per-bucket (upper bound, count), not cumulative,
/// the last bound `+Inf`.
struct HistogramSample {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

/// Writes one family of histograms.
fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, HistogramSample)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
    }
    Ok(())
}
