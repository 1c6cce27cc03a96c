//! The protocol front-ends: each decodes its wire form into core tensors, calls the repository
//! and scheduler, and encodes the answer. Status codes are decided in [`status`] alone.

pub mod grpc;
pub mod monitoring;
pub mod status;
pub mod tfserving;
pub mod v2;
