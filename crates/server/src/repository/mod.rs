//! The model repository: `<root>/<model>/[model.toml]` and `<root>/<model>/<version>/<file>`.
//!
//! [`Repository`] owns what is loaded. Loading a model builds (and warms up) the versions whose
//! files or settings changed beside the ones serving now, keeps the unchanged ones as they are,
//! and swaps the model's entry in one step, so a reload never leaves a moment without a
//! servable version; requests already holding an `Arc<LoadedVersion>` finish on it. A version
//! that fails to load or warm up is logged with its file and cause; if an older build of it
//! was serving, that one keeps serving and the index says why the new files were refused,
//! otherwise it is `UNAVAILABLE` with the reason, and the version policy picks among the
//! versions that are ready ([`VersionPolicy::build`]): a failing newer version never retires a
//! ready older one. A label whose version fails keeps its last ready target. One model's
//! failure never stops the others. [`Repository::poll`] reloads what changed on disk since the
//! last look, and retries a failed version when its files change.

pub(crate) mod config;
pub(crate) mod fingerprint;
pub(crate) mod warmup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferroserve_core::model::LoadOptions;
use ferroserve_core::profile::PROFILE_FILE;
use ferroserve_core::{LoadError, Model, RuntimeRegistry, Signature};
use ferroserve_loader::config::{ConfigError, ModelToml};

use crate::cache::PredictionCache;
use crate::composite::ensemble::Ensemble;
use crate::composite::{Composite, CompositeSpec, Target};
use crate::error::{InferError, RepositoryError};
use crate::monitor::DataMonitor;
use crate::payload::PayloadLog;
use crate::scheduler::{ComputePool, Scheduler};
use crate::stats::VersionStats;
pub(crate) use config::{ModelConfig, ModelSettings, VersionPolicy};
use fingerprint::{Fingerprint, ModelFingerprint};

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
    /// What runs its requests: the model's queue and workers, or a composite's routing.
    pub executor: Executor,
    /// Counters for the statistics endpoint.
    pub stats: Arc<VersionStats>,
    /// The model file's directory, for logs.
    pub dir: PathBuf,
    /// The version directory's files when it was loaded.
    pub files: Fingerprint,
    /// Answers kept by their inputs, when `cache_bytes` is set.
    pub cache: Option<PredictionCache>,
    /// Live data against the reference profile, when the model has one.
    pub monitor: Option<Arc<DataMonitor>>,
    /// Sampled request/response records, when `[payload_log]` sets a rate.
    pub payload_log: Option<Arc<PayloadLog>>,
}

/// What runs a version's requests.
#[derive(Debug)]
pub enum Executor {
    /// A model file behind its queue and workers.
    Model(Scheduler),
    /// A composite routing to other models.
    Composite(Arc<Composite>),
}

impl Executor {
    /// The batching policy; `None` for a composite (its targets batch).
    pub fn policy(&self) -> Option<&crate::scheduler::BatchPolicy> {
        match self {
            Executor::Model(scheduler) => Some(scheduler.policy()),
            Executor::Composite(_) => None,
        }
    }

    /// The composite, if this is one.
    pub fn composite(&self) -> Option<&Arc<Composite>> {
        match self {
            Executor::Composite(c) => Some(c),
            Executor::Model(_) => None,
        }
    }
}

/// The state of one version of a model in the repository.
#[derive(Clone, Debug)]
pub enum VersionState {
    /// Loaded and serving.
    Ready(Arc<LoadedVersion>),
    /// Failed to load or warm up, with the reason and the files that failed (tried again when
    /// they change).
    Failed {
        /// Why.
        reason: String,
        /// The version directory's files when the load was tried.
        files: Fingerprint,
    },
    /// Unloaded through the repository API.
    Unloaded,
}

