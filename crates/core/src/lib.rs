//! ferroserve-core: the types every ferroserve crate speaks.
//!
//! A model is a pure function from named tensors to named tensors. This crate holds that idea and
//! nothing else: no async, no I/O besides reading model files, so it builds for wasm32 too.
//!
//! # Layout
//! - [`datatype`]: the KServe V2 datatypes (`FP32`, `INT64`, `BYTES`, ...).
//! - [`tensor`]: [`Tensor`], a named, shaped, typed, row-major buffer.
//! - [`byte_strings`]: [`ByteStrings`], the elements of a BYTES tensor in one buffer.
//! - [`encode`]: a buffer's binary form ([`TensorData::write_binary`]) and JSON form
//!   ([`DataJson`]).
//! - [`signature`]: [`TensorSpec`] and [`Signature`], what a model takes and returns, and the
//!   validation of a request's tensors against them.
//! - [`model`]: the [`Model`] and [`Runtime`] traits and the [`RuntimeRegistry`] that picks a
//!   runtime for a model directory.
//! - [`profile`]: reference data profiles and the drift statistics (PSI, KS, chi-square).
//! - [`error`]: the typed errors of this layer.
//!
//! # Example
//! ```
//! use ferroserve_core::{DataType, Tensor, TensorData};
//!
//! let t = Tensor::new("input", vec![2, 2], TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
//! assert_eq!(t.datatype(), DataType::Fp32);
//! assert_eq!(t.batch_size(), Some(2));
//! ```

#![forbid(unsafe_code)]

pub mod byte_strings;
pub mod datatype;
pub mod encode;
pub mod error;
pub mod model;
pub mod profile;
pub mod signature;
pub mod tensor;

pub use byte_strings::{ByteStrings, LayoutError};
pub use datatype::DataType;
pub use encode::DataJson;
pub use error::{LoadError, ModelError, ValidationError};
pub use model::{Model, Runtime, RuntimeRegistry};
pub use signature::{InputHeader, Signature, TensorOverride, TensorSpec};
pub use tensor::{Tensor, TensorData};
