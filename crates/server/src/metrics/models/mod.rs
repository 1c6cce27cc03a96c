//! The `ferroserve_*` families, read from the repository at each scrape: every ready version's
//! statistics snapshot, its queue, its cache, and each composite's own counts. A version that
//! is unloaded leaves the exposition with it; a rebuilt one starts its counters from zero,
//! which Prometheus's `rate` reads as a reset.
//!
//! Each group of families is encoded by the module of the component whose numbers fill it:
//! [`traffic`] (requests and failures), [`latency`] (durations, batch sizes, the queue),
//! [`lifecycle`] (loaded versions, load failures), [`cache`], [`payload_log`],
//! [`composites`] and [`drift`]. Every group knows its families' names, help and types, and
//! encodes them from one [`Scrape`]; [`FAMILIES`] lists the groups in exposition order.
//! They stay here rather than beside the components (`stats`, `monitor`, `composite`), which
//! the metrics already import: the other way round would make the imports circular.

mod cache;
mod composites;
mod drift;
mod latency;
mod lifecycle;
mod payload_log;
mod traffic;

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{Labels, UnroutedFailures, gauges, version_labels};
use crate::repository::{LoadedVersion, ModelEntry, Repository};
use crate::stats::StatsSnapshot;

/// Encodes the `ferroserve_*` families.
#[derive(Debug)]
pub(super) struct ModelCollector {
    repository: Arc<Repository>,
    unrouted: Arc<UnroutedFailures>,
}

impl ModelCollector {
    /// The collector over `repository`, with the failures no version saw in `unrouted`.
    pub(super) fn new(repository: Arc<Repository>, unrouted: Arc<UnroutedFailures>) -> Self {
        ModelCollector {
            repository,
            unrouted,
        }
    }
}

/// A ready version and a copy of its statistics, taken once per scrape.
struct Observed {
    /// The version.
    version: Arc<LoadedVersion>,
    /// Its statistics when the scrape began.
    stats: StatsSnapshot,
}

impl Observed {
    /// The `model` and `version` labels of its samples.
    fn labels(&self) -> Labels {
        version_labels(&self.version.model_name, self.version.version)
    }
}

/// What one scrape reads, once, for every group of families to encode from.
struct Scrape<'a> {
    /// The repository, for what it keeps across versions (load failures).
    repository: &'a Repository,
    /// Requests that failed before reaching a version.
    unrouted: &'a UnroutedFailures,
    /// Every model known.
    entries: Vec<Arc<ModelEntry>>,
    /// Every ready version of them, with its statistics.
    observed: Vec<Observed>,
}

/// A group of families: writes them, from one scrape, to the encoder.
type Families = fn(&mut DescriptorEncoder, &Scrape<'_>) -> fmt::Result;

/// Every group of families, in exposition order.
const FAMILIES: [Families; 8] = [
    build_info,
    traffic::encode,
    latency::encode,
    lifecycle::encode,
    cache::encode,
    payload_log::encode,
    composites::encode,
    drift::encode,
];

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
        let scrape = Scrape {
            repository: &self.repository,
            unrouted: &self.unrouted,
            entries,
            observed,
        };
        FAMILIES
            .iter()
            .try_for_each(|families| families(&mut encoder, &scrape))
    }
}

/// `ferroserve_build_info`: the build's version.
fn build_info(e: &mut DescriptorEncoder, _: &Scrape<'_>) -> fmt::Result {
    gauges(
        e,
        "ferroserve_build_info",
        "The ferroserve build: 1, labelled with its version.",
        false,
        [(
            vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
            1u64,
        )],
    )
}

#[cfg(test)]
mod tests {
    use ferroserve_core::RuntimeRegistry;

    use super::*;
    use crate::metrics::{Exposition, Metrics};

    /// The families come out with fixed names and types, in a fixed order, whatever the repository holds (an empty
    /// repository still writes every family's `# HELP` and `# TYPE`): moving one is a change
    /// to the exposition, made here on purpose or not at all.
    #[test]
    fn the_families_keep_their_names_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let repository = Arc::new(Repository::new(dir.path(), RuntimeRegistry::new()));
        let text = Metrics::new(&repository, false, &crate::access::Access::open())
            .render(Exposition::OpenMetrics);
        // `name type`, in OpenMetrics (whose counters' names have no `_total` here).
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter(|family| family.starts_with("ferroserve_"))
            .collect();
        assert_eq!(
            families,
            [
                "ferroserve_build_info gauge",
                "ferroserve_requests counter",
                "ferroserve_request_successes counter",
                "ferroserve_request_failures counter",
                "ferroserve_inference_rows counter",
                "ferroserve_executions counter",
                "ferroserve_request_duration_seconds histogram",
                "ferroserve_queue_duration_seconds histogram",
                "ferroserve_compute_duration_seconds histogram",
                "ferroserve_batch_size histogram",
                "ferroserve_queue_depth gauge",
                "ferroserve_model_versions_loaded gauge",
                "ferroserve_model_version_ready gauge",
                "ferroserve_model_load_failures counter",
                "ferroserve_cache_hits counter",
                "ferroserve_cache_misses counter",
                "ferroserve_cache_bytes gauge",
                "ferroserve_payload_log_records counter",
                "ferroserve_payload_log_dropped counter",
                "ferroserve_split_requests counter",
                "ferroserve_bandit_choices counter",
                "ferroserve_bandit_feedback counter",
                "ferroserve_bandit_reward counter",
                "ferroserve_shadow_mirrored counter",
                "ferroserve_shadow_skipped counter",
                "ferroserve_shadow_comparisons counter",
                "ferroserve_shadow_failures counter",
                "ferroserve_shadow_agreement_ratio gauge",
                "ferroserve_drift_psi gauge",
                "ferroserve_drift_ks gauge",
                "ferroserve_drift_alert gauge",
                "ferroserve_feature_values counter",
                "ferroserve_feature_missing counter",
                "ferroserve_feature_out_of_range counter",
            ]
        );
    }
}
