//! The report computation, run when asked for (the monitoring endpoint, a `/metrics` scrape,
//! the periodic alert check), never per request: each column's window scored against its
//! reference (PSI, Kolmogorov–Smirnov, chi-square), its status, the [`MonitorReport`] built,
//! and the columns entering or leaving the alert state logged once per change.

use std::collections::BTreeSet;

use ferroserve_core::profile::{
    ColumnKind, ColumnProfile, bin_shares, category_of, chi_square, ks_pvalue, ks_two_sample, psi,
};
use serde::Serialize;

use super::tap::{Tap, TapColumn};
use super::{DataMonitor, Settings};

/// PSI above this is reported as `warn` (below the alert threshold).
const PSI_WARN: f64 = 0.1;

impl DataMonitor {
    /// Scores the windows against the reference, and logs the columns that entered or left
    /// the alert state since the last report.
    pub fn report(&self) -> MonitorReport {
        let inputs = reports(&self.inputs, &self.profile.inputs, &self.settings);
        let outputs = reports(&self.outputs, &self.profile.outputs, &self.settings);
        let alerts: Vec<String> = inputs
            .iter()
            .chain(&outputs)
            .filter(|c| c.status == Status::Alert)
            .map(|c| c.name.clone())
            .collect();
        let now: BTreeSet<String> = alerts.iter().cloned().collect();
        let mut before = self.alerting.lock().unwrap_or_else(|e| e.into_inner());
        for c in inputs.iter().chain(&outputs) {
            if now.contains(&c.name) && !before.contains(&c.name) {
                tracing::warn!(
                    model = %self.model, version = self.version, column = %c.name,
                    psi = ?c.psi, ks = ?c.ks, window = c.window,
                    "data drift: {} crossed its alert threshold (PSI > {} or KS > {:?})",
                    c.name, self.settings.psi_alert, self.settings.ks_alert
                );
            } else if !now.contains(&c.name) && before.contains(&c.name) {
                tracing::info!(
                    model = %self.model, version = self.version, column = %c.name, psi = ?c.psi,
                    "data drift: {} is back under its alert threshold", c.name
                );
            }
        }
        *before = now;
        drop(before);
        MonitorReport {
            model: self.model.clone(),
            version: self.version,
            reference_rows: self.profile.rows,
            reference_source: self.profile.source.clone(),
            settings: self.settings,
            alerts,
            inputs,
            outputs,
        }
    }
}

/// A column's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fewer rows than `min_samples` in the window.
    Collecting,
    /// PSI under 0.1.
    Ok,
    /// PSI between 0.1 and the alert threshold.
    Warn,
    /// Over a threshold.
    Alert,
}

/// A version's drift report.
#[derive(Clone, Debug, Serialize)]
pub struct MonitorReport {
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
    /// Rows the reference profile was computed from.
    pub reference_rows: u64,
    /// Its data file.
    pub reference_source: String,
    /// The settings in force.
    pub settings: Settings,
    /// The columns over a threshold now.
    pub alerts: Vec<String>,
    /// One per profiled input feature.
    pub inputs: Vec<ColumnReport>,
    /// One per profiled output column.
    pub outputs: Vec<ColumnReport>,
}

/// One column's live statistics against its reference.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnReport {
    /// The column.
    pub name: String,
    /// Its tensor.
    pub tensor: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Values seen since load.
    pub count: u64,
    /// Missing (NaN) values seen since load.
    pub missing: u64,
    /// Values outside the reference's range, or categories it never saw, since load.
    pub out_of_range: u64,
    /// Non-missing values in the window now.
    pub window: usize,
    /// PSI of the window against the reference.
    pub psi: Option<f64>,
    /// Two-sample KS statistic (numeric).
    pub ks: Option<f64>,
    /// Its asymptotic p-value.
    pub ks_pvalue: Option<f64>,
    /// Pearson's chi-square statistic (categorical).
    pub chi_square: Option<f64>,
    /// The verdict.
    pub status: Status,
    /// The bins: upper edges (numeric, the last bin open) or category names, with the
    /// reference's and the window's shares, for plots.
    pub bins: Bins,
}

