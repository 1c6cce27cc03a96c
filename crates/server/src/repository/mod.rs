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
//! last look, and retries a failed version when its files change. A repository in object
//! storage is served from its local copy ([`crate::remote`]), brought in line before the
//! start-up load, each poll and each API load.

mod build;
mod composites;
pub(crate) mod config;
pub(crate) mod fingerprint;
mod version;
pub(crate) mod warmup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferroserve_core::RuntimeRegistry;

use crate::composite::Target;
use crate::composite::feedback_id::FeedbackKey;
use crate::composite::shared_state::SharedState;
use crate::error::{InferError, RepositoryError};
use crate::remote::RemoteRepository;
pub use build::{OpenedModel, open_model};
pub(crate) use config::VersionPolicy;
use fingerprint::ModelFingerprint;
pub use version::{Executor, IndexEntry, LoadedVersion, ModelEntry, VersionState};

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
    /// Where composites keep state that outlives a load (a bandit's); `None`: in memory.
    state_dir: Option<PathBuf>,
    /// Signs and checks bandits' feedback ids.
    feedback_key: Arc<FeedbackKey>,
    /// Where bandits share what they learn with other replicas; `None`: each learns alone.
    shared_state: Option<Arc<SharedState>>,
    /// The remote repository `root` is a local copy of, brought in line before each load
    /// and poll; `None`: `root` is the repository itself.
    remote: Option<Arc<RemoteRepository>>,
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
            state_dir: None,
            feedback_key: Arc::new(FeedbackKey::random()),
            shared_state: None,
            remote: None,
        }
    }

    /// A repository serving the local copy of `remote`, with nothing loaded yet.
    pub fn remote(remote: Arc<RemoteRepository>, registry: RuntimeRegistry) -> Repository {
        let root = remote.models_dir();
        Repository {
            remote: Some(remote),
            ..Repository::new(root, registry)
        }
    }

    /// Shares bandits' learning and spent feedback ids with the other replicas through
    /// `state` (instead of a file per bandit in the state directory).
    pub(crate) fn with_shared_state(mut self, state: Option<Arc<SharedState>>) -> Repository {
        self.shared_state = state;
        self
    }

    /// Signs bandits' feedback ids with `key` (shared by replicas, so each takes the others'
    /// ids).
    pub(crate) fn with_feedback_key(mut self, key: FeedbackKey) -> Repository {
        self.feedback_key = Arc::new(key);
        self
    }

    /// Keeps composites' state (a bandit's) under `dir`, outside the model repository.
    pub fn with_state_dir(mut self, dir: Option<PathBuf>) -> Repository {
        self.state_dir = dir;
        self
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
    /// A remote repository's copy is not synced first: the caller does
    /// ([`Repository::sync_remote`]), and decides what a failure means. Blocking: call from a
    /// blocking thread.
    pub fn load_all(&self) -> Result<(), RepositoryError> {
        // Composites after the models they route to, so those are ready when they load.
        let (composites, models): (Vec<String>, Vec<String>) = self
            .model_names_on_disk()?
            .into_iter()
            .partition(|name| self.is_composite(name));
        for name in models.iter().chain(&composites) {
            if let Err(error) = self.load_model(name, true) {
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
        self.sync_remote()?;
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
        self.sync_remote()?;
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
    /// version when `version` is `None`. Before the start-up load has finished, a model not
    /// seen yet is not ready (503, which load balancers retry elsewhere) rather than unknown.
    pub fn resolve(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedVersion>, InferError> {
        let entry = self.read().get(model).cloned().ok_or_else(|| {
            if self.started() {
                InferError::ModelNotFound {
                    model: model.to_owned(),
                }
            } else {
                InferError::ModelNotReady {
                    model: model.to_owned(),
                    reason: "the server is still loading its model repository".to_owned(),
                }
            }
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

    /// Brings the local copy of a remote repository in line with the store (nothing for a
    /// local one). Blocking: call from a blocking thread.
    pub fn sync_remote(&self) -> Result<(), RepositoryError> {
        if let Some(remote) = &self.remote {
            remote.sync()?;
        }
        Ok(())
    }

    /// Whether this is a remote repository whose local copy holds no model yet.
    pub fn remote_copy_empty(&self) -> bool {
        self.remote.is_some()
            && self
                .model_names_on_disk()
                .is_ok_and(|names| names.is_empty())
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
}
