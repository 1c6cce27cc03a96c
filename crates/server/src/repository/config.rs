//! A model's `model.toml` for serving: the settings the loader parsed
//! ([`ferroserve_loader::config`]) with their defaults applied, turned into a batching policy
//! and checked against the loaded model's signature ([`ModelConfig::resolve_signature`]). Every
//! error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroserve_core::{LoadError, Signature};
use ferroserve_loader::config::ConfigError;
pub(crate) use ferroserve_loader::config::{
    BatchingMode, CONFIG_FILE, ModelSettings, MonitoringConfig, PayloadLogConfig, VersionPolicy,
};

use crate::repository::warmup::WarmupMode;
use crate::scheduler::{BatchMode, BatchPolicy};

/// The default `max_batch_size` of a model whose tensors all have a dynamic first dimension.
pub(crate) const DEFAULT_MAX_BATCH_SIZE: usize = 1024;

/// The default queue length of one version.
pub(crate) const DEFAULT_MAX_QUEUE_SIZE: usize = 1024;

/// A model's configuration, parsed and with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Where it was read from (for error messages); `None` when the model has no `model.toml`.
    pub path: Option<PathBuf>,
    /// The settings as written.
    pub raw: ModelSettings,
}

impl ModelConfig {
    /// Parses the text of a plain model's `model.toml` read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig, LoadError> {
        let raw = ModelSettings::parse(text, path).map_err(load_error)?;
        Ok(ModelConfig {
            path: Some(path.to_owned()),
            raw,
        })
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
    pub fn load_settings(&self) -> ModelSettings {
        ModelSettings {
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

/// A `model.toml` the loader refused, as the error a model load reports.
pub(crate) fn load_error(error: ConfigError) -> LoadError {
    match error {
        ConfigError::Io { path, source } => LoadError::Io { path, source },
        ConfigError::Model { path, message } | ConfigError::Composite { path, message } => {
            LoadError::Config { path, message }
        }
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
    fn version_policies_parse() {
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
