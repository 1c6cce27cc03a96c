//! [`ModelSettings`]: the keys of a plain model's `model.toml` (not a composite), parsed with
//! unknown keys rejected and the values serde cannot check checked. Checks that need the loaded
//! model (its signature, its batch sizes) belong to whoever loads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;
use super::version_policy::VersionPolicy;

/// A signature override for one tensor (`[[input]]`, `[[output]]`).
pub type TensorOverride = ferroserve_core::TensorOverride;

/// A plain model's `model.toml` as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// The runtime to load with (`"onnx"`); found from the files when absent.
    pub runtime: Option<String>,
    /// The model file inside each version directory, when not the runtime's default.
    pub default_model_filename: Option<String>,
    /// Largest batch a request may carry; 0 = the model has no batch dimension.
    pub max_batch_size: Option<usize>,
    /// Concurrent executions of one version.
    pub instances: Option<usize>,
    /// Requests that may wait for an instance before new ones are turned away.
    pub max_queue_size: Option<usize>,
    /// How requests are batched: `"dynamic"` (default for models with a batch dimension),
    /// `"adaptive"` (batch size follows `latency_objective_us`) or `"off"`.
    pub batching: Option<BatchingMode>,
    /// Microseconds the oldest waiting request may wait for a fuller batch (default 0: batch
    /// whatever is waiting when an instance is free, never wait for more).
    pub max_queue_delay_us: Option<u64>,
    /// Batch sizes sent as soon as they can be formed.
    #[serde(default)]
    pub preferred_batch_sizes: Vec<usize>,
    /// Adaptive batching: the longest a batch may take to compute, in microseconds.
    pub latency_objective_us: Option<u64>,
    /// Priority levels requests may name (`parameters.priority`, 1 the highest); default 1.
    pub priority_levels: Option<usize>,
    /// The level of requests that name none; default the lowest.
    pub default_priority_level: Option<usize>,
    /// Which versions to load.
    pub version_policy: Option<VersionPolicy>,
    /// Names for versions (`stable = 1`), usable wherever a version number is.
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
    /// Warm-up before a version serves: `"auto"` (default: `warmup.json` if present, else a
    /// made-up request of zeros), `"file"` (`warmup.json` required) or `"off"`.
    pub warmup: Option<WarmupMode>,
    /// How many times the warm-up requests run (default 1).
    pub warmup_runs: Option<usize>,
    /// Bytes of answers kept by their inputs (the prediction cache); absent or 0: no cache.
    pub cache_bytes: Option<usize>,
    /// Data monitoring against `profile.json` (`[monitoring]`).
    pub monitoring: Option<MonitoringConfig>,
    /// Sampled request/response records to files (`[payload_log]`).
    pub payload_log: Option<PayloadLogConfig>,
    /// Overrides of the inputs the model file declares.
    #[serde(default)]
    pub input: Vec<TensorOverride>,
    /// Overrides of the outputs the model file declares.
    #[serde(default)]
    pub output: Vec<TensorOverride>,
}

impl ModelSettings {
    /// Parses the text of a plain model's `model.toml` read from `path` (named in errors), and
    /// checks the values that must be at least 1.
    pub fn parse(text: &str, path: &Path) -> Result<ModelSettings, ConfigError> {
        let error = |message: String| ConfigError::Model {
            path: path.to_owned(),
            message,
        };
        let settings: ModelSettings =
            toml::from_str(text).map_err(|e| error(e.to_string().trim_end().to_owned()))?;
        if settings.instances == Some(0) {
            return Err(error("instances: must be at least 1".into()));
        }
        if settings.max_queue_size == Some(0) {
            return Err(error("max_queue_size: must be at least 1".into()));
        }
        if let Some(VersionPolicy::Latest(0)) = settings.version_policy {
            return Err(error("version_policy.latest: must be at least 1".into()));
        }
        if let Some((label, _)) = settings.labels.iter().find(|(_, v)| **v == 0) {
            return Err(error(format!("labels.{label}: versions start at 1")));
        }
        Ok(settings)
    }
}

