//! ferroserve-loader: one place that turns a model directory or a model file's bytes into a
//! loaded, checked model, for every build of ferroserve.
//!
//! - The server, batch scoring, the command and the Python extension load version directories
//!   through a [`RuntimeRegistry`](ferroserve_core::RuntimeRegistry): [`runtimes()`] is that list
//!   and its order, and [`config`] reads the `model.toml` beside the versions, once, into
//!   [`ModelToml`](config::ModelToml): a plain model's settings or a composite's spec.
//! - The builds that embed ferroserve in another program (the WebAssembly package,
//!   `crates/wasm`, and the C library, `crates/capi`) have no model repository and often no file
//!   system: they hand over the bytes of one file and, optionally, its [`Format`], and get an
//!   [`EmbeddedModel`]. It is the model the server makes of the same file: the same runtimes,
//!   the same numerics.
//!
//! # Layout
//! - [`runtimes`](mod@runtimes): the runtimes a build has, in the order they are tried.
//! - [`config`]: `model.toml`, parsed and checked as plain data.
//! - [`format`](mod@format): the file formats, [`Format`], named or detected from the bytes.
//! - [`model`]: a model loaded from bytes, [`EmbeddedModel`], with load, signature and checked
//!   predict.
//! - [`error`]: the errors of loading from bytes, [`EmbedError`].
//!
//! # Features
//! - `tract` (default): non-ML ONNX graphs (neural networks) on tract. Without it, tree
//!   ensembles and linear models only, for the small WebAssembly build.
//! - `onnxruntime`: ONNX Runtime in [`runtimes()`], its library loaded at run time: beside
//!   tract in the server, batch, the command and the Python extension; alone in the image that
//!   ships ONNX Runtime.
//!
//! # Example
//! ```no_run
//! use ferroserve_loader::EmbeddedModel;
//! let bytes = std::fs::read("model.json")?;
//! let model = EmbeddedModel::load(&bytes, None)?;
//! println!("{:?}", model.signature());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod format;
pub mod model;
pub mod runtimes;

pub use error::EmbedError;
pub use format::Format;
pub use model::EmbeddedModel;
pub use runtimes::runtimes;
