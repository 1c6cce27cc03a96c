//! ONNX-ML: scikit-learn (and other) models converted by skl2onnx / onnxmltools, whose graphs
//! are made of `ai.onnx.ml` operators (tree ensembles, linear models, scalers, imputers, ...)
//! and a few plain ONNX operators around them.
//!
//! # Where these operators live, and why
//! Here, as a small interpreter of its own in `crates/trees`, not as custom operators
//! registered in tract:
//! - tract has almost none of `ai.onnx.ml` and its `TreeEnsembleClassifier` is slow and
//!   mislabels models (on scikit-learn and LightGBM exports its probabilities are right and
//!   its labels wrong; onnxmltools' XGBoost exports do not load); adding operators to tract
//!   means
//!   implementing its typed-fact inference, decluttering and codegen traits against a pinned
//!   internal API, for graphs that gain nothing from its optimiser.
//! - ML graphs are a handful of nodes on `[N, F]` matrices: a node-by-node interpreter over
//!   our own [`Tensor`](ferroserve_core::Tensor) is short, has no shape inference to get
//!   wrong, builds for wasm, and lets tree-ensemble nodes compile into the same
//!   [`CompiledForest`](crate::CompiledForest) as XGBoost and LightGBM files.
//! - The runtime ([`OnnxMlRuntime`]) claims a `model.onnx` only when the file imports the
//!   `ai.onnx.ml` domain (read from the file's header without decoding its graph); every
//!   other ONNX file stays with tract.
//!
//! # Layout
//! - [`proto`]: the ONNX protobuf messages, declared with `prost` derives.
//! - `attributes`: typed attribute access.
//! - `ops`: one module per family of operators.
//! - [`graph`]: the graph built and run, [`OnnxMlModel`].
//! - [`runtime`]: the runtime, [`OnnxMlRuntime`].

mod attributes;
pub mod graph;
mod ops;
pub mod proto;
pub mod runtime;

pub use graph::OnnxMlModel;
pub use runtime::{OnnxMlRuntime, claims_bytes, load_bytes};
