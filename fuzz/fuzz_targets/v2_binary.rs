//! V2 bodies with the binary tensor data extension (two bytes of header length, then the body):
//! decoding never panics and never allocates past the request limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferroserve_server::protocol::fuzzing::v2_binary(data);
});
