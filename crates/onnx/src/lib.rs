//! ferroserve-onnx: the ONNX [`Runtime`](ferroserve_core::Runtime), on ONNX Runtime when its
//! shared library is found at run time (feature `onnxruntime`), and on tract (feature `tract`:
//! pure Rust, so the same code runs in the server, the batch scorer and the browser build).
//! Both are on by default; an image that ships ONNX Runtime leaves tract out.
//!
//! # Layout
//! - [`runtime`]: [`OnnxRuntime`], which picks the engine ([`Engine`]) and loads `model.onnx`.
//! - `tract_plan`: on tract, binds the batch dimension to one symbol and optimises the graph
//!   once, so every batch size runs the same plan.
//! - [`model`]: [`OnnxModel`], the loaded, optimised tract plan behind the `Model` trait.
//! - `strings`: ONNX string tensors from V2 BYTES, for both engines.
//! - `convert`: tensors between ferroserve's [`Tensor`](ferroserve_core::Tensor) and tract's.
//! - [`onnxruntime`]: the library loader and [`OrtModel`](onnxruntime::OrtModel).
//!
//! # Example
//! ```no_run
//! use ferroserve_core::{Runtime, model::LoadOptions};
//! let model = ferroserve_onnx::OnnxRuntime::auto().load("models/mlp/1".as_ref(), &LoadOptions::default())?;
//! println!("{:?}", model.signature());
//! # Ok::<(), ferroserve_core::LoadError>(())
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "tract")]
mod convert;
#[cfg(feature = "tract")]
pub mod model;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
pub mod runtime;
mod strings;
#[cfg(feature = "tract")]
mod tract_plan;

#[cfg(feature = "tract")]
pub use model::OnnxModel;
pub use runtime::{Engine, OnnxRuntime};
#[cfg(feature = "tract")]
pub use tract_plan::load_tract_bytes;

/// Adds this crate's runtimes to `registry`: `onnx` (engine picked per model) first, so it
/// takes `model.onnx` files when `model.toml` names no runtime, then `onnxruntime` and `tract`.
pub fn register(registry: &mut ferroserve_core::RuntimeRegistry) {
    registry.register(std::sync::Arc::new(OnnxRuntime::auto()));
    registry.register(std::sync::Arc::new(OnnxRuntime::new(Engine::OnnxRuntime)));
    registry.register(std::sync::Arc::new(OnnxRuntime::tract()));
}
