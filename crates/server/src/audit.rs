//! The audit trail: one log line per management action — loading or unloading a model, moving
//! labels, bandit feedback, the API key file changing — saying who asked (the key's name;
//! `anonymous` on a server without keys), what, and how it ended, refusals included. The
//! lines have the tracing target `audit`, so a log filter (`--log info,audit=info`) or a log
//! shipper can keep them apart from the rest.

/// Records one management action.
pub(crate) fn record(who: &str, action: &str, outcome: &str) {
    tracing::info!(target: "audit", who, action, outcome, "management action");
}
