//! The errors of the batch layer: each names the file, column or tensor at fault.

use std::path::PathBuf;

/// What can go wrong reading data or running a model over it.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's extension names no format this crate reads.
    #[error("{path}: unknown data format (expected .parquet, .csv or .jsonl, optionally .gz)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The Arrow or Parquet reader refused the file.
    #[error("{path}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// The data's columns do not fit the model's inputs.
    #[error("{0}")]
    Columns(String),
    /// The model could not be loaded, or does not fit batch scoring.
    #[error("{0}")]
    Load(String),
    /// The model failed on a batch.
    #[error("the model failed: {0}")]
    Model(#[from] ferroserve_core::ModelError),
}
