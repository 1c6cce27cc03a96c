//! The errors of the core layer: a request that does not fit a signature ([`ValidationError`]),
//! a model that fails while computing ([`ModelError`]) and a model that fails to load
//! ([`LoadError`]). Each variant names the tensor, file or limit at fault.

use std::path::PathBuf;

use crate::datatype::DataType;

/// A request's tensors do not fit the model's signature or the server's limits.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The data has a different number of elements than the shape implies.
    #[error("tensor '{tensor}': shape {shape:?} needs {expected} elements but {got} were given")]
    DataLength {
        /// The tensor at fault.
        tensor: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// Elements the shape implies.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The shape's element count does not fit in memory addresses.
    #[error("tensor '{tensor}': shape {shape:?} is too large")]
    ShapeOverflow {
        /// The tensor at fault.
        tensor: String,
        /// The declared shape.
        shape: Vec<usize>,
    },
    /// An input the model does not have.
    #[error("unexpected input '{tensor}': the model's inputs are {expected:?}")]
    UnknownInput {
        /// The name given.
        tensor: String,
        /// The model's input names.
        expected: Vec<String>,
    },
    /// A requested output the model does not have.
    #[error("unknown output '{tensor}' requested: the model's outputs are {expected:?}")]
    UnknownOutput {
        /// The name given.
        tensor: String,
        /// The model's output names.
        expected: Vec<String>,
    },
    /// An input the model needs was not given.
    #[error("missing input '{tensor}': the model's inputs are {expected:?}")]
    MissingInput {
        /// The input not given.
        tensor: String,
        /// The model's input names.
        expected: Vec<String>,
    },
    /// The same input was given twice.
    #[error("input '{tensor}' is given more than once")]
    DuplicateInput {
        /// The input given twice.
        tensor: String,
    },
    /// The datatype differs from the model's.
    #[error("input '{tensor}': datatype {got} does not match the model's {expected}")]
    Datatype {
        /// The tensor at fault.
        tensor: String,
        /// The model's datatype.
        expected: DataType,
        /// The datatype given.
        got: DataType,
    },
    /// The shape does not fit the model's (rank or a fixed dimension).
    #[error(
        "input '{tensor}': shape {got:?} does not match the model's {expected:?} (-1 = any size)"
    )]
    Shape {
        /// The tensor at fault.
        tensor: String,
        /// The model's shape, -1 for a dynamic dimension.
        expected: Vec<i64>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// Inputs disagree on the batch size.
    #[error("input '{tensor}': batch size {got} differs from {expected} of the other inputs")]
    BatchMismatch {
        /// The tensor at fault.
        tensor: String,
        /// The batch size of the first input.
        expected: usize,
        /// The batch size of this one.
        got: usize,
    },
    /// The batch is larger than the model's `max_batch_size`.
    #[error("input '{tensor}': batch size {got} exceeds the model's max_batch_size {max}")]
    BatchTooLarge {
        /// The tensor at fault.
        tensor: String,
        /// The model's limit.
        max: usize,
        /// The batch size given.
        got: usize,
    },
    /// More elements than the server accepts in one tensor.
    #[error("tensor '{tensor}': {got} elements exceed the limit of {limit} per tensor")]
    TooManyElements {
        /// The tensor at fault.
        tensor: String,
        /// The configured limit.
        limit: usize,
        /// Elements given.
        got: usize,
    },
    /// Tensors of one batch could not be stacked or a batch's output split back per request.
    #[error("{message}")]
    Batch {
        /// What did not fit.
        message: String,
    },
}

/// A loaded model failed while computing a prediction.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The engine reported an error.
    #[error("model execution failed: {message}")]
    Execution {
        /// The engine's message, with its chain of causes.
        message: String,
    },
    /// An input's datatype has no counterpart in the engine.
    #[error("input '{tensor}': datatype {datatype} is not supported by the {runtime} runtime")]
    UnsupportedDatatype {
        /// The tensor at fault.
        tensor: String,
        /// Its datatype.
        datatype: DataType,
        /// The runtime.
        runtime: &'static str,
    },
    /// An output could not be turned into a V2 tensor.
    #[error("output '{tensor}': {reason}")]
    Output {
        /// The output at fault.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// The model panicked; the panic was caught and only this call failed.
    #[error("model panicked: {message}")]
    Panicked {
        /// The panic payload, when it was a string.
        message: String,
    },
}

/// A model version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No registered runtime recognises the files in the directory.
    #[error(
        "no runtime recognises the files in {dir} (found {files:?}; expected one of {expected:?})"
    )]
    NoRuntime {
        /// The version directory.
        dir: PathBuf,
        /// The files found there.
        files: Vec<String>,
        /// The model files the runtimes look for.
        expected: Vec<String>,
    },
    /// The configuration names a runtime that is not built in.
    #[error("unknown runtime '{name}' (available: {available:?})")]
    UnknownRuntime {
        /// The name given.
        name: String,
        /// The runtimes this build has.
        available: Vec<&'static str>,
    },
    /// The engine rejected the model file.
    #[error("{path}: {message}")]
    Engine {
        /// The model file.
        path: PathBuf,
        /// The engine's message, with its chain of causes.
        message: String,
    },
    /// The configuration is invalid.
    #[error("{path}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The text of a panic payload (`catch_unwind`'s error), for the error that replaces the
/// panic: a model that panics fails its own call or load, never the process.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
