//! ferroserve-onnx: the ONNX [`Runtime`](ferroserve_core::Runtime), on tract (pure Rust, so the
//! same code runs in the server, the batch scorer and the browser build).
//!
//! # Layout
//! - [`runtime`]: [`OnnxRuntime`], which loads `model.onnx`, binds the batch dimension to one
//!   symbol and optimises the graph once, so every batch size runs the same plan.
//! - [`model`]: [`OnnxModel`], the loaded, optimised plan behind the `Model` trait.
//! - `convert`: tensors between ferroserve's [`Tensor`](ferroserve_core::Tensor) and tract's.
//!
//! # Example
//! ```no_run
//! use ferroserve_core::{Runtime, model::LoadOptions};
//! let model = ferroserve_onnx::OnnxRuntime.load("models/mlp/1".as_ref(), &LoadOptions::default())?;
//! println!("{:?}", model.signature());
//! # Ok::<(), ferroserve_core::LoadError>(())
//! ```

mod convert;
pub mod model;
pub mod runtime;

pub use model::OnnxModel;
pub use runtime::OnnxRuntime;

/// Adds this crate's runtimes to `registry`.
pub fn register(registry: &mut ferroserve_core::RuntimeRegistry) {
    registry.register(std::sync::Arc::new(OnnxRuntime));
}