impl VersionState {
    /// The Triton index state name.
    pub fn name(&self) -> &'static str {
        match self {
            VersionState::Ready(_) => "READY",
            VersionState::Failed { .. } | VersionState::Unloaded => "UNAVAILABLE",
        }
    }

    /// Why it is not ready; empty when ready.
    pub fn reason(&self) -> &str {
        match self {
            VersionState::Ready(_) => "",
            VersionState::Failed { reason, .. } => reason,
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
    /// The versions the policy tried, ascending: those serving, and newer ones that failed.
    pub versions: BTreeMap<u64, VersionState>,
    /// Where each version label points now: where it was asked to, or, while that version is
    /// not ready, the ready version it pointed at before.
    pub labels: BTreeMap<String, u64>,
    /// Where labels were asked to point: `model.toml`, or the API since `model.toml` last
    /// changed.
    pub wanted_labels: BTreeMap<String, u64>,
    /// Why the latest files of a version that is still serving its older build were refused.
    pub warnings: BTreeMap<u64, String>,
    /// Why a changed `model.toml` was refused while the versions loaded before keep serving.
    pub warning: Option<String>,
    /// The model directory as it was when this entry was built.
    pub disk: ModelFingerprint,
    /// The settings the ready versions were loaded with.
    pub settings: Option<ModelSettings>,
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
    /// Held while a model is (re)loaded or unloaded, so the poller and the API never build
    /// the same model twice at once; never held by requests.
    loading: Mutex<()>,
    /// The repository's directory.
    root: PathBuf,
    /// The runtimes this build has.
    registry: RuntimeRegistry,
    /// Every model ever loaded, by name. A std `RwLock`: held only to read or swap an entry,
    /// never across a load or a request.
    models: RwLock<BTreeMap<String, Arc<ModelEntry>>>,
    /// Whether the start-up load has finished (readiness).
    started: AtomicBool,
    /// Failed loads per model since start (a model, a `model.toml` or a version that could
    /// not be built), kept across reloads and unloads: the metric only ever grows.
    load_failures: Mutex<BTreeMap<String, u64>>,
}

impl Repository {
    /// A repository over `root`, with nothing loaded yet.
    pub fn new(root: impl Into<PathBuf>, registry: RuntimeRegistry) -> Repository {
        Repository {
            loading: Mutex::new(()),
            root: root.into(),
            registry,
            models: RwLock::default(),
            started: AtomicBool::new(false),
            load_failures: Mutex::default(),
        }
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every model known, by name.
    pub fn entries(&self) -> Vec<Arc<ModelEntry>> {
        self.read().values().cloned().collect()
    }

    /// Failed loads per model since start.
    pub fn load_failures(&self) -> BTreeMap<String, u64> {
        self.load_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count_load_failure(&self, model: &str) {
        *self
            .load_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(model.to_owned())
            .or_default() += 1;
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
        // Composites after the models they route to, so those are ready when they load.
        let (composites, models): (Vec<String>, Vec<String>) = self
            .model_names_on_disk()?
            .into_iter()
            .partition(|name| self.is_composite(name));
        for name in models.iter().chain(&composites) {
            if let Err(error) = self.load(name) {
                tracing::error!(model = %name, %error, "model failed to load");
            }
        }
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Loads (or reloads) the model `name`: builds the selected versions that changed (and
    /// retries those that failed), keeps the rest, then swaps the entry in. An error when the
    /// model has no ready version afterwards. Blocking: call from a blocking thread.
    pub fn load(&self, name: &str) -> Result<(), RepositoryError> {
        self.load_model(name, true)
    }

    /// [`Repository::load`]; `retry` = also try again the versions that failed with the
    /// files they have now (the poller passes `false`: it retries a failure when its files
    /// change).
    fn load_model(&self, name: &str, retry: bool) -> Result<(), RepositoryError> {
        let dir = self.root.join(name);
        if name.is_empty() || name.starts_with('.') || name.contains('/') || !dir.is_dir() {
            return Err(RepositoryError::NotInRepository {
                model: name.to_owned(),
            });
        }
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.entry(name);
        let entry = self.build_entry(name, &dir, old.as_deref(), retry);
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
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
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
        unloaded.warnings.clear();
        unloaded.warning = None;
        models.insert(name.to_owned(), Arc::new(unloaded));
        tracing::info!(model = %name, "model unloaded");
        Ok(())
    }

    /// Looks at the repository once: loads new model directories, reloads those whose files
    /// changed since they were last loaded (only the versions that changed are rebuilt) and
    /// drops the models whose directory is gone. Blocking: call from a blocking thread.
    pub fn poll(&self) -> Result<(), RepositoryError> {
        let on_disk = self.model_names_on_disk()?;
        let (composites, models): (Vec<&String>, Vec<&String>) =
            on_disk.iter().partition(|name| self.is_composite(name));
        let in_order = models
            .into_iter()
            .map(|name| (name, false))
            .chain(composites.into_iter().map(|name| (name, true)));
        for (name, composite) in in_order {
            let changed = match self.entry(name) {
                None => true,
                // A composite that could not load (a target was not ready) is tried again.
                Some(entry) if composite && entry.ready_versions().is_empty() => true,
                Some(entry) => entry.disk != ModelFingerprint::read(&self.root.join(name)),
            };
            if changed {
                tracing::debug!(model = %name, "model files changed; reloading");
                if let Err(error) = self.load_model(name, false) {
                    tracing::error!(model = %name, %error, "model failed to load");
                }
            }
        }
        let gone: Vec<String> = self
            .read()
            .keys()
            .filter(|name| !on_disk.contains(name))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
            for name in gone {
                models.remove(&name);
                tracing::info!(model = %name, "model directory removed; model unloaded");
            }
        }
        Ok(())
    }

    /// Points labels of `model` at versions (`Some`) or removes them (`None`), in one step;
    /// every target must be a ready version. The labels hold until `model.toml` changes.
    /// Answers the model's labels afterwards.
    pub fn set_labels(
        &self,
        model: &str,
        changes: &BTreeMap<String, Option<u64>>,
    ) -> Result<BTreeMap<String, u64>, RepositoryError> {
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = models.get(model) else {
            return Err(RepositoryError::NotInRepository {
                model: model.to_owned(),
            });
        };
        let ready: Vec<u64> = entry.ready_versions().iter().map(|v| v.version).collect();
        let mut updated = ModelEntry::clone(entry);
        for (label, target) in changes {
            match target {
                Some(version) if !ready.contains(version) => {
                    return Err(RepositoryError::LabelTarget {
                        model: model.to_owned(),
                        label: label.clone(),
                        version: *version,
                        ready,
                    });
                }
                Some(version) => {
                    updated.labels.insert(label.clone(), *version);
                    updated.wanted_labels.insert(label.clone(), *version);
                }
                None => {
                    updated.labels.remove(label);
                    updated.wanted_labels.remove(label);
                }
            }
        }
        let labels = updated.labels.clone();
        models.insert(model.to_owned(), Arc::new(updated));
        tracing::info!(model, ?labels, "labels moved");
        Ok(labels)
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

    /// The version a composite's `target` names now.
    pub fn resolve_target(&self, target: &Target) -> Result<Arc<LoadedVersion>, InferError> {
        self.resolve(&target.model, target.version.as_deref())
    }

    /// The version of `model` that `label` points at; unlike [`Repository::resolve`], never a
    /// version number.
    pub fn resolve_label(
        &self,
        model: &str,
        label: &str,
    ) -> Result<Arc<LoadedVersion>, InferError> {
        let entry = self.entry(model).ok_or_else(|| InferError::ModelNotFound {
            model: model.to_owned(),
        })?;
        match entry.labels.get(label) {
            Some(version) => self.resolve(model, Some(&version.to_string())),
            None => Err(InferError::LabelNotFound {
                model: model.to_owned(),
                label: label.to_owned(),
                labels: entry.labels.keys().cloned().collect(),
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
                        let reason = match state {
                            VersionState::Ready(_) => entry
                                .warnings
                                .get(version)
                                .or(entry.warning.as_ref())
                                .cloned()
                                .unwrap_or_default(),
                            _ => state.reason().to_owned(),
                        };
                        rows.push(IndexEntry {
                            name: name.clone(),
                            version: Some(*version),
                            state: Some(state.name()),
                            reason,
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

    /// Reads the configuration and builds the entry of one model: each selected version is
    /// reused from `old` when its files and settings are unchanged, else loaded anew; a new
    /// build that fails leaves an older ready build of that version serving.
    fn build_entry(
        &self,
        name: &str,
        dir: &Path,
        old: Option<&ModelEntry>,
        retry: bool,
    ) -> ModelEntry {
        // Read before the config and the version list, so a change made while loading shows
        // as a difference at the next poll.
        let disk = ModelFingerprint::read(dir);
        let failed = |error: String| {
            tracing::error!(model = %name, %error, "model failed to load");
            self.count_load_failure(name);
            ModelEntry {
                name: name.to_owned(),
                error: Some(error),
                versions: BTreeMap::new(),
                labels: BTreeMap::new(),
                wanted_labels: BTreeMap::new(),
                warnings: BTreeMap::new(),
                warning: None,
                disk: disk.clone(),
                settings: None,
            }
        };
        // A model.toml that cannot be read leaves what it loaded before serving, if anything.
        let keep_serving = |error: String, what: &str| {
            let Some(old) = old.filter(|o| !o.ready_versions().is_empty()) else {
                return failed(error);
            };
            self.count_load_failure(name);
            let warning = format!("{error}; still serving the {what} loaded before");
            tracing::error!(model = %name, "{warning}");
            ModelEntry {
                warning: Some(warning),
                disk: disk.clone(),
                ..old.clone()
            }
        };
        let (path, settings) = match ModelToml::read(dir) {
            Ok(Some(ModelToml::Composite(spec))) => {
                return match self.build_composite(name, dir, &spec, &disk) {
                    Ok(version) => {
                        tracing::info!(model = %name, kind = spec.kind(), targets = ?spec.targets(), "composite model ready");
                        ModelEntry {
                            name: name.to_owned(),
                            error: None,
                            versions: BTreeMap::from([(1, VersionState::Ready(Arc::new(version)))]),
                            labels: BTreeMap::new(),
                            wanted_labels: BTreeMap::new(),
                            warnings: BTreeMap::new(),
                            warning: None,
                            disk,
                            settings: None,
                        }
                    }
                    Err(error) => failed(error),
                };
            }
            Ok(Some(ModelToml::Model(settings))) => (Some(dir.join(config::CONFIG_FILE)), settings),
            Ok(None) => (None, ModelSettings::default()),
            Err(error @ ConfigError::Composite { .. }) => {
                return keep_serving(error.to_string(), "composite");
            }
            Err(error) => return keep_serving(config::load_error(error).to_string(), "versions"),
        };
        let config = ModelConfig {
            path,
            raw: settings,
        };
        let available: Vec<u64> = disk.versions.keys().copied().collect();
        let policy = config.version_policy();
        let settings = config.load_settings();
        // Versions built with other settings, another shared warm-up file or another shared
        // profile are rebuilt.
        let reusable = old.is_some_and(|o| {
            o.settings.as_ref() == Some(&settings)
                && o.disk.shared.file(warmup::WARMUP_FILE) == disk.shared.file(warmup::WARMUP_FILE)
                && o.disk.shared.file(PROFILE_FILE) == disk.shared.file(PROFILE_FILE)
        });
        let mut versions = BTreeMap::new();
        let mut warnings = BTreeMap::new();
        let tried = policy.build(&available, |version| {
            let files = disk.versions.get(&version).cloned().unwrap_or_default();
            let prior = old.and_then(|o| o.versions.get(&version));
            let state = match prior {
                Some(VersionState::Ready(loaded)) if reusable && loaded.files == files => {
                    VersionState::Ready(Arc::clone(loaded))
                }
                // A failure is retried when its files change, or when asked to load again.
                Some(failed @ VersionState::Failed { files: tried, .. })
                    if !retry && reusable && *tried == files =>
                {
                    failed.clone()
                }
                _ => {
                    let (state, warning) =
                        self.build_version(name, version, dir, &config, files, prior);
                    if let Some(warning) = warning {
                        warnings.insert(version, warning);
                    }
                    state
                }
            };
            let ready = matches!(state, VersionState::Ready(_));
            versions.insert(version, state);
            ready
        });
        if tried.is_empty() {
            return failed(format!(
                "no version directory under {} matches the version policy {policy:?} (found {available:?})",
                dir.display(),
            ));
        }
        // Labels moved through the API hold until model.toml itself changes.
        let wanted_labels = match old {
            Some(o)
                if o.disk.shared.file(config::CONFIG_FILE)
                    == disk.shared.file(config::CONFIG_FILE) =>
            {
                o.wanted_labels.clone()
            }
            _ => config.raw.labels,
        };
        let labels = point_labels(name, &wanted_labels, old, &mut versions);
        ModelEntry {
            name: name.to_owned(),
            error: None,
            versions,
            labels,
            wanted_labels,
            warnings,
            warning: None,
            disk,
            settings: Some(settings),
        }
    }

    /// Loads `version` of `name` from its files; when that fails, the build loaded before
    /// (`prior`, if it was ready) keeps serving, with a warning saying why the new files were
    /// refused, else the version is `Failed` with the files that failed.
    fn build_version(
        &self,
        name: &str,
        version: u64,
        dir: &Path,
        config: &ModelConfig,
        files: Fingerprint,
        prior: Option<&VersionState>,
    ) -> (VersionState, Option<String>) {
        let vdir = dir.join(version.to_string());
        let error = match self.load_version(name, version, &vdir, config, files.clone()) {
            Ok(loaded) => {
                tracing::info!(model = %name, version, runtime = loaded.runtime, "model version ready");
                return (VersionState::Ready(Arc::new(loaded)), None);
            }
            Err(error) => error,
        };
        self.count_load_failure(name);
        match prior {
            Some(VersionState::Ready(serving)) => {
                let warning = format!(
                    "the new files of version {version} failed to load, so the build loaded before keeps serving: {error}"
                );
                tracing::error!(model = %name, version, "{warning}");
                (VersionState::Ready(Arc::clone(serving)), Some(warning))
            }
            _ => {
                tracing::error!(model = %name, version, %error, "model version failed to load; the versions serving now keep serving");
                let failed = VersionState::Failed {
                    reason: error,
                    files,
                };
                (failed, None)
            }
        }
    }

    /// Whether `name`'s `model.toml` names a composite `kind`.
    fn is_composite(&self, name: &str) -> bool {
        matches!(
            ModelToml::read(&self.root.join(name)),
            Ok(Some(ModelToml::Composite(_)))
        )
    }

    /// Builds a composite: its targets must be ready plain models that take the same inputs;
    /// it serves the first target's signature as its version 1.
    fn build_composite(
        &self,
        name: &str,
        dir: &Path,
        spec: &CompositeSpec,
        disk: &ModelFingerprint,
    ) -> Result<LoadedVersion, String> {
        if let Some(ensemble) = spec.ensemble() {
            let mut max_batch = usize::MAX;
            let plan = Ensemble::plan(&ensemble, |target| {
                let version = self.composite_target(name, target)?;
                max_batch = max_batch.min(version.max_batch_size);
                Ok(version.signature.clone())
            })?;
            let signature = plan.signature.clone();
            return Ok(self.composite_version(
                name,
                dir,
                spec,
                disk,
                signature,
                max_batch,
                Composite::Ensemble(plan),
            ));
        }
        let mut first: Option<Arc<LoadedVersion>> = None;
        for text in spec.targets() {
            let version = self.composite_target(name, &Target::parse(text)?)?;
            match &first {
                None => first = Some(version),
                Some(f) if !same_inputs(&f.signature, &version.signature) => {
                    return Err(format!(
                        "targets '{}' and '{text}' take different inputs ({:?} vs {:?}); every target must take the same",
                        spec.targets()[0],
                        f.signature.inputs,
                        version.signature.inputs
                    ));
                }
                Some(_) => {}
            }
        }
        let first = first.ok_or("a composite needs at least one target")?;
        let composite = Composite::build(spec, dir)?;
        Ok(self.composite_version(
            name,
            dir,
            spec,
            disk,
            first.signature.clone(),
            first.max_batch_size,
            composite,
        ))
    }

    /// The version `target` names now, for composite `name` to route to: a ready plain
    /// model other than the composite itself.
    fn composite_target(&self, name: &str, target: &Target) -> Result<Arc<LoadedVersion>, String> {
        if target.model == name {
            return Err(format!(
                "target '{target}': a composite cannot route to itself"
            ));
        }
        let version = self
            .resolve_target(target)
            .map_err(|e| format!("target '{target}' is not ready: {e}"))?;
        if version.executor.composite().is_some() {
            return Err(format!(
                "target '{target}' is itself a composite; composites route to models only"
            ));
        }
        Ok(version)
    }

    /// The version a composite serves as.
    #[allow(clippy::too_many_arguments)]
    fn composite_version(
        &self,
        name: &str,
        dir: &Path,
        spec: &CompositeSpec,
        disk: &ModelFingerprint,
        signature: Signature,
        max_batch_size: usize,
        composite: Composite,
    ) -> LoadedVersion {
        LoadedVersion {
            model_name: name.to_owned(),
            version: 1,
            runtime: spec.kind(),
            platform: spec.platform(),
            signature,
            max_batch_size,
            instances: 0,
            config: ModelConfig {
                path: Some(dir.join(config::CONFIG_FILE)),
                raw: ModelSettings::default(),
            },
            executor: Executor::Composite(Arc::new(composite)),
            stats: Arc::new(VersionStats::default()),
            dir: dir.to_owned(),
            files: disk.shared.clone(),
            cache: None,
            monitor: None,
            payload_log: None,
        }
    }

    fn load_version(
        &self,
        name: &str,
        version: u64,
        vdir: &Path,
        config: &ModelConfig,
        files: Fingerprint,
    ) -> Result<LoadedVersion, String> {
        let (model, signature, runtime) = open_model(&self.registry, vdir, config)?;
        let max_batch_size = config
            .max_batch_size(&signature)
            .map_err(|e| e.to_string())?;
        let policy = config
            .batch_policy(max_batch_size)
            .map_err(|e| e.to_string())?;
        let instances = policy.instances;
        let (warmup_mode, warmup_runs) = config.warmup();
        warmup::warm_up(
            model.as_ref(),
            &signature,
            max_batch_size,
            vdir,
            warmup_mode,
            warmup_runs,
        )?;
        let monitor = DataMonitor::load(
            name,
            version,
            vdir,
            &signature,
            config.raw.monitoring.as_ref(),
        )?
        .map(Arc::new);
        let payload_log = match &config.raw.payload_log {
            Some(c) => PayloadLog::start(name, version, c)?.map(Arc::new),
            None => None,
        };
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
            executor: Executor::Model(scheduler),
            stats,
            dir: vdir.to_owned(),
            files,
            cache: config
                .raw
                .cache_bytes
                .filter(|&b| b > 0)
                .map(PredictionCache::new),
            monitor,
            payload_log,
        })
    }
}

/// A model opened by [`open_model`]: the model, its signature (after `model.toml`'s
/// overrides) and the runtime that loaded it.
pub type OpenedModel = (Arc<dyn Model>, Signature, Arc<dyn ferroserve_core::Runtime>);

/// Loads the model of the version directory `vdir` as the repository does (the runtime and
/// options `config` names, its signature overrides), without a queue or warm-up: for tools
/// that call a model directly.
pub fn open_model(
    registry: &RuntimeRegistry,
    vdir: &Path,
    config: &ModelConfig,
) -> Result<OpenedModel, String> {
    let runtime = registry
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
    Ok((model, signature, runtime))
}

/// Whether two signatures take the same inputs (names, datatypes, shapes).
fn same_inputs(a: &Signature, b: &Signature) -> bool {
    a.inputs == b.inputs
}

/// Where each of `wanted` labels points: at the version asked for when it is ready; while it
/// is not, at the ready version the label pointed at before (so requests through the label
/// keep being answered), which the failed version's reason then says.
fn point_labels(
    model: &str,
    wanted: &BTreeMap<String, u64>,
    old: Option<&ModelEntry>,
    versions: &mut BTreeMap<u64, VersionState>,
) -> BTreeMap<String, u64> {
    let ready = |versions: &BTreeMap<u64, VersionState>, v: &u64| {
        matches!(versions.get(v), Some(VersionState::Ready(_)))
    };
    let mut labels = BTreeMap::new();
    for (label, &version) in wanted {
        let before = old.and_then(|o| o.labels.get(label)).copied();
        let target = match before {
            Some(before)
                if before != version && !ready(versions, &version) && ready(versions, &before) =>
            {
                tracing::warn!(
                    model,
                    label,
                    version,
                    before,
                    "label's version is not ready; the label keeps its ready version"
                );
                let note = format!(
                    "; label '{label}' keeps pointing at version {before} until this version is ready"
                );
                if let Some(VersionState::Failed { reason, .. }) = versions.get_mut(&version)
                    && !reason.contains(&note)
                {
                    reason.push_str(&note);
                }
                before
            }
            _ => {
                if !ready(versions, &version) {
                    tracing::warn!(
                        model,
                        label,
                        version,
                        "label points at a version that is not serving"
                    );
                }
                version
            }
        };
        labels.insert(label.clone(), target);
    }
    labels
}
