//! Building one model's entry: reading its `model.toml`, loading each version the policy
//! selects (or keeping the build serving now when nothing changed), warming it up, and
//! pointing its labels at ready versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::profile::PROFILE_FILE;
use ferroserve_core::{LoadError, Model, RuntimeRegistry, Signature};
use ferroserve_loader::config::{ConfigError, ModelToml};

use super::config::{self, ModelConfig, ModelSettings};
use super::fingerprint::{Fingerprint, ModelFingerprint};
use super::warmup;
use super::{Executor, LoadedVersion, ModelEntry, Repository, VersionState};
use crate::cache::PredictionCache;
use crate::monitor::DataMonitor;
use crate::payload::PayloadLog;
use crate::scheduler::{ComputePool, Scheduler};
use crate::stats::VersionStats;

impl Repository {
    /// Reads the configuration and builds the entry of one model: each selected version is
    /// reused from `old` when its files and settings are unchanged, else loaded anew; a new
    /// build that fails leaves an older ready build of that version serving.
    pub(super) fn build_entry(
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
    pub(super) fn build_version(
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

    pub(super) fn load_version(
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
