//! The errors of the server layer. Protocol adapters map them to status codes in one place
//! (`protocol::status`); nothing else decides a status.

use ferroserve_core::{ModelError, ValidationError};

/// Why an inference request failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// No model of that name is in the repository.
    #[error("unknown model '{model}'")]
    ModelNotFound {
        /// The name asked for.
        model: String,
    },
    /// The model exists but has no such label.
    #[error("model '{model}' has no label '{label}' (labels: {labels:?})")]
    LabelNotFound {
        /// The model.
        model: String,
        /// The label asked for.
        label: String,
        /// The labels it has.
        labels: Vec<String>,
    },
    /// The model exists but not that version or label.
    #[error("model '{model}' has no version or label '{version}' (loaded versions: {available:?})")]
    VersionNotFound {
        /// The model.
        model: String,
        /// The version or label asked for.
        version: String,
        /// The versions that are loaded.
        available: Vec<u64>,
    },
    /// The model (or version) exists but is not loaded.
    #[error("model '{model}' is not ready: {reason}")]
    ModelNotReady {
        /// The model.
        model: String,
        /// Why: its load error, or that it was unloaded.
        reason: String,
    },
    /// The request does not fit the model's signature or a server limit.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The model failed while computing.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model failed while computing a batch this request was in.
    #[error("model '{model}' failed: {source}")]
    Execution {
        /// The model.
        model: String,
        /// What went wrong (the same for every request of the batch).
        source: ModelError,
    },
    /// A request parameter has a value the model cannot take.
    #[error("parameter '{parameter}': {message}")]
    Parameter {
        /// The parameter.
        parameter: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request's timeout passed before it was answered.
    #[error("model '{model}': the request's timeout of {timeout:?} passed before it ran")]
    DeadlineExceeded {
        /// The model.
        model: String,
        /// The timeout the request gave.
        timeout: std::time::Duration,
    },
    /// The version's queue is full.
    #[error("model '{model}' is overloaded: {capacity} requests are already queued")]
    Overloaded {
        /// The model.
        model: String,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The version has no reference profile to monitor against.
    #[error(
        "model '{model}' version {version} is not monitored: it has no profile.json (write one with `ferroserve profile`)"
    )]
    NotMonitored {
        /// The model.
        model: String,
        /// The version.
        version: u64,
    },
    /// The memory held for requests in flight is at its budget.
    #[error(transparent)]
    OverBudget(#[from] crate::budget::OverBudget),
    /// A composite could not answer from its targets: an ensemble step waits on a tensor no
    /// step produced, or a target is itself a composite. The graph is broken, not busy (500).
    #[error("composite '{model}': {message}")]
    Composite {
        /// The composite.
        model: String,
        /// What is wrong with its graph.
        message: String,
    },
    /// The version is shutting down.
    #[error("model '{model}' is being unloaded")]
    Unavailable {
        /// The model.
        model: String,
    },
}

/// Why a repository operation (index, load, unload) failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Load and unload need `--model-control explicit` (label moves: `explicit` or `poll`).
    #[error("{operation} is disabled: start the server with --model-control {needs}")]
    ControlDisabled {
        /// What was refused ("explicit model load and unload").
        operation: &'static str,
        /// The modes that allow it.
        needs: &'static str,
    },
    /// The repository has no directory for that model.
    #[error("model '{model}' is not in the model repository")]
    NotInRepository {
        /// The name asked for.
        model: String,
    },
    /// The model was found but none of its versions loaded.
    #[error("failed to load model '{model}': {reason}")]
    LoadFailed {
        /// The model.
        model: String,
        /// The load errors.
        reason: String,
    },
    /// A label was pointed at a version that is not serving.
    #[error(
        "cannot point label '{label}' of model '{model}' at version {version}: it is not loaded (ready versions: {ready:?})"
    )]
    LabelTarget {
        /// The model.
        model: String,
        /// The label.
        label: String,
        /// The version asked for.
        version: u64,
        /// The versions that are ready.
        ready: Vec<u64>,
    },
    /// Reading the repository failed.
    #[error("cannot read the model repository: {0}")]
    Io(#[from] std::io::Error),
    /// Copying a remote repository (object storage, HTTP) to the local cache failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Why a remote model repository could not be read or copied to its local cache.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The repository URL cannot be used.
    #[error("model repository URL '{url}': {reason}")]
    Url {
        /// The URL as given (credentials never appear in these URLs).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store refused or failed a request (listing, or reading one object).
    #[error("model repository {url}: cannot read '{path}': {source}")]
    Store {
        /// The repository.
        url: String,
        /// The object (or prefix, for a listing).
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The index of an HTTP(S) repository is not what the publish protocol describes.
    #[error("model repository {url}: index.json: {reason}")]
    Index {
        /// The repository.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A downloaded object does not match what the listing or index said.
    #[error("model repository {url}: '{path}' {problem}")]
    Mismatch {
        /// The repository.
        url: String,
        /// The object.
        path: String,
        /// How it differs (size, hash).
        problem: String,
    },
    /// Reading or writing the local cache failed.
    #[error("model cache {}: {source}", path.display())]
    Cache {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl RepositoryError {
    /// Load or unload asked for without `--model-control explicit`.
    pub fn load_control_disabled() -> RepositoryError {
        RepositoryError::ControlDisabled {
            operation: "explicit model load and unload",
            needs: "explicit",
        }
    }

    /// A label move asked for under `--model-control none`.
    pub fn label_control_disabled() -> RepositoryError {
        RepositoryError::ControlDisabled {
            operation: "moving labels through the API",
            needs: "explicit or --model-control poll",
        }
    }
}
