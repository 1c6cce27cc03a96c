//! [`OnnxRuntime`]: loads `model.onnx` on ONNX Runtime or tract ([`Engine`]), each present
//! when its feature is.

use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime};

/// The default model file name.
const MODEL_FILE: &str = "model.onnx";

/// The engine that runs a runtime's ONNX models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// ONNX Runtime when its library is available and takes the model, tract otherwise.
    #[default]
    Auto,
    /// ONNX Runtime only: a model fails to load when the library is missing.
    OnnxRuntime,
    /// tract only.
    Tract,
}

/// The ONNX runtime: ONNX Runtime or tract, as its [`Engine`] says.
///
/// Registered three times: `onnx` (auto: what a repository gets when `model.toml` names no
/// runtime), `onnxruntime` and `tract` (to pin one engine per model).
#[derive(Clone, Copy, Debug, Default)]
pub struct OnnxRuntime {
    engine: Engine,
}

impl OnnxRuntime {
    /// The runtime that picks its engine per model.
    pub const fn auto() -> OnnxRuntime {
        OnnxRuntime::new(Engine::Auto)
    }

    /// The runtime that uses `engine`.
    pub const fn new(engine: Engine) -> OnnxRuntime {
        OnnxRuntime { engine }
    }

    /// The runtime that uses tract only.
    pub const fn tract() -> OnnxRuntime {
        OnnxRuntime::new(Engine::Tract)
    }
}

impl Runtime for OnnxRuntime {
    fn name(&self) -> &'static str {
        match self.engine {
            Engine::Auto => "onnx",
            Engine::OnnxRuntime => "onnxruntime",
            Engine::Tract => "tract",
        }
    }

    fn platform(&self) -> &'static str {
        "onnx_onnxv1"
    }

    fn model_files(&self) -> &'static [&'static str] {
        &[MODEL_FILE]
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let path = dir.join(options.model_file.as_deref().unwrap_or(MODEL_FILE));
        if !path.is_file() {
            return Err(LoadError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        match self.engine {
            Engine::Tract => load_tract(&path),
            Engine::OnnxRuntime => load_onnxruntime(&path, options),
            Engine::Auto => {
                if !onnxruntime_available() {
                    return load_tract(&path);
                }
                // ONNX Runtime takes more models than tract; a model it refuses may still
                // run on tract, and when neither takes it both reasons are reported.
                load_onnxruntime(&path, options).or_else(|ort_error| {
                    load_tract(&path).map_err(|tract_error| LoadError::Engine {
                        path: path.clone(),
                        message: format!(
                            "neither engine loads it. ONNX Runtime: {}. tract: {}",
                            engine_message(&ort_error),
                            engine_message(&tract_error)
                        ),
                    })
                })
            }
        }
    }
}

/// The engine's own words in `error` (without the path, which the caller adds once).
fn engine_message(error: &LoadError) -> String {
    match error {
        LoadError::Engine { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(feature = "onnxruntime")]
fn onnxruntime_available() -> bool {
    crate::onnxruntime::library::initialize(crate::onnxruntime::LibraryChoice::Search).is_ok()
}

#[cfg(not(feature = "onnxruntime"))]
fn onnxruntime_available() -> bool {
    false
}

#[cfg(feature = "onnxruntime")]
fn load_onnxruntime(path: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
    let model = crate::onnxruntime::OrtModel::load(path, options.instances.max(1))?;
    Ok(Arc::new(model))
}

#[cfg(not(feature = "onnxruntime"))]
fn load_onnxruntime(path: &Path, _: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
    Err(LoadError::Engine {
        path: path.to_owned(),
        message: "this build of ferroserve has no ONNX Runtime support".to_owned(),
    })
}

/// Loads `path` on tract.
#[cfg(feature = "tract")]
fn load_tract(path: &Path) -> Result<Arc<dyn Model>, LoadError> {
    crate::tract_plan::load(path)
}

/// Refuses `path`: this build has no tract.
#[cfg(not(feature = "tract"))]
fn load_tract(path: &Path) -> Result<Arc<dyn Model>, LoadError> {
    Err(LoadError::Engine {
        path: path.to_owned(),
        message: "this build of ferroserve has no tract: its ONNX models run on ONNX Runtime \
                  only"
            .to_owned(),
    })
}
