//! ferroserve-batch: data files through the same models the server loads, as Arrow record
//! batches, with memory bounded by the batch size rather than the file's.
//!
//! # Layout
//! - [`source`]: Parquet, CSV and JSON-lines files (optionally gzipped) opened as a stream
//!   of record batches.
//! - [`screen`]: malformed CSV records and JSON lines replaced by empty ones and logged, so
//!   that they fail their row rather than the file.
//! - [`columns`]: Arrow columns as the numbers and strings the statistics and tensors need.
//! - [`model`]: a model version loaded as the server loads it (`DIR`, `DIR/VERSION`,
//!   `DIR@LABEL`).
//! - [`mapping`]: which file columns feed which model input.
//! - [`score`]: one record batch through a model, bad rows isolated.
//! - [`run`]: `ferroserve batch`: files through a model on every core, in order, with
//!   [`progress`] reporting, into a [`sink`] (a file or a partitioned directory).
//! - [`profile`]: `ferroserve profile`: a reference [`Profile`](ferroserve_core::profile::Profile)
//!   of a model's inputs and predictions over a training sample.
//! - [`error`]: the errors of this layer.

#![forbid(unsafe_code)]

pub mod columns;
pub mod error;
pub mod mapping;
pub mod model;
pub mod profile;
pub mod progress;
pub mod run;
pub mod score;
pub mod screen;
pub mod sink;
pub mod source;

pub use error::BatchError;
pub use model::{LoadedModel, ModelRef};
pub use score::{ScoreOptions, Scored, Scorer};
