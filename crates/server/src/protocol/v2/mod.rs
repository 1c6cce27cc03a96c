//! The KServe V2 / Open Inference Protocol, with the Triton extensions its clients call.
//!
//! - [`codec`]: request and response bodies, JSON and the binary tensor data extension.
//! - [`execute()`]: a decoded request through a model version.
//! - [`http`]: the HTTP/REST endpoints.

pub mod codec;
mod execute;
pub mod http;

pub use execute::{Ran, execute, run};
