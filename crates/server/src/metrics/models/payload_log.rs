//! The payload log of each version that writes one: records written and records dropped.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;

use super::{Observed, Scrape};
use crate::metrics::counters;
use crate::payload::PayloadLog;

/// `ferroserve_payload_log_records` and `_payload_log_dropped`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let logged: Vec<(&Observed, &PayloadLog)> = scrape
        .observed
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
    )
}
