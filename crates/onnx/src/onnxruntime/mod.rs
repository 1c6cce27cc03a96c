//! ONNX models on ONNX Runtime, through the `ort` crate, with the library loaded at run time.
//!
//! The default build links nothing native: [`library`] finds `libonnxruntime` (a path given by
//! the user, `ORT_DYLIB_PATH`, next to the executable, the checkout's `.tools/onnxruntime/lib`
//! where `scripts/fetch-onnxruntime.sh` puts it, or the system library directories) and loads
//! it once per process. When it is absent or fails to load, ONNX models run on tract and ort
//! is never called again (`ort` panics on any call after a failed load).
//!
//! # Layout
//! - [`library`]: finding and loading the shared library; the process-wide environment.
//! - `session`: [`OrtModel`], a model behind the [`Model`](ferroserve_core::Model) trait with one
//!   ONNX Runtime session per concurrent call.
//! - `convert`: tensors between ferroserve's and ONNX Runtime's.

mod convert;
pub mod library;
mod session;

pub use library::{LibraryChoice, LibraryInfo, Unavailable};
pub use session::OrtModel;
