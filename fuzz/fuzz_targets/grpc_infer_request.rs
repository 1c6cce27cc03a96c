//! gRPC `ModelInferRequest` messages through the wire walk, prost and the conversion into the
//! router's request: never a panic, never an allocation past the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferroserve_server::protocol::fuzzing::grpc_infer_request(data);
});
