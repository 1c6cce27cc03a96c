//! Entry points for the fuzz targets (`fuzz/`, feature `fuzzing`): every network-facing
//! decoder run on arbitrary bytes against one fixed signature, as far as the request the
//! router would get. Each returns whether the bytes decoded; an error is a normal outcome, a
//! panic or an allocation past the limits is the bug the fuzzer looks for.
//!
//! The signature mixes what decoders treat differently: a batched FP32 matrix, a batched
//! BYTES vector and a batched INT64 matrix.

use std::sync::LazyLock;

use ferroserve_core::{DataType, Signature, TensorSpec};

use super::grpc;
use super::tfserving;
use crate::budget::MemoryBudget;
use crate::codec::{Expected, RequestLimits, plan_request};

/// Limits small enough that a fuzzer's input can reach them.
const LIMITS: RequestLimits = RequestLimits {
    max_tensor_elements: 1 << 16,
    max_decoded_bytes: 1 << 20,
};

/// Largest batch the fixed signature takes.
const MAX_BATCH: usize = 64;

static SIGNATURE: LazyLock<Signature> = LazyLock::new(|| Signature {
    inputs: vec![
        TensorSpec::new("x", DataType::Fp32, vec![-1, 4]),
        TensorSpec::new("s", DataType::Bytes, vec![-1]),
        TensorSpec::new("k", DataType::Int64, vec![-1, 2]),
    ],
    outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 1])],
});

fn expected() -> Expected<'static> {
    Expected {
        signature: &SIGNATURE,
        max_batch_size: MAX_BATCH,
    }
}

/// A V2 JSON body (`POST …/infer`, no binary part).
pub fn v2_json(body: &[u8]) -> bool {
    v2(body, None)
}

/// A V2 body with the binary tensor data extension: the first two bytes (little-endian) are
/// the `Inference-Header-Content-Length`, the rest is the body.
pub fn v2_binary(data: &[u8]) -> bool {
    let [a, b, body @ ..] = data else {
        return false;
    };
    v2(body, Some(usize::from(u16::from_le_bytes([*a, *b]))))
}

fn v2(body: &[u8], header_length: Option<usize>) -> bool {
    plan_request(body, header_length, LIMITS, Some(expected()))
        .and_then(|planned| planned.decode())
        .and_then(|request| request.into_request())
        .is_ok()
}

/// A TF Serving REST body, as `:predict` and as `:classify`/`:regress` read it.
pub fn tf_serving(body: &[u8]) -> bool {
    let budget = MemoryBudget::new(64 << 20);
    tfserving::decode_for_fuzzing(body, &SIGNATURE, LIMITS, MAX_BATCH, &budget)
}

/// A gRPC `ModelInferRequest` message's bytes: the wire walk, prost's decoding, then the
/// conversion into the router's request.
pub fn grpc_infer_request(message: &[u8]) -> bool {
    grpc::decode_for_fuzzing(message, LIMITS, expected())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds (`fuzz/seeds`, written by `fuzz/gen_seeds.py`) start the fuzzer on
    /// the paths that decode; the near-valid ones on the errors.
    #[test]
    fn the_seeds_reach_past_the_decoders() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        let read = |target: &str, name: &str| std::fs::read(seeds.join(target).join(name)).unwrap();
        assert!(v2_json(&read("v2_json", "full.json")));
        assert!(v2_json(&read("v2_json", "nested.json")));
        assert!(!v2_json(&read("v2_json", "wrong_shape.json")));
        assert!(v2_binary(&read("v2_binary", "binary.bin")));
        assert!(!v2_binary(&read("v2_binary", "truncated.bin")));
        for name in ["instances.json", "inputs.json", "examples.json"] {
            assert!(tf_serving(&read("tf_serving", name)), "{name}");
        }
        for name in ["typed.pb", "raw.pb"] {
            assert!(
                grpc_infer_request(&read("grpc_infer_request", name)),
                "{name}"
            );
        }
        assert!(!grpc_infer_request(b"\xff\xff\xff"));
    }
}
