//! Traffic, from each version's statistics and the failures no version saw: requests,
//! successes, failures by reason, rows inferred and model executions.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Scrape;
use crate::metrics::counters;
use crate::stats::FailureReason;

/// `ferroserve_requests`, `_request_successes`, `_request_failures`, `_inference_rows` and
/// `_executions`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let observed = &scrape.observed;
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
    let unrouted = scrape.unrouted;
    let unrouted_failures = FailureReason::ALL
        .iter()
        .filter(|r| unrouted.get(**r) > 0)
        .map(|r| {
            let labels = vec![
                ("model", String::new()),
                ("version", String::new()),
                ("reason", r.as_str().to_owned()),
            ];
            (labels, unrouted.get(*r))
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
    )
}