/// A column's histogram, reference and live.
#[derive(Clone, Debug, Serialize)]
pub struct Bins {
    /// Interior edges (numeric) or category names (categorical; the last is `(other)`).
    pub labels: Vec<String>,
    /// The reference's share per bin.
    pub reference: Vec<f64>,
    /// The window's share per bin.
    pub live: Vec<f64>,
}

/// The report of every tapped column of `taps`, in tap order.
fn reports(taps: &[Tap], profiles: &[ColumnProfile], settings: &Settings) -> Vec<ColumnReport> {
    let mut out = Vec::new();
    for tap in taps {
        let count = tap.written();
        for (c, values) in tap.readings() {
            out.push(column_report(
                &profiles[c.profile()],
                c,
                count,
                values,
                settings,
            ));
        }
    }
    out
}

/// One column's report: its window scored against `profile`, `count` rows written since
/// load.
fn column_report(
    profile: &ColumnProfile,
    c: &TapColumn,
    count: u64,
    mut values: Vec<f64>,
    settings: &Settings,
) -> ColumnReport {
    let n = values.len();
    let scored = n >= settings.min_samples.max(1);
    let (kind, bins, ks, ks_p, chi) = match &profile.kind {
        ColumnKind::Numeric {
            edges,
            shares,
            sample,
            ..
        } => {
            let live = bin_shares(edges, &values);
            values.sort_by(f64::total_cmp);
            let d = ks_two_sample(sample, &values);
            let bins = Bins {
                labels: edges.iter().map(|e| format!("{e}")).collect(),
                reference: shares.clone(),
                live,
            };
            (
                "numeric",
                bins,
                Some(d),
                Some(ks_pvalue(d, sample.len(), n)),
                None,
            )
        }
        ColumnKind::Categorical { categories } => {
            let names: Vec<&String> = categories.keys().collect();
            let mut counts = vec![0.0; names.len() + 1];
            for v in &values {
                let ix = if c.holds_codes() {
                    // BYTES columns store the category's code; -1 is an unseen category.
                    if *v >= 0.0 { *v as usize } else { names.len() }
                } else {
                    let label = category_of(*v);
                    names
                        .iter()
                        .position(|k| **k == label)
                        .unwrap_or(names.len())
                };
                counts[ix.min(names.len())] += 1.0;
            }
            let mut reference: Vec<f64> = categories.values().copied().collect();
            reference.push(0.0);
            let live: Vec<f64> = counts
                .iter()
                .map(|k| if n > 0 { k / n as f64 } else { 0.0 })
                .collect();
            let chi = chi_square(&reference, &counts);
            let mut labels: Vec<String> = names.iter().map(|s| (*s).clone()).collect();
            labels.push("(other)".into());
            (
                "categorical",
                Bins {
                    labels,
                    reference,
                    live,
                },
                None,
                None,
                Some(chi),
            )
        }
    };
    let index = psi(&bins.reference, &bins.live);
    let status = if !scored {
        Status::Collecting
    } else if index > settings.psi_alert || settings.ks_alert.zip(ks).is_some_and(|(t, d)| d > t) {
        Status::Alert
    } else if index > PSI_WARN {
        Status::Warn
    } else {
        Status::Ok
    };
    let keep = |v: Option<f64>| v.filter(|_| scored && n > 0);
    ColumnReport {
        name: profile.name.clone(),
        tensor: profile.tensor.clone(),
        kind,
        count,
        missing: c.missing(),
        out_of_range: c.out_of_range(),
        window: n,
        psi: keep(Some(index)),
        ks: keep(ks),
        ks_pvalue: keep(ks_p),
        chi_square: keep(chi),
        status,
        bins,
    }
}
