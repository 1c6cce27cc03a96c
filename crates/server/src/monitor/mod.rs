//! Data monitoring: a model version with a reference profile (`profile.json`, written by
//! `ferroserve profile`) keeps a window of the last rows of every profiled input feature and
//! output column, and scores the window against the reference on demand: PSI and
//! Kolmogorov–Smirnov for numeric columns, PSI and chi-square for categorical ones
//! (`ferroserve_core::profile` has the statistics). Missing values and values outside the
//! reference's range (or categories it never saw) are counted since load.
//!
//! The request path only writes: one atomic reservation per tensor and one relaxed store per
//! value ([`window`]); statistics are computed when asked for (`GET /v2/models/{m}/monitoring`,
//! a `/metrics` scrape, the periodic alert check), which also logs a column entering or leaving
//! the alert state once per change.

mod window;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ferroserve_core::profile::{
    ColumnKind, ColumnProfile, PROFILE_FILE, Profile, bin_shares, category_of, chi_square,
    ks_pvalue, ks_two_sample, psi,
};
use ferroserve_core::{DataType, Signature, Tensor, TensorData, TensorSpec};
use serde::Serialize;

use crate::repository::config::MonitoringConfig;
use window::Window;

/// PSI above this is reported as `warn` (below the alert threshold).
const PSI_WARN: f64 = 0.1;

/// The monitor of one model version.
#[derive(Debug)]
pub struct DataMonitor {
    model: String,
    version: u64,
    profile: Profile,
    settings: Settings,
    inputs: Vec<Tap>,
    outputs: Vec<Tap>,
    /// Columns in the alert state at the last report, to log changes once.
    alerting: Mutex<BTreeSet<String>>,
}

/// `[monitoring]` with defaults applied.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Settings {
    /// Rows kept per tensor.
    pub window: usize,
    /// Rows the window needs before drift is scored.
    pub min_samples: usize,
    /// PSI above which a column alerts.
    pub psi_alert: f64,
    /// KS statistic above which a numeric column alerts, if set.
    pub ks_alert: Option<f64>,
}

impl Settings {
    fn from(config: Option<&MonitoringConfig>) -> Settings {
        let c = config.cloned().unwrap_or_default();
        Settings {
            window: c.window.unwrap_or(1_000).max(1),
            min_samples: c.min_samples.unwrap_or(100),
            psi_alert: c.psi_alert.unwrap_or(0.25),
            ks_alert: c.ks_alert,
        }
    }
}

/// The taps on one tensor.
#[derive(Debug)]
struct Tap {
    tensor: String,
    columns: Vec<TapColumn>,
    window: Window,
}

/// One monitored column of a tensor.
#[derive(Debug)]
struct TapColumn {
    /// Its profile, in `inputs` or `outputs`.
    profile: usize,
    /// Its index in a row of the tensor.
    index: usize,
    /// What a value is checked against, and what the window holds.
    reference: Reference,
    missing: AtomicU64,
    out_of_range: AtomicU64,
}

/// A column's reference as the request path uses it, chosen from the profile and the
/// tensor's datatype.
#[derive(Debug)]
enum Reference {
    /// Numeric: the window holds the value; outside `[min, max]` is out of range.
    Range(f64, f64),
    /// Categories of a numeric tensor: the window holds the value; one the reference never
    /// saw is out of range (compared as numbers, without formatting each value).
    Numbers(Vec<f64>),
    /// Categories of a BYTES tensor: the window holds the category's code (its position in
    /// the profile), -1 for one the reference never saw.
    Text(HashMap<Vec<u8>, usize>),
}

impl Reference {
    fn of(kind: &ColumnKind, datatype: DataType) -> Reference {
        match kind {
            ColumnKind::Numeric { min, max, .. } => Reference::Range(*min, *max),
            ColumnKind::Categorical { categories } if datatype == DataType::Bytes => {
                Reference::Text(
                    categories
                        .keys()
                        .enumerate()
                        .map(|(i, k)| (k.as_bytes().to_vec(), i))
                        .collect(),
                )
            }
            ColumnKind::Categorical { categories } => {
                Reference::Numbers(categories.keys().filter_map(|k| k.parse().ok()).collect())
            }
        }
    }

