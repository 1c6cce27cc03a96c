//! The model repository: `<root>/<model>/[model.toml]` and `<root>/<model>/<version>/<file>`.
//!
//! [`Repository`] owns what is loaded. Loading a model builds every selected version beside the
//! ones serving now and then swaps the model's entry in one step, so a reload never leaves a
//! moment without a servable version; requests already holding an `Arc<LoadedVersion>` finish on
//! it. A version that fails to load is logged with its file and cause, kept in the index as
//! `UNAVAILABLE` with that reason, and never stops the other models.

pub mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, RuntimeRegistry, Signature};

use crate::error::{InferError, RepositoryError};
use crate::scheduler::{ComputePool, Scheduler};
use crate::stats::VersionStats;
pub use config::{ModelConfig, VersionPolicy};

/// A model version that loaded and is serving.
#[derive(Debug)]
pub struct LoadedVersion {
    /// The model's name.
    pub model_name: String,
    /// The version number.
    pub version: u64,
    /// The runtime that loaded it (`"onnx"`).
    pub runtime: &'static str,
    /// The runtime's Triton platform string.
    pub platform: &'static str,
    /// The signature served: the model's own with `model.toml`'s overrides applied.
    pub signature: Signature,
    /// Largest batch a request may carry; 0 = no batch dimension.
    pub max_batch_size: usize,
    /// Concurrent executions.
    pub instances: usize,
    /// The model's configuration.
    pub config: ModelConfig,
    /// The queue and workers in front of the model.
    pub scheduler: Scheduler,
    /// Counters for the statistics endpoint.
    pub stats: Arc<VersionStats>,
    /// The model file's directory, for logs.
    pub dir: PathBuf,
}

/// The state of one version of a model in the repository.
#[derive(Clone, Debug)]
pub enum VersionState {
    /// Loaded and serving.
    Ready(Arc<LoadedVersion>),
    /// Failed to load, with the reason.
    Failed(String),
    /// Unloaded through the repository API.
    Unloaded,
}

impl VersionState {
    /// The Triton index state name.
    pub fn name(&self) -> &'static str {
        match self {
            VersionState::Ready(_) => "READY",
            VersionState::Failed(_) | VersionState::Unloaded => "UNAVAILABLE",
        }
    }

    /// Why it is not ready; empty when ready.
    pub fn reason(&self) -> &str {
        match self {
            VersionState::Ready(_) => "",
            VersionState::Failed(reason) => reason,
            VersionState::Unloaded => "unloaded",
        }
    }
}

/// One model of the repository and the state of each of its selected versions.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    /// The model's name (its directory's name).
    pub name: String,
    /// Set when the model as a whole could not be loaded (bad `model.toml`, no versions).
    pub error: Option<String>,
    /// The selected versions, ascending.
    pub versions: BTreeMap<u64, VersionState>,
    /// Version labels from `model.toml`.
    pub labels: BTreeMap<String, u64>,
}

impl ModelEntry {
    /// The ready versions, ascending.
    pub fn ready_versions(&self) -> Vec<Arc<LoadedVersion>> {
        self.versions
            .values()
            .filter_map(|v| match v {
                VersionState::Ready(loaded) => Some(Arc::clone(loaded)),
                _ => None,
            })
            .collect()
    }

    /// Why the model is not ready.
    fn not_ready_reason(&self) -> String {
        if let Some(error) = &self.error {
            return error.clone();
        }
        let reasons: Vec<String> = self
            .versions
            .iter()
            .map(|(v, s)| format!("version {v}: {}", s.reason()))
            .collect();
        if reasons.is_empty() {
            "no versions".to_owned()
        } else {
            reasons.join("; ")
        }
    }
}

/// A row of the repository index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// The version, when the row is about one.
    pub version: Option<u64>,
    /// `READY` or `UNAVAILABLE`; `None` for a model on disk that was never loaded.
    pub state: Option<&'static str>,
    /// Why it is not ready.
    pub reason: String,
}

/// The models the server knows, loaded from one directory.
#[derive(Debug)]
pub struct Repository {
    /// The repository's directory.
    root: PathBuf,
    /// The runtimes this build has.
    registry: RuntimeRegistry,
    /// Every model ever loaded, by name. A std `RwLock`: held only to read or swap an entry,
    /// never across a load or a request.
    models: RwLock<BTreeMap<String, Arc<ModelEntry>>>,
    /// Whether the start-up load has finished (readiness).
    started: AtomicBool,
}

