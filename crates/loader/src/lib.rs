//! ferroserve-loader: a model file's bytes into a ready [`EmbeddedModel`], for the builds that
//! embed ferroserve in another program rather than serve it: the WebAssembly package
//! (`crates/wasm`) and the C library (`crates/capi`).
//!
//! Those hosts have no model repository and often no file system, so instead of
//! [`Runtime::load`](ferroserve_core::Runtime::load) on a version directory they hand over the
//! bytes of one file and, optionally, its [`Format`]. The model made is the one the server
//! makes of the same file: the same runtimes, the same numerics.
//!
//! # Layout
//! - [`format`](mod@format): the file formats, [`Format`], named or detected from the bytes.
//! - [`model`]: the loaded model, [`EmbeddedModel`], with load, signature and checked predict.
//! - [`error`]: the errors, [`EmbedError`].
//!
//! # Features
//! - `tract` (default): non-ML ONNX graphs (neural networks) on tract. Without it, tree
//!   ensembles and linear models only, for the small WebAssembly build.
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

pub mod error;
pub mod format;
pub mod model;
pub mod runtimes;

pub use error::EmbedError;
pub use format::Format;
pub use model::EmbeddedModel;
pub use runtimes::runtimes;