/// `[monitoring]` in `model.toml`: how live traffic is compared with the reference profile.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// `false` turns monitoring off even with a profile; default on when one exists.
    pub enabled: Option<bool>,
    /// Rows kept per tensor, the sliding window drift is scored on (default 1,000).
    pub window: Option<usize>,
    /// Rows the window needs before drift is scored (default 100).
    pub min_samples: Option<usize>,
    /// PSI above which a column alerts (default 0.25).
    pub psi_alert: Option<f64>,
    /// Kolmogorov–Smirnov statistic above which a numeric column alerts (default: none).
    pub ks_alert: Option<f64>,
}

/// `[payload_log]` in `model.toml`: a sampled share of requests written to rotating JSONL
/// files.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadLogConfig {
    /// Share of requests logged, 0 to 1 (default 0: off).
    pub rate: Option<f64>,
    /// Where the files go (default `payload-logs/<model>` under the server's directory).
    pub directory: Option<PathBuf>,
    /// A file is closed and a new one started past this size (default 64 MiB).
    pub max_file_bytes: Option<u64>,
    /// Files kept per version; the oldest is removed (default 10).
    pub max_files: Option<usize>,
    /// Inputs and outputs left out of the records entirely.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Inputs and outputs logged with their name, datatype and shape, their data replaced
    /// by `"redacted"`.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Inputs and outputs (identifiers) whose every value is logged as a keyed hash: the same
    /// value hashes the same across records, so they can still be joined.
    #[serde(default)]
    pub hash: Vec<String>,
    /// The key of those hashes; keep it secret, or a list of candidate identifiers can be
    /// hashed and matched (default: none, a plain SHA-256).
    pub hash_key: Option<String>,
}

/// `batching` in `model.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchingMode {
    /// Every request is its own model call.
    Off,
    /// Batches up to `max_batch_size`.
    Dynamic,
    /// Batch size adapted to `latency_objective_us`.
    Adaptive,
}

/// `warmup` in `model.toml`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    /// The warm-up file when there is one, else a made-up request of zeros.
    #[default]
    Auto,
    /// The warm-up file, which must exist.
    File,
    /// No warm-up.
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelSettings, ConfigError> {
        ModelSettings::parse(text, Path::new("m/model.toml"))
    }

    #[test]
    fn parses_every_kind_of_key() {
        let s = parse(
            r#"
            runtime = "onnx"
            max_batch_size = 8
            batching = "adaptive"
            warmup = "off"
            version_policy = { specific = [1, 3] }
            labels = { stable = 1, canary = 3 }
            [monitoring]
            window = 50
            [payload_log]
            rate = 0.5
            [[input]]
            name = "x"
            shape = [-1, 4]
            "#,
        )
        .unwrap();
        assert_eq!(s.runtime.as_deref(), Some("onnx"));
        assert_eq!(s.batching, Some(BatchingMode::Adaptive));
        assert_eq!(s.warmup, Some(WarmupMode::Off));
        assert_eq!(s.version_policy, Some(VersionPolicy::Specific(vec![1, 3])));
        assert_eq!(s.labels["canary"], 3);
        assert_eq!(s.monitoring.unwrap().window, Some(50));
        assert_eq!(s.payload_log.unwrap().rate, Some(0.5));
        assert_eq!(s.input[0].name, "x");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        for (text, key) in [
            ("max_batch = 3", "max_batch"),
            ("max_batch_size = \"eight\"", "max_batch_size"),
            ("[monitoring]\nwindows = 3", "windows"),
            ("instances = 0", "instances"),
            ("max_queue_size = 0", "max_queue_size"),
            ("version_policy = { latest = 0 }", "version_policy.latest"),
            ("labels = { stable = 0 }", "labels.stable"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ConfigError::Model { .. }), "{text}: {err:?}");
            let err = err.to_string();
            assert!(
                err.starts_with("m/model.toml: ") && err.contains(key),
                "{text}: {err}"
            );
        }
    }
}
