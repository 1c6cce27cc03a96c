//! `model.toml`: parsed as plain data ([`RawModelConfig`], unknown keys rejected), then checked
//! against the loaded model's signature ([`ModelConfig::resolve_signature`]). Every error names the
//! file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroserve_core::{LoadError, Signature};
use serde::Deserialize;

use crate::repository::warmup::WarmupMode;
use crate::scheduler::{BatchMode, BatchPolicy};

/// The file name of a model's configuration, beside its version directories.
pub const CONFIG_FILE: &str = "model.toml";

/// Which versions of a model are loaded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionPolicy {
    /// The N highest version numbers (`version_policy = { latest = 2 }`).
    Latest(u32),
    /// Every version found (`version_policy = "all"`).
    All,
    /// Exactly these versions (`version_policy = { specific = [1, 3] }`).
    Specific(Vec<u64>),
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest(1)
    }
}

impl VersionPolicy {
    /// Builds the versions this policy serves out of `available` (ascending), calling `build`
    /// for each version tried; `build` answers whether that version is ready. `latest = N`
    /// walks down from the newest until N are ready, so a newer version that fails to load
    /// never displaces an older ready one (TF Serving's availability-preserving policy);
    /// `all` and `specific` try every version they name. Returns the versions tried, ascending.
    pub fn build(&self, available: &[u64], mut build: impl FnMut(u64) -> bool) -> Vec<u64> {
        let mut tried = Vec::new();
        match self {
            VersionPolicy::Latest(n) => {
                let mut ready = 0;
                for &version in available.iter().rev() {
                    if ready >= *n as usize {
                        break;
                    }
                    tried.push(version);
                    if build(version) {
                        ready += 1;
                    }
                }
                tried.reverse();
            }
            VersionPolicy::All => {
                for &version in available {
                    tried.push(version);
                    build(version);
                }
            }
            VersionPolicy::Specific(wanted) => {
                for &version in available.iter().filter(|v| wanted.contains(v)) {
                    tried.push(version);
                    build(version);
                }
            }
        }
        tried
    }
}

/// A signature override for one tensor (`[[input]]`, `[[output]]`).
pub type RawTensorOverride = ferroserve_core::TensorOverride;

/// `model.toml` as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelConfig {
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
    pub input: Vec<RawTensorOverride>,
    /// Overrides of the outputs the model file declares.
    #[serde(default)]
    pub output: Vec<RawTensorOverride>,
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
    pub directory: Option<std::path::PathBuf>,
    /// A file is closed and a new one started past this size (default 64 MiB).
    pub max_file_bytes: Option<u64>,
    /// Files kept per version; the oldest is removed (default 10).
    pub max_files: Option<usize>,
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

/// The default `max_batch_size` of a model whose tensors all have a dynamic first dimension.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 1024;

/// The default queue length of one version.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 1024;

/// A model's configuration, parsed and with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Where it was read from (for error messages); `None` when the model has no `model.toml`.
    pub path: Option<PathBuf>,
    /// The raw settings.
    pub raw: RawModelConfig,
}

