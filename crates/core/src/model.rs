//! The [`Model`] and [`Runtime`] traits, and the [`RuntimeRegistry`] that picks a runtime for a
//! model version directory.
//!
//! Design: a runtime *prepares* a model once (parse, optimise) and returns a [`Model`] that is
//! `Send + Sync` and pure, so the server can call it from many worker threads, the batch scorer
//! from many cores and the browser build from JavaScript, all with the same code. Everything a
//! caller does per request (decoding, validation, batching) happens outside.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use crate::error::{LoadError, ModelError};
use crate::signature::Signature;
use crate::tensor::Tensor;

/// A loaded model version: a pure, thread-safe function from tensors to tensors.
pub trait Model: Send + Sync + Debug {
    /// What the model takes and returns.
    fn signature(&self) -> &Signature;

    /// Computes the outputs, in signature order, for inputs already checked against the
    /// signature and given in signature order.
    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError>;

    /// The engine that runs it, when its runtime has several (`"onnxruntime"` or `"tract"` for
    /// ONNX models); reported as the model's backend.
    fn engine(&self) -> Option<&'static str> {
        None
    }
}

/// Options a runtime receives when it loads a model version.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The model file's name inside the version directory, when not the runtime's default.
    pub model_file: Option<String>,
    /// How many calls the server will make at once (`model.toml`'s `instances`); a runtime
    /// that keeps state per running call may prepare that many up front. 0 = not known.
    pub instances: usize,
}

/// A kind of model file and the engine that runs it.
pub trait Runtime: Send + Sync + Debug {
    /// The name used in `model.toml`'s `runtime` key (`"onnx"`).
    fn name(&self) -> &'static str;

    /// The Triton `platform` string reported for its models (`"onnxruntime_onnx"`).
    fn platform(&self) -> &'static str;

    /// The file names this runtime loads by default (`["model.onnx"]`).
    fn model_files(&self) -> &'static [&'static str];

    /// Whether this runtime can load a directory holding `files`.
    fn recognizes(&self, files: &[String]) -> bool {
        files
            .iter()
            .any(|f| self.model_files().contains(&f.as_str()))
    }

    /// Whether this runtime takes the version directory `dir` holding `files` when no runtime
    /// is named. Defaults to [`Runtime::recognizes`]; a runtime sharing a file name with
    /// another (`model.onnx`) may look inside the file.
    fn claims(&self, dir: &Path, files: &[String]) -> bool {
        let _ = dir;
        self.recognizes(files)
    }

    /// Loads and prepares the model in `dir`.
    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError>;
}

/// The runtimes a build has, in the order they are tried on a directory.
#[derive(Debug, Default)]
pub struct RuntimeRegistry {
    runtimes: Vec<Arc<dyn Runtime>>,
}

impl RuntimeRegistry {
    /// An empty registry.
    pub fn new() -> RuntimeRegistry {
        RuntimeRegistry::default()
    }

    /// Adds a runtime; earlier ones win when several recognise a directory.
    pub fn register(&mut self, runtime: Arc<dyn Runtime>) {
        self.runtimes.push(runtime);
    }

    /// The names of the registered runtimes.
    pub fn names(&self) -> Vec<&'static str> {
        self.runtimes.iter().map(|r| r.name()).collect()
    }

    /// The runtime called `name`.
    pub fn by_name(&self, name: &str) -> Result<Arc<dyn Runtime>, LoadError> {
        self.runtimes
            .iter()
            .find(|r| r.name() == name)
            .cloned()
            .ok_or_else(|| LoadError::UnknownRuntime {
                name: name.to_owned(),
                available: self.names(),
            })
    }

    /// The runtime for `dir`: the one named, or else the first that recognises its files.
    pub fn select(&self, dir: &Path, name: Option<&str>) -> Result<Arc<dyn Runtime>, LoadError> {
        if let Some(name) = name {
            return self.by_name(name);
        }
        let files = list_files(dir)?;
        self.runtimes
            .iter()
            .find(|r| r.claims(dir, &files))
            .cloned()
            .ok_or_else(|| LoadError::NoRuntime {
                dir: dir.to_owned(),
                files,
                expected: self
                    .runtimes
                    .iter()
                    .flat_map(|r| r.model_files().iter().map(|f| f.to_string()))
                    .collect(),
            })
    }
}

/// The names of the entries of `dir`, sorted.
fn list_files(dir: &Path) -> Result<Vec<String>, LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        files.push(
            entry
                .map_err(io)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    files.sort();
    Ok(files)
}
