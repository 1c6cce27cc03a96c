//! What the repository holds of a model: its versions as they load, serve or fail
//! ([`VersionState`], [`LoadedVersion`] and what runs it, [`Executor`]), the model's entry
//! with its labels ([`ModelEntry`]), and a row of the repository index ([`IndexEntry`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ferroserve_core::Signature;

use super::config::{ModelConfig, ModelSettings};
use super::fingerprint::{Fingerprint, ModelFingerprint};
use crate::cache::PredictionCache;
use crate::composite::Composite;
use crate::monitor::DataMonitor;
use crate::payload::PayloadLog;
use crate::scheduler::Scheduler;
use crate::stats::VersionStats;

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
    pub(super) fn not_ready_reason(&self) -> String {
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