    /// Whether a (non-missing) window value lies outside the reference.
    fn is_outside(&self, value: f64) -> bool {
        match self {
            Reference::Range(min, max) => value < *min || value > *max,
            Reference::Numbers(known) => !known.contains(&value),
            Reference::Text(_) => value < 0.0,
        }
    }
}

impl DataMonitor {
    /// The monitor of a version, if a profile is found (`vdir/profile.json`, else the model
    /// directory's) and monitoring is not turned off. An unreadable profile is an error.
    pub fn load(
        model: &str,
        version: u64,
        vdir: &Path,
        signature: &Signature,
        config: Option<&MonitoringConfig>,
    ) -> Result<Option<DataMonitor>, String> {
        if config.and_then(|c| c.enabled) == Some(false) {
            return Ok(None);
        }
        let candidates = [
            Some(vdir.join(PROFILE_FILE)),
            vdir.parent().map(|d| d.join(PROFILE_FILE)),
        ];
        let Some(path) = candidates.into_iter().flatten().find(|p| p.is_file()) else {
            return Ok(None);
        };
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let profile: Profile = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a profile: {e}", path.display()))?;
        let settings = Settings::from(config);
        let datatype = |specs: &[TensorSpec], tensor: &str| {
            specs.iter().find(|s| s.name == tensor).map(|s| s.datatype)
        };
        let unknown: Vec<&str> = (profile.inputs.iter())
            .filter(|c| datatype(&signature.inputs, &c.tensor).is_none())
            .chain(
                (profile.outputs.iter())
                    .filter(|c| datatype(&signature.outputs, &c.tensor).is_none()),
            )
            .map(|c| c.tensor.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "{} profiles tensors the model does not have: {unknown:?}",
                path.display()
            ));
        }
        let inputs = taps(&profile.inputs, settings.window, |t| {
            datatype(&signature.inputs, t)
        });
        let outputs = taps(&profile.outputs, settings.window, |t| {
            datatype(&signature.outputs, t)
        });
        Ok(Some(DataMonitor {
            model: model.to_owned(),
            version,
            profile,
            settings,
            inputs,
            outputs,
            alerting: Mutex::default(),
        }))
    }

    /// Records a request's validated inputs.
    pub fn observe_inputs(&self, tensors: &[Tensor]) {
        observe(&self.inputs, tensors);
    }

    /// Records a request's outputs.
    pub fn observe_outputs(&self, tensors: &[Tensor]) {
        observe(&self.outputs, tensors);
    }

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

/// The taps of the profiled columns, one per tensor; `datatype` is each tensor's in the
/// signature (every one is there: checked by the caller).
fn taps(
    columns: &[ColumnProfile],
    rows: usize,
    datatype: impl Fn(&str) -> Option<DataType>,
) -> Vec<Tap> {
    let mut tensors: Vec<(&str, DataType)> = Vec::new();
    for c in columns {
        if let Some(d) = datatype(&c.tensor)
            && !tensors.iter().any(|(t, _)| *t == c.tensor)
        {
            tensors.push((&c.tensor, d));
        }
    }
    tensors
        .into_iter()
        .map(|(tensor, datatype)| {
            let tapped: Vec<TapColumn> = columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.tensor == tensor)
                .map(|(profile, c)| TapColumn {
                    profile,
                    index: c.index,
                    reference: Reference::of(&c.kind, datatype),
                    missing: AtomicU64::new(0),
                    out_of_range: AtomicU64::new(0),
                })
                .collect();
            Tap {
                tensor: tensor.to_owned(),
                window: Window::new(rows, tapped.len()),
                columns: tapped,
            }
        })
        .collect()
}

