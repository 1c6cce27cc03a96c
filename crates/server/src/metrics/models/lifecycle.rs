//! The repository's lifecycle: versions loaded per model, each ready version with its
//! runtime, and the loads that failed since start.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Scrape;
use crate::metrics::{counters, gauges};

/// `ferroserve_model_versions_loaded`, `_model_version_ready` and `_model_load_failures`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    gauges(
        e,
        "ferroserve_model_versions_loaded",
        "Versions of the model ready to serve, now (0 when none is).",
        false,
        scrape.entries.iter().map(|m| {
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
        scrape.observed.iter().map(|o| {
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
        scrape
            .repository
            .load_failures()
            .into_iter()
            .map(|(model, n)| (vec![("model", model)], n)),
    )
}
