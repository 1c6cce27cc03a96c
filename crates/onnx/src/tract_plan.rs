//! Parsing and planning a model on tract: one optimised plan for every batch size.
//!
//! Converter-declared output shapes and `value_info` are ignored: real exports (LightGBM, BERT)
//! declare shapes that are wrong (LightGBM) or whose symbols conflict with the batch in tract's
//! shape analysis (BERT exports do not load with them kept), and ignoring them loses nothing:
//! tract infers every shape from the inputs. Every input's first dimension that is not a fixed
//! size is bound to the one symbol `N`, so inputs agree on the batch and the plan is optimised
//! once.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use ferroserve_core::{LoadError, Model, Signature, TensorSpec};
use tract_onnx::tract_hir::infer::{DimFact, GenericFactoid, ShapeFactoid};
use tract_onnx::tract_hir::internal::*;

use crate::convert::datatype_of;
use crate::model::OnnxModel;

/// Loads `path` on tract.
pub(crate) fn load(path: &Path) -> Result<Arc<dyn Model>, LoadError> {
    let model = guarded(|| prepare(parse().model_for_path(path)?)).map_err(|message| {
        LoadError::Engine {
            path: path.to_owned(),
            message,
        }
    })?;
    Ok(Arc::new(model))
}

/// Loads the ONNX file in `bytes` on tract: what [`OnnxRuntime::tract`](crate::OnnxRuntime::tract) makes of that file, for
/// hosts without a file system (wasm, C). External tensor data files are not supported.
pub fn load_tract_bytes(bytes: &[u8]) -> Result<OnnxModel, String> {
    guarded(|| prepare(parse().model_for_read(&mut std::io::Cursor::new(bytes))?))
}

/// Runs `load`, turning its error and any panic into a message: tract can panic on some
/// malformed graphs, and a bad file must only fail its own load.
fn guarded(load: impl FnOnce() -> TractResult<OnnxModel>) -> Result<OnnxModel, String> {
    match catch_unwind(AssertUnwindSafe(load)) {
        Ok(result) => result.map_err(|e| format!("{e:#}")),
        Err(panic) => Err(format!(
            "tract panicked: {}",
            ferroserve_core::error::panic_message(panic.as_ref())
        )),
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