impl Repository {
    /// A repository over `root`, with nothing loaded yet.
    pub fn new(root: impl Into<PathBuf>, registry: RuntimeRegistry) -> Repository {
        Repository {
            root: root.into(),
            registry,
            models: RwLock::default(),
            started: AtomicBool::new(false),
        }
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether [`Repository::load_all`] has finished.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Whether every model known has a ready version.
    pub fn all_ready(&self) -> bool {
        self.read().values().all(|m| !m.ready_versions().is_empty())
    }

    /// Loads every model directory under the root; failures are logged and kept in the index.
    /// Blocking: call from a blocking thread.
    pub fn load_all(&self) -> Result<(), RepositoryError> {
        for name in self.model_names_on_disk()? {
            if let Err(error) = self.load(&name) {
                tracing::error!(model = %name, %error, "model failed to load");
            }
        }
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Loads (or reloads) the model `name`: builds its selected versions, then swaps them in.
    /// Blocking: call from a blocking thread.
    pub fn load(&self, name: &str) -> Result<(), RepositoryError> {
        let dir = self.root.join(name);
        if name.is_empty() || name.starts_with('.') || name.contains('/') || !dir.is_dir() {
            return Err(RepositoryError::NotInRepository {
                model: name.to_owned(),
            });
        }
        let entry = self.build_entry(name, &dir);
        let ready = !entry.ready_versions().is_empty();
        let reason = entry.not_ready_reason();
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), Arc::new(entry));
        if ready {
            Ok(())
        } else {
            Err(RepositoryError::LoadFailed {
                model: name.to_owned(),
                reason,
            })
        }
    }

    /// Unloads every version of `name`. Requests in flight finish on the versions they hold.
    pub fn unload(&self, name: &str) -> Result<(), RepositoryError> {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = models.get(name) else {
            return Err(RepositoryError::NotInRepository {
                model: name.to_owned(),
            });
        };
        let mut unloaded = ModelEntry::clone(entry);
        for state in unloaded.versions.values_mut() {
            *state = VersionState::Unloaded;
        }
        unloaded.error = None;
        models.insert(name.to_owned(), Arc::new(unloaded));
        tracing::info!(model = %name, "model unloaded");
        Ok(())
    }

