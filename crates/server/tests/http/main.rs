//! HTTP tests over a real socket: a server bound to 127.0.0.1:0, driven with a real HTTP client.
//! One test binary (one link step) holding every scenario module.

#![allow(
    unreachable_pub,
    clippy::needless_pass_by_value,
    clippy::collapsible_if
)]
mod kit;

mod access;
mod bad_input;
mod batching;
mod cache;
mod composites;
mod conformance;
mod connections;
mod drift;
mod endpoints;
mod grpc;
mod hot_swap;
mod infer;
mod jwt;
mod lifecycle;
mod memory_limits;
mod metrics;
mod payload;
mod reload;
mod repository;
mod tfserving;
mod tls;
mod version_policies;
