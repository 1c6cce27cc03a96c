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
//!
//! This module owns [`DataMonitor`] and its loading; [`tap`] is what runs per request (the
//! taps that fill the windows), [`report`] what runs when asked (the scores and the
//! [`MonitorReport`]).

mod report;
mod tap;
mod window;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use ferroserve_core::profile::{PROFILE_FILE, Profile};
use ferroserve_core::{Signature, Tensor, TensorSpec};
use serde::Serialize;

pub(crate) use self::report::{ColumnReport, MonitorReport, Status};
use self::tap::{Tap, observe, taps};
use crate::repository::config::MonitoringConfig;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::profile::ColumnProfile;
    use ferroserve_core::{DataType, TensorData};

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
