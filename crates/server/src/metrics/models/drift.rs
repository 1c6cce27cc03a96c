//! Data monitoring, from each monitored version's drift report: per profiled column, its
//! drift scores against the reference, its alert state and its value counts.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Scrape;
use crate::metrics::{Labels, counters, gauges};
use crate::monitor::{ColumnReport, MonitorReport, Status};

/// `ferroserve_drift_psi`, `_drift_ks`, `_drift_alert`, `_feature_values`,
/// `_feature_missing` and `_feature_out_of_range`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let reports: Vec<(Labels, MonitorReport)> = scrape
        .observed
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
