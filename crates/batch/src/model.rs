//! Loading one model version the way the server does, without the server: `--model` as a
//! model directory, a version directory, or `REPO/NAME@VERSION` (a number or a label), the
//! runtime and signature overrides of its `model.toml`.
//!
//! `model.toml` is parsed as the server parses it ([`ModelToml`]); only the keys that change
//! what the model computes are used here (`runtime`, `default_model_filename`, `labels`,
//! `[[input]]`/`[[output]]`): the serving keys (batching, monitoring) mean nothing offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{Model, RuntimeRegistry, Signature};
use ferroserve_loader::config::{CONFIG_FILE, ConfigError, ModelSettings, ModelToml};

use crate::BatchError;

/// A model version ready to score.
#[derive(Clone, Debug)]
pub struct LoadedModel {
    /// The model.
    pub model: Arc<dyn Model>,
    /// Its signature, `model.toml` overrides applied.
    pub signature: Signature,
    /// The model's name (its directory's).
    pub name: String,
    /// The version loaded.
    pub version: u64,
    /// The runtime that loaded it (`"trees"`, `"onnx"`), and its engine when it has several.
    pub runtime: String,
    /// The version's directory.
    pub version_dir: PathBuf,
    /// The model file `model.toml` names (`default_model_filename`), if it names one.
    pub model_file: Option<String>,
}

/// Where a model is: its directory and the version asked for, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// The model directory (holding numbered version directories).
    pub dir: PathBuf,
    /// A version number or label; the latest version when `None`.
    pub version: Option<String>,
}

impl ModelRef {
    /// Parses `models/iris`, `models/iris/2` or `models/iris@stable`.
    pub fn parse(spec: &str) -> Result<ModelRef, BatchError> {
        let (path, version) = match spec.rsplit_once('@') {
            Some((path, v)) if !v.is_empty() && !v.contains('/') => (path, Some(v.to_owned())),
            _ => (spec, None),
        };
        let dir = Path::new(path)
            .canonicalize()
            .map_err(|source| BatchError::Io {
                path: PathBuf::from(path),
                source,
            })?;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // A numbered directory is a version directory; its parent is the model.
        if name.parse::<u64>().is_ok() {
            if version.is_some() {
                return Err(BatchError::Load(format!(
                    "{spec}: name a version either by its directory or after '@', not both"
                )));
            }
            let parent = dir.parent().map(Path::to_owned).unwrap_or_default();
            return Ok(ModelRef {
                dir: parent,
                version: Some(name.to_owned()),
            });
        }
        Ok(ModelRef { dir, version })
    }

    /// Loads the version, `instances` being how many calls will run at once.
    pub fn load(
        &self,
        registry: &RuntimeRegistry,
        instances: usize,
    ) -> Result<LoadedModel, BatchError> {
        let settings = read_settings(&self.dir)?;
        let version = self.resolve_version(&settings)?;
        let vdir = self.dir.join(version.to_string());
        let fail = |message: String| BatchError::Load(format!("{}: {message}", vdir.display()));
        let runtime = registry
            .select(&vdir, settings.runtime.as_deref())
            .map_err(|e| fail(e.to_string()))?;
        let options = LoadOptions {
            model_file: settings.default_model_filename.clone(),
            instances,
        };
        let model = runtime
            .load(&vdir, &options)
            .map_err(|e| fail(e.to_string()))?;
        let signature = model
            .signature()
            .clone()
            .with_overrides(&settings.input, &settings.output)
            .map_err(|m| fail(format!("{CONFIG_FILE}: {m}")))?;
        let runtime = match model.engine() {
            Some(engine) => format!("{} ({engine})", runtime.name()),
            None => runtime.name().to_owned(),
        };
        Ok(LoadedModel {
            model,
            signature,
            name: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version,
            runtime,
            version_dir: vdir.clone(),
            model_file: settings.default_model_filename.clone(),
        })
    }

    /// The version number asked for: a number, a label of `model.toml`, or the latest.
    fn resolve_version(&self, settings: &ModelSettings) -> Result<u64, BatchError> {
        match &self.version {
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Ok(n),
                Err(_) => settings.labels.get(v).copied().ok_or_else(|| {
                    BatchError::Load(format!(
                        "{}: no version label '{v}' in {CONFIG_FILE} (labels: {})",
                        self.dir.display(),
                        settings
                            .labels
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
            },
            None => std::fs::read_dir(&self.dir)
                .map_err(|source| BatchError::Io {
                    path: self.dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .max()
                .ok_or_else(|| {
                    BatchError::Load(format!(
                        "{}: no numbered version directory in it",
                        self.dir.display()
                    ))
                }),
        }
    }
}

/// The settings of `<dir>/model.toml`, or the defaults when there is none. A composite has no
/// model of its own to load: the error names its targets.
fn read_settings(dir: &Path) -> Result<ModelSettings, BatchError> {
    match ModelToml::read(dir) {
        Ok(None) => Ok(ModelSettings::default()),
        Ok(Some(ModelToml::Model(settings))) => Ok(settings),
        Ok(Some(ModelToml::Composite(spec))) => Err(BatchError::Load(format!(
            "{}: a {} composite routes to other models; load one of its targets ({})",
            dir.join(CONFIG_FILE).display(),
            spec.kind(),
            spec.targets().join(", ")
        ))),
        Err(ConfigError::Io { path, source }) => Err(BatchError::Io { path, source }),
        Err(error) => Err(BatchError::Load(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_label_after_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("m/3")).unwrap();
        let spec = format!("{}/m@stable", dir.path().display());
        let r = ModelRef::parse(&spec).unwrap();
        assert!(r.dir.ends_with("m"));
        assert_eq!(r.version.as_deref(), Some("stable"));

        let r = ModelRef::parse(&format!("{}/m/3", dir.path().display())).unwrap();
        assert!(r.dir.ends_with("m"));
        assert_eq!(r.version.as_deref(), Some("3"));

        let err = ModelRef::parse(&format!("{}/m/3@1", dir.path().display())).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn resolves_labels_and_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["1", "2", "10"] {
            std::fs::create_dir_all(dir.path().join("m").join(v)).unwrap();
        }
        std::fs::write(
            dir.path().join("m/model.toml"),
            "max_batch_size = 8\nlabels = { stable = 2 }\n",
        )
        .unwrap();
        let settings = read_settings(&dir.path().join("m")).unwrap();
        let at = |v: Option<&str>| ModelRef {
            dir: dir.path().join("m"),
            version: v.map(str::to_owned),
        };
        assert_eq!(at(None).resolve_version(&settings).unwrap(), 10);
        assert_eq!(at(Some("stable")).resolve_version(&settings).unwrap(), 2);
        let err = at(Some("canary")).resolve_version(&settings).unwrap_err();
        assert!(
            err.to_string().contains("no version label 'canary'"),
            "{err}"
        );
    }
}
