//! [`OnnxRuntime`]: loads `model.onnx` on ONNX Runtime or tract ([`Engine`]). On tract it
//! prepares one optimised plan for every batch size.
//!
//! Converter-declared output shapes and `value_info` are ignored: real exports (LightGBM, BERT)
//! declare shapes that are wrong (LightGBM) or whose symbols conflict with the batch in tract's
//! shape analysis (BERT exports do not load with them kept), and ignoring them loses nothing:
//! tract infers every shape from the inputs. Every input's first dimension that is not a fixed size is
//! bound to the one symbol `N`, so inputs agree on the batch and the plan is optimised once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime, Signature, TensorSpec};
use tract_onnx::tract_hir::infer::{DimFact, GenericFactoid, ShapeFactoid};
use tract_onnx::tract_hir::internal::*;

use crate::convert::datatype_of;
use crate::model::OnnxModel;

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
fn load_tract(path: &Path) -> Result<Arc<dyn Model>, LoadError> {
    let model = guarded(|| prepare(parse().model_for_path(path)?)).map_err(|message| {
        LoadError::Engine {
            path: path.to_owned(),
            message,
        }
    })?;
    Ok(Arc::new(model))
}

/// Loads the ONNX file in `bytes` on tract: what [`OnnxRuntime::tract`] makes of that file, for
/// hosts without a file system (wasm, C). External tensor data files are not supported.
pub fn load_tract_bytes(bytes: &[u8]) -> Result<OnnxModel, String> {
    guarded(|| prepare(parse().model_for_read(&mut std::io::Cursor::new(bytes))?))
}

/// Runs `load`, turning its error and any panic into a message: tract can panic on some
/// malformed graphs, and a bad file must only fail its own load.
fn guarded(load: impl FnOnce() -> TractResult<OnnxModel>) -> Result<OnnxModel, String> {
    match catch_unwind(AssertUnwindSafe(load)) {
        Ok(result) => result.map_err(|e| format!("{e:#}")),
        Err(panic) => Err(format!("tract panicked: {}", panic_message(panic.as_ref()))),
    }
}

/// tract's ONNX parser, ignoring converter-declared output shapes and `value_info`.
fn parse() -> tract_onnx::Onnx {
    tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
}

/// Binds the batch symbol, optimises and plans a parsed model.
fn prepare(mut model: InferenceModel) -> TractResult<OnnxModel> {
    let batch = model.sym("N");
    let input_count = model.input_outlets()?.len();
    let mut input_names = Vec::with_capacity(input_count);
    for ix in 0..input_count {
        let outlet = model.input_outlets()?[ix];
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(ix)?.clone();
        let dt = fact
            .datum_type
            .concretize()
            .with_context(|| format!("input '{name}' has no declared element type"))?;
        if fact.shape.is_open() {
            bail!("input '{name}' has no declared rank");
        }
        let dims: TVec<DimFact> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(axis, d)| match d.concretize() {
                Some(TDim::Val(v)) => GenericFactoid::Only(TDim::Val(v)),
                _ if axis == 0 => GenericFactoid::Only(TDim::Sym(batch.clone())),
                Some(sym) => GenericFactoid::Only(sym),
                None => GenericFactoid::Only(TDim::Sym(
                    model.new_sym_with_prefix(&format!("{name}_{axis}_")),
                )),
            })
            .collect();
        model.set_input_fact(ix, InferenceFact::dt_shape(dt, ShapeFactoid::closed(dims)))?;
        input_names.push(name);
    }
    let output_names = model
        .output_outlets()?
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect::<Vec<_>>();
    let typed = model.into_optimized()?;
    let spec = |name: &str, fact: &TypedFact| -> TractResult<TensorSpec> {
        let datatype = datatype_of(fact.datum_type).with_context(|| {
            format!(
                "tensor '{name}' has type {:?}, which V2 cannot carry",
                fact.datum_type
            )
        })?;
        let shape = fact
            .shape
            .iter()
            .map(|d| d.to_i64().unwrap_or(-1))
            .collect();
        Ok(TensorSpec::new(name, datatype, shape))
    };
    let signature = Signature {
        inputs: input_names
            .iter()
            .enumerate()
            .map(|(ix, name)| spec(name, typed.input_fact(ix)?))
            .collect::<TractResult<_>>()?,
        outputs: output_names
            .iter()
            .enumerate()
            .map(|(ix, name)| spec(name, typed.output_fact(ix)?))
            .collect::<TractResult<_>>()?,
    };
    let plan = typed.into_runnable()?;
    Ok(OnnxModel::new(plan, signature))
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
