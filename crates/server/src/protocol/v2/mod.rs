//! The KServe V2 / Open Inference Protocol, with the Triton extensions its clients call.
//!
//! Its bodies (JSON and the binary tensor data extension) are [`crate::codec`], which warm-up
//! files share.
//!
//! - [`http`]: the HTTP/REST endpoints.

pub(crate) mod http;