impl ModelConfig {
    /// Reads `<model_dir>/model.toml`, or the defaults when there is none.
    pub fn read(model_dir: &Path) -> Result<ModelConfig, LoadError> {
        let path = model_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ModelConfig {
                    path: None,
                    raw: RawModelConfig::default(),
                });
            }
            Err(source) => return Err(LoadError::Io { path, source }),
        };
        ModelConfig::parse(&text, &path)
    }

    /// Parses the text of a `model.toml` read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig, LoadError> {
        let raw: RawModelConfig = toml::from_str(text).map_err(|e| LoadError::Config {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let config = ModelConfig {
            path: Some(path.to_owned()),
            raw,
        };
        if config.raw.instances == Some(0) {
            return Err(config.error("instances: must be at least 1"));
        }
        if config.raw.max_queue_size == Some(0) {
            return Err(config.error("max_queue_size: must be at least 1"));
        }
        if let Some(VersionPolicy::Latest(0)) = config.raw.version_policy {
            return Err(config.error("version_policy.latest: must be at least 1"));
        }
        for (label, version) in &config.raw.labels {
            if *version == 0 {
                return Err(config.error(&format!("labels.{label}: versions start at 1")));
            }
        }
        Ok(config)
    }

    fn error(&self, message: &str) -> LoadError {
        LoadError::Config {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from(CONFIG_FILE)),
            message: message.to_owned(),
        }
    }

    /// The settings a loaded version depends on: all but the labels, which can move without
    /// reloading anything.
    pub fn load_settings(&self) -> RawModelConfig {
        RawModelConfig {
            labels: BTreeMap::new(),
            ..self.raw.clone()
        }
    }

    /// The warm-up mode and how many runs.
    pub fn warmup(&self) -> (WarmupMode, usize) {
        (
            self.raw.warmup.unwrap_or_default(),
            self.raw.warmup_runs.unwrap_or(1),
        )
    }

    /// The version policy, `latest = 1` by default.
    pub fn version_policy(&self) -> VersionPolicy {
        self.raw.version_policy.clone().unwrap_or_default()
    }

    /// Concurrent executions of one version; one per core by default.
    pub fn instances(&self) -> usize {
        self.raw.instances.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// The queue length of one version.
    pub fn max_queue_size(&self) -> usize {
        self.raw.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE)
    }

    /// The batching policy for a version served with `max_batch_size`, checked.
    pub fn batch_policy(&self, max_batch_size: usize) -> Result<BatchPolicy, LoadError> {
        let raw = &self.raw;
        let mut preferred = raw.preferred_batch_sizes.clone();
        preferred.sort_unstable();
        preferred.dedup();
        if let Some(&bad) = preferred.iter().find(|&&p| p == 0 || p > max_batch_size) {
            return Err(self.error(&format!(
                "preferred_batch_sizes: {bad} is not between 1 and max_batch_size                  ({max_batch_size})"
            )));
        }
        let mode = match raw.batching.unwrap_or(BatchingMode::Dynamic) {
            BatchingMode::Off => BatchMode::Off,
            BatchingMode::Dynamic => BatchMode::Dynamic,
            BatchingMode::Adaptive => match raw.latency_objective_us {
                Some(us) if us > 0 => BatchMode::Adaptive {
                    latency_objective: Duration::from_micros(us),
                },
                _ => {
                    return Err(self.error(
                        "batching = \"adaptive\" needs latency_objective_us (the longest a \
                         batch may take, in microseconds)",
                    ));
                }
            },
        };
        let levels = raw.priority_levels.unwrap_or(1);
        if levels == 0 {
            return Err(self.error("priority_levels: must be at least 1"));
        }
        let default_priority = raw.default_priority_level.unwrap_or(levels);
        if !(1..=levels).contains(&default_priority) {
            return Err(self.error(&format!(
                "default_priority_level: {default_priority} is not a level between 1 and \
                 priority_levels ({levels})"
            )));
        }
        Ok(BatchPolicy {
            max_batch_size,
            mode,
            max_queue_delay: Duration::from_micros(raw.max_queue_delay_us.unwrap_or(0)),
            preferred_batch_sizes: preferred,
            instances: self.instances(),
            max_queue_size: self.max_queue_size(),
            priority_levels: levels,
            default_priority,
        })
    }

    /// The `max_batch_size` to serve `signature` with, checked against it.
    pub fn max_batch_size(&self, signature: &Signature) -> Result<usize, LoadError> {
        match self.raw.max_batch_size {
            None if signature.batchable() => Ok(DEFAULT_MAX_BATCH_SIZE),
            None | Some(0) => Ok(0),
            Some(n) if signature.batchable() => Ok(n),
            Some(_) => Err(self.error(
                "max_batch_size: the model's tensors do not all have a dynamic first dimension, \
                 so it cannot batch; set max_batch_size = 0",
            )),
        }
    }

    /// The model's own signature with this configuration's overrides applied.
    pub fn resolve_signature(&self, signature: Signature) -> Result<Signature, LoadError> {
        signature
            .with_overrides(&self.raw.input, &self.raw.output)
            .map_err(|message| self.error(&message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::{DataType, TensorSpec};

    fn parse(text: &str) -> Result<ModelConfig, LoadError> {
        ModelConfig::parse(text, Path::new("m/model.toml"))
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            r#"
            runtime = "onnx"
            max_batch_size = 8
            instances = 2
            version_policy = { specific = [1, 3] }
            labels = { stable = 1, canary = 3 }
            [[input]]
            name = "x"
            shape = [-1, 4]
            "#,
        )
        .unwrap();
        assert_eq!(c.raw.runtime.as_deref(), Some("onnx"));
        assert_eq!(c.version_policy(), VersionPolicy::Specific(vec![1, 3]));
        assert_eq!(c.raw.labels["canary"], 3);
        assert_eq!(c.instances(), 2);
    }

    #[test]
    fn version_policies_serve_the_newest_ready_versions() {
        let v = [1, 2, 5];
        let all_ready = |_| true;
        assert_eq!(VersionPolicy::Latest(2).build(&v, all_ready), vec![2, 5]);
        assert_eq!(VersionPolicy::All.build(&v, all_ready), vec![1, 2, 5]);
        assert_eq!(
            VersionPolicy::Specific(vec![5, 9]).build(&v, all_ready),
            vec![5]
        );
        // A newest version that fails is tried, and the walk goes on down to a ready one.
        let five_fails = |version| version != 5;
        assert_eq!(VersionPolicy::Latest(1).build(&v, five_fails), vec![2, 5]);
        assert_eq!(
            VersionPolicy::Latest(2).build(&v, five_fails),
            vec![1, 2, 5]
        );
        assert_eq!(VersionPolicy::Latest(1).build(&v, |_| false), vec![1, 2, 5]);
        // The others try every version they name, ready or not.
        assert_eq!(VersionPolicy::All.build(&v, five_fails), vec![1, 2, 5]);
        assert_eq!(
            parse("version_policy = \"all\"").unwrap().version_policy(),
            VersionPolicy::All
        );
        assert_eq!(
            parse("version_policy = { latest = 2 }")
                .unwrap()
                .version_policy(),
            VersionPolicy::Latest(2)
        );
    }

    #[test]
    fn rejects_unknown_key_naming_file_and_key() {
        let err = parse("max_batch = 3").unwrap_err().to_string();
        assert!(
            err.contains("m/model.toml") && err.contains("max_batch"),
            "{err}"
        );
    }

    #[test]
    fn overrides_narrow_shapes_and_check_datatypes() {
        let sig = Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, -1])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1])],
        };
        let c = parse("[[input]]\nname = \"x\"\ndatatype = \"FP32\"\nshape = [-1, 4]").unwrap();
        assert_eq!(
            c.resolve_signature(sig.clone()).unwrap().inputs[0].shape,
            vec![-1, 4]
        );
        let bad = parse("[[input]]\nname = \"x\"\ndatatype = \"INT64\"").unwrap();
        assert!(
            bad.resolve_signature(sig.clone())
                .unwrap_err()
                .to_string()
                .contains("FP32")
        );
        let unknown = parse("[[output]]\nname = \"z\"").unwrap();
        assert!(
            unknown
                .resolve_signature(sig)
                .unwrap_err()
                .to_string()
                .contains("'z'")
        );
    }

    #[test]
    fn batching_settings_become_a_policy_and_bad_ones_name_the_key() {
        let c = parse(
            "batching = \"adaptive\"\nlatency_objective_us = 2000\nmax_queue_delay_us = 300\n\
             preferred_batch_sizes = [32, 8]\npriority_levels = 3\n",
        )
        .unwrap();
        let p = c.batch_policy(64).unwrap();
        assert_eq!(
            p.mode,
            BatchMode::Adaptive {
                latency_objective: Duration::from_millis(2)
            }
        );
        assert_eq!(p.max_queue_delay, Duration::from_micros(300));
        assert_eq!(p.preferred_batch_sizes, [8, 32]);
        assert_eq!((p.priority_levels, p.default_priority), (3, 3));
        let defaults = parse("").unwrap().batch_policy(16).unwrap();
        assert_eq!(defaults.mode, BatchMode::Dynamic);
        assert_eq!(defaults.max_queue_delay, Duration::ZERO);
        for (text, needle) in [
            ("batching = \"adaptive\"", "latency_objective_us"),
            (
                "preferred_batch_sizes = [128]",
                "preferred_batch_sizes: 128",
            ),
            (
                "priority_levels = 2\ndefault_priority_level = 3",
                "default_priority_level",
            ),
            ("priority_levels = 0", "priority_levels"),
        ] {
            let err = parse(text)
                .unwrap()
                .batch_policy(64)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(parse("batching = \"sometimes\"").is_err());
    }

    #[test]
    fn max_batch_size_defaults_by_signature() {
        let batchable = Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 4])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1])],
        };
        let fixed = Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![1, 4])],
            outputs: vec![],
        };
        let none = parse("").unwrap();
        assert_eq!(
            none.max_batch_size(&batchable).unwrap(),
            DEFAULT_MAX_BATCH_SIZE
        );
        assert_eq!(none.max_batch_size(&fixed).unwrap(), 0);
        assert!(
            parse("max_batch_size = 4")
                .unwrap()
                .max_batch_size(&fixed)
                .is_err()
        );
    }
}
