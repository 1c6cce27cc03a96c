//! [`EmbedError`]: why a model did not load or a prediction was refused.

use ferroserve_core::{ModelError, ValidationError};

/// The errors of the embedding builds; each says which format, tensor or limit is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A format name that is not one of [`crate::Format`]'s.
    #[error(
        "unknown model format '{0}': expected one of onnx, xgboost (JSON), xgboost-ubj, lightgbm"
    )]
    UnknownFormat(String),
    /// No format was given and the bytes match none.
    #[error(
        "cannot tell the model's format from its first bytes: pass a format (onnx, xgboost, xgboost-ubj, lightgbm)"
    )]
    UndetectedFormat,
    /// The file is not a valid model of its format.
    #[error("the {format} model does not load: {message}")]
    Load {
        /// The format it was read as.
        format: &'static str,
        /// The runtime's reason.
        message: String,
    },
    /// The model needs a runtime this build was made without.
    #[error("{0}")]
    Unsupported(String),
    /// An input cannot be read as given (no shape where one is needed, an unknown name).
    #[error("input '{tensor}': {message}")]
    Input {
        /// The input at fault.
        tensor: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The inputs do not fit the model's signature.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The model failed while computing.
    #[error(transparent)]
    Model(#[from] ModelError),
}
