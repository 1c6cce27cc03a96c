//! ferroserve-wasm: the model files ferroserve serves, loaded and run inside a web page or
//! Node through WebAssembly, with the server's numerics (the same runtimes, compiled to wasm32).
//!
//! This crate is the wasm-bindgen surface only; loading and checking live in
//! [`ferroserve_loader`]. The npm package around it (`crates/wasm/npm`: the `Model` class with
//! `await Model.load(bytes, {format})`, TypeScript types, Node and browser start-up) wraps
//! [`WasmModel`]. Build with `scripts/build-wasm.sh`.
//!
//! # Layout
//! - [`WasmModel`]: load, signature, predict.
//! - `convert`: JavaScript values (typed arrays, arrays, `{data, shape}`) to and from
//!   [`Tensor`](ferroserve_core::Tensor)s.
//!
//! # Builds
//! - full (default feature `tract`): every model, neural networks on tract (SIMD128 kernels).
//! - trees (`--no-default-features`): XGBoost, LightGBM and ONNX-ML (scikit-learn trees and
//!   linear models) only, a fraction of the size.

mod convert;

use ferroserve_loader::{EmbeddedModel, Format};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

/// A loaded model. JavaScript sees it as `WasmModel`; the npm package's `Model` wraps it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WasmModel {
    inner: EmbeddedModel,
}

#[wasm_bindgen]
impl WasmModel {
    /// Loads the model file in `bytes`. `format` is `onnx`, `xgboost`, `xgboost-ubj` or
    /// `lightgbm` (or a file name with its extension); when absent it is detected.
    // wasm-bindgen hands an optional JavaScript string over as an owned `Option<String>`.
    #[allow(clippy::needless_pass_by_value)]
    pub fn load(bytes: &[u8], format: Option<String>) -> Result<WasmModel, JsError> {
        let format = format.as_deref().map(Format::parse).transpose()?;
        Ok(WasmModel {
            inner: EmbeddedModel::load(bytes, format)?,
        })
    }

    /// `{inputs, outputs}`: each tensor's `{name, datatype, shape}`, `-1` for a dynamic
    /// dimension.
    #[wasm_bindgen(getter)]
    pub fn signature(&self) -> Result<Object, JsError> {
        let signature = self.inner.signature();
        let result = Object::new();
        set(
            &result,
            "inputs",
            &convert::specs(&signature.inputs)?.into(),
        )?;
        set(
            &result,
            "outputs",
            &convert::specs(&signature.outputs)?.into(),
        )?;
        Ok(result)
    }

    /// The format the model was read as (`onnx`, `xgboost`, ...).
    #[wasm_bindgen(getter)]
    pub fn format(&self) -> String {
        self.inner.format().name().to_owned()
    }

    /// The engine that runs it: `trees`, `onnx-ml` or `tract`.
    #[wasm_bindgen(getter)]
    pub fn engine(&self) -> String {
        self.inner.engine().to_owned()
    }

    /// Runs the model. `inputs` maps each input's name to its data (a typed array of the
    /// input's datatype, or an array of numbers or strings) or to `{data, shape}`; without a
    /// shape, the batch dimension is sized to the data. Returns each output's name mapped to
    /// `{datatype, shape, data}`.
    pub fn predict(&self, inputs: &Object) -> Result<Object, JsError> {
        let mut tensors = Vec::new();
        for key in Object::keys(inputs).iter() {
            let name = key.as_string().unwrap_or_default();
            let value = Reflect::get(inputs, &key).map_err(|e| js_error(&e))?;
            tensors.push(convert::input(&self.inner, &name, &value)?);
        }
        let result = Object::new();
        for tensor in self.inner.predict(tensors)? {
            set(&result, &tensor.name.clone(), &convert::output(tensor)?)?;
        }
        Ok(result)
    }
}

/// The version of this build of ferroserve.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Whether this build runs neural networks (tract), or tree and linear models only.
#[wasm_bindgen(js_name = hasTract)]
pub fn has_tract() -> bool {
    cfg!(feature = "tract")
}

/// Runs the module's static constructors once, when wasm-bindgen's glue instantiates it.
///
/// tract registers its kernels through `inventory`, that is through static constructors. When a
/// module never calls `__wasm_call_ctors` itself, wasm-ld assumes "command-style" use (one call
/// per instance) and runs every constructor at the start of *every* exported function: measured
/// here, 55 % of a small model's `predict` (100+ µs instead of 12). One explicit call at start-up
/// turns that wrapping off.
#[cfg(target_arch = "wasm32")]
mod constructors {
    #[allow(unsafe_code)]
    unsafe extern "C" {
        /// Synthesised by wasm-ld: calls every static constructor of the module.
        fn __wasm_call_ctors();
    }

    /// wasm-bindgen's start function: called once, right after instantiation.
    #[wasm_bindgen::prelude::wasm_bindgen(start)]
    fn start() {
        #[allow(unsafe_code)]
        // SAFETY: runs once per instance, before any other export is called (wasm-bindgen's
        // glue calls the start function as the last step of instantiation); the constructors
        // only link static registry nodes, which is what they are for.
        unsafe {
            __wasm_call_ctors();
        }
    }
}

/// Sets `object[key] = value`.
fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), JsError> {
    Reflect::set(object, &key.into(), value).map_err(|e| js_error(&e))?;
    Ok(())
}

/// A JavaScript exception as a Rust error.
fn js_error(value: &JsValue) -> JsError {
    JsError::new(&format!("{value:?}"))
}
