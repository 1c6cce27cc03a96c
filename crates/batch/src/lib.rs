//! ferroserve-batch: data files through the same models the server loads, as Arrow record
//! batches, with memory bounded by the batch size rather than the file's.
//!
//! # Layout
//! - [`source`]: Parquet, CSV and JSON-lines files (optionally gzipped) opened as a stream
//!   of record batches.
//! - [`columns`]: Arrow columns as the numbers and strings the statistics and tensors need.
//! - [`profile`]: `ferroserve profile`: a reference [`Profile`](ferroserve_core::profile::Profile)
//!   of a model's inputs and predictions over a training sample.
//! - [`error`]: the errors of this layer.

pub mod columns;
pub mod error;
pub mod profile;
pub mod source;

pub use error::BatchError;
