//! The prediction cache of each version that has one: hits, misses and the bytes it holds.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Observed, Scrape};
use crate::metrics::{counters, gauges};

/// `ferroserve_cache_hits`, `_cache_misses` and `_cache_bytes`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let cached: Vec<&Observed> = scrape
        .observed
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
    )
}