/// Writes the rows of each tapped tensor of `tensors` into its window.
fn observe(taps: &[Tap], tensors: &[Tensor]) {
    for tap in taps {
        let Some(t) = tensors.iter().find(|t| t.name == tap.tensor) else {
            continue;
        };
        let rows = t.shape.first().copied().unwrap_or(1).max(1);
        let width = t.len() / rows;
        if width == 0 {
            continue;
        }
        let start = tap.window.reserve(rows);
        let data = t.data();
        for r in 0..rows {
            for (slot, c) in tap.columns.iter().enumerate() {
                let i = r * width + c.index;
                let value = match (&c.reference, data) {
                    (Reference::Text(codes), TensorData::Bytes(b)) => match b.get(i) {
                        Some(bytes) => codes.get(bytes).map_or(-1.0, |&k| k as f64),
                        None => f64::NAN,
                    },
                    _ => data.get_f64(i).unwrap_or(f64::NAN),
                };
                if value.is_nan() {
                    c.missing.fetch_add(1, Ordering::Relaxed);
                } else if c.reference.is_outside(value) {
                    c.out_of_range.fetch_add(1, Ordering::Relaxed);
                }
                tap.window.put(start + r as u64, slot, value);
            }
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

fn reports(taps: &[Tap], profiles: &[ColumnProfile], settings: &Settings) -> Vec<ColumnReport> {
    let mut out = Vec::new();
    for tap in taps {
        let count = tap.window.written();
        for (slot, c) in tap.columns.iter().enumerate() {
            let profile = &profiles[c.profile];
            let values: Vec<f64> = tap
                .window
                .column(slot)
                .into_iter()
                .filter(|v| !v.is_nan())
                .collect();
            out.push(column_report(profile, c, count, values, settings));
        }
    }
    out
}

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
                let ix = match &c.reference {
                    // BYTES columns store the category's code; -1 is an unseen category.
                    Reference::Text(_) => {
                        if *v >= 0.0 {
                            *v as usize
                        } else {
                            names.len()
                        }
                    }
                    _ => {
                        let label = category_of(*v);
                        names
                            .iter()
                            .position(|k| **k == label)
                            .unwrap_or(names.len())
                    }
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
        missing: c.missing.load(Ordering::Relaxed),
        out_of_range: c.out_of_range.load(Ordering::Relaxed),
        window: n,
        psi: keep(Some(index)),
        ks: keep(ks),
        ks_pvalue: keep(ks_p),
        chi_square: keep(chi),
        status,
        bins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::TensorSpec;

    /// Text categories that look like numbers ("1", "2") are still matched as text: the
    /// window of a BYTES tensor holds codes, never the labels' numeric values.
    #[test]
    fn text_categories_are_counted_by_code() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile {
            format: 1,
            rows: 4,
            source: String::new(),
            inputs: vec![ColumnProfile::categorical(
                "grade",
                "grade",
                0,
                [Some("1"), Some("1"), Some("2"), Some("2")],
            )],
            outputs: Vec::new(),
        };
        std::fs::write(
            dir.path().join(PROFILE_FILE),
            serde_json::to_vec(&profile).unwrap(),
        )
        .unwrap();
        let signature = Signature {
            inputs: vec![TensorSpec::new("grade", DataType::Bytes, vec![-1])],
            outputs: Vec::new(),
        };
        let settings = MonitoringConfig {
            min_samples: Some(1),
            ..MonitoringConfig::default()
        };
        let monitor = DataMonitor::load("m", 1, dir.path(), &signature, Some(&settings))
            .unwrap()
            .unwrap();
        let grades = [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()];
        let t = Tensor::new("grade", vec![3], TensorData::Bytes(grades.to_vec().into())).unwrap();
        monitor.observe_inputs(&[t]);
        let report = monitor.report();
        let c = &report.inputs[0];
        assert_eq!(c.out_of_range, 1, "3 is a category the reference never saw");
        assert_eq!(c.bins.labels, ["1", "2", "(other)"]);
        let third = 1.0 / 3.0;
        assert_eq!(c.bins.live, [third, third, third]);
    }
}