    /// The version of `model` that a request names: a number, a label, or the highest ready
    /// version when `version` is `None`.
    pub fn resolve(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedVersion>, InferError> {
        let entry = self
            .read()
            .get(model)
            .cloned()
            .ok_or_else(|| InferError::ModelNotFound {
                model: model.to_owned(),
            })?;
        let not_ready = || InferError::ModelNotReady {
            model: model.to_owned(),
            reason: entry.not_ready_reason(),
        };
        let Some(version) = version.filter(|v| !v.is_empty()) else {
            return entry.ready_versions().pop().ok_or_else(not_ready);
        };
        let number = version
            .parse::<u64>()
            .ok()
            .or_else(|| entry.labels.get(version).copied());
        match number.and_then(|n| entry.versions.get(&n).map(|s| (n, s))) {
            Some((_, VersionState::Ready(loaded))) => Ok(Arc::clone(loaded)),
            Some((n, state)) => Err(InferError::ModelNotReady {
                model: model.to_owned(),
                reason: format!("version {n}: {}", state.reason()),
            }),
            None => Err(InferError::VersionNotFound {
                model: model.to_owned(),
                version: version.to_owned(),
                available: entry.ready_versions().iter().map(|v| v.version).collect(),
            }),
        }
    }

    /// The ready versions of `model` as the protocols list them ("1", "2"), ascending.
    pub fn ready_version_names(&self, model: &str) -> Vec<String> {
        self.entry(model)
            .map(|e| {
                e.ready_versions()
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entry of `model`, if it was ever loaded.
    pub fn entry(&self, model: &str) -> Option<Arc<ModelEntry>> {
        self.read().get(model).cloned()
    }

    /// Every ready version of every model, by name then version.
    pub fn ready_versions(&self) -> Vec<Arc<LoadedVersion>> {
        self.read()
            .values()
            .flat_map(|m| m.ready_versions())
            .collect()
    }

    /// The repository index: every model on disk or loaded, one row per version.
    pub fn index(&self) -> Result<Vec<IndexEntry>, RepositoryError> {
        // List the directory before taking the lock, so loads never wait on disk reads.
        let mut names: Vec<String> = self.model_names_on_disk()?;
        let models = self.read();
        let mut rows = Vec::new();
        names.extend(models.keys().cloned());
        names.sort();
        names.dedup();
        for name in names {
            match models.get(&name) {
                None => rows.push(IndexEntry {
                    name,
                    version: None,
                    state: None,
                    reason: String::new(),
                }),
                Some(entry) if entry.versions.is_empty() => rows.push(IndexEntry {
                    name,
                    version: None,
                    state: Some("UNAVAILABLE"),
                    reason: entry.not_ready_reason(),
                }),
                Some(entry) => {
                    for (version, state) in &entry.versions {
                        rows.push(IndexEntry {
                            name: name.clone(),
                            version: Some(*version),
                            state: Some(state.name()),
                            reason: state.reason().to_owned(),
                        });
                    }
                }
            }
        }
        Ok(rows)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<ModelEntry>>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The names of the model directories under the root (hidden ones skipped), sorted.
    fn model_names_on_disk(&self) -> Result<Vec<String>, RepositoryError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path().is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads the configuration and loads each selected version of one model.
    fn build_entry(&self, name: &str, dir: &Path) -> ModelEntry {
        let failed = |error: String| {
            tracing::error!(model = %name, %error, "model failed to load");
            ModelEntry {
                name: name.to_owned(),
                error: Some(error),
                versions: BTreeMap::new(),
                labels: BTreeMap::new(),
            }
        };
        let config = match ModelConfig::read(dir) {
            Ok(config) => config,
            Err(e) => return failed(e.to_string()),
        };
        let available = match version_dirs(dir) {
            Ok(v) => v,
            Err(e) => return failed(format!("cannot list {}: {e}", dir.display())),
        };
        let selected = config.version_policy().select(&available);
        if selected.is_empty() {
            return failed(format!(
                "no version directory under {} matches the version policy {:?} (found {available:?})",
                dir.display(),
                config.version_policy()
            ));
        }
        let mut versions = BTreeMap::new();
        for version in selected {
            let vdir = dir.join(version.to_string());
            let state = match self.load_version(name, version, &vdir, &config) {
                Ok(loaded) => {
                    tracing::info!(model = %name, version, runtime = loaded.runtime, "model version ready");
                    VersionState::Ready(Arc::new(loaded))
                }
                Err(error) => {
                    tracing::error!(model = %name, version, %error, "model version failed to load");
                    VersionState::Failed(error)
                }
            };
            versions.insert(version, state);
        }
        ModelEntry {
            name: name.to_owned(),
            error: None,
            versions,
            labels: config.raw.labels,
        }
    }

    fn load_version(
        &self,
        name: &str,
        version: u64,
        vdir: &Path,
        config: &ModelConfig,
    ) -> Result<LoadedVersion, String> {
        let runtime = self
            .registry
            .select(vdir, config.raw.runtime.as_deref())
            .map_err(|e| e.to_string())?;
        let options = LoadOptions {
            model_file: config.raw.default_model_filename.clone(),
            instances: config.instances(),
        };
        let model: Arc<dyn Model> = runtime.load(vdir, &options).map_err(|e| e.to_string())?;
        let signature = config
            .resolve_signature(model.signature().clone())
            .map_err(|e: LoadError| e.to_string())?;
        let max_batch_size = config
            .max_batch_size(&signature)
            .map_err(|e| e.to_string())?;
        let policy = config
            .batch_policy(max_batch_size)
            .map_err(|e| e.to_string())?;
        let instances = policy.instances;
        let stats = Arc::new(VersionStats::default());
        let pool = ComputePool::global(None)
            .map_err(|e| format!("cannot start the compute threads: {e}"))?;
        let scheduler = Scheduler::start(&pool, name, &model, policy, &stats)
            .map_err(|e| format!("cannot start the batcher thread: {e}"))?;
        Ok(LoadedVersion {
            model_name: name.to_owned(),
            version,
            runtime: model.engine().unwrap_or(runtime.name()),
            platform: runtime.platform(),
            signature,
            max_batch_size,
            instances,
            config: config.clone(),
            scheduler,
            stats,
            dir: vdir.to_owned(),
        })
    }
}

/// The numeric subdirectories of a model directory, ascending. Other entries are ignored.
fn version_dirs(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut versions = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.path().is_dir() {
            continue;
        }
        if let Some(v) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
            && v > 0
        {
            versions.push(v);
        }
    }
    versions.sort_unstable();
    Ok(versions)
}
