//! TF Serving REST bodies (`:predict` rows and columns, `:classify`/`:regress` examples): decoding
//! never panics and never allocates past the request limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferroserve_server::protocol::fuzzing::tf_serving(data);
});
