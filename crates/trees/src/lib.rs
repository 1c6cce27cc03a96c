//! ferroserve-trees: tree ensembles evaluated natively, behind the same
//! [`Runtime`](ferroserve_core::Runtime)/[`Model`](ferroserve_core::Model) traits as ONNX.
//!
//! # Layout
//! - [`forest`]: [`Forest`], the format-neutral description of a model's trees (split kinds,
//!   categories, linear leaves) and the reference walk that defines them.
//! - [`compiled`]: [`CompiledForest`], the batch evaluator: trees compiled into one
//!   cache-friendly layout walked branch-free by blocks of rows (no allocation per row).
//! - [`objective`]: how summed leaf values (margins) become predictions.
//! - [`xgboost`]: XGBoost `model.json` / `model.ubj` into a [`Forest`].
//! - [`lightgbm`]: LightGBM `model.txt` into a [`Forest`].
//! - [`onnxml`]: scikit-learn models converted to ONNX (`ai.onnx.ml` graphs), interpreted.
//! - [`model`]: [`TreeModel`], a forest and an objective behind the `Model` trait.
//! - [`runtime`]: [`TreesRuntime`], which recognises the model files.
//!
//! Written by hand rather than on a crate: the evaluator is the hot loop of the tabular models
//! and has to share one layout across formats (XGBoost, LightGBM, ONNX-ML), run in wasm, and
//! stay free of threads of its own (the server's scheduler owns them).

pub mod compiled;
pub mod forest;
pub mod lightgbm;
pub mod model;
pub mod objective;
pub mod onnxml;
pub mod runtime;
pub mod xgboost;

pub use compiled::CompiledForest;
pub use forest::Forest;
pub use model::TreeModel;
pub use runtime::{TreeFormat, TreesRuntime, load_bytes};

/// Adds this crate's runtimes to `registry`.
pub fn register(registry: &mut ferroserve_core::RuntimeRegistry) {
    registry.register(std::sync::Arc::new(TreesRuntime));
    registry.register(std::sync::Arc::new(onnxml::OnnxMlRuntime));
}
