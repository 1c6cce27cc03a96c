//! Warm-up: requests run through a freshly loaded version before it is marked ready, so the
//! first real requests do not pay for lazy allocations, kernel selection and cold caches.
//!
//! The requests come from `warmup.json` in the version directory (or, for every version, in
//! the model directory): one V2 inference request body (`{"inputs": [...]}`) or an array of
//! them. Without a file, one batch-1 request of zeros is made up from the signature. A
//! request from a file that fails fails the version (the old one keeps serving); a made-up
//! one that fails is only logged, since zeros are not a valid input for every model.

use std::path::{Path, PathBuf};

use ferroserve_core::{Model, Signature, Tensor, TensorData};
use serde_json::Value;

use crate::codec::{RequestLimits, decode_request};

/// The warm-up file's name, in a version directory or in the model directory.
pub(crate) const WARMUP_FILE: &str = "warmup.json";

pub(crate) use ferroserve_loader::config::WarmupMode;

/// Runs the warm-up of a version whose files are in `version_dir` (the model directory is its
/// parent), `runs` times. An error says which request failed and why.
pub(crate) fn warm_up(
    model: &dyn Model,
    signature: &Signature,
    max_batch_size: usize,
    version_dir: &Path,
    mode: WarmupMode,
    runs: usize,
) -> Result<(), String> {
    if mode == WarmupMode::Off || runs == 0 {
        return Ok(());
    }
    let file = warmup_file(version_dir);
    let (requests, from_file) = match (file, mode) {
        (Some(path), _) => (read_requests(&path, signature, max_batch_size)?, true),
        (None, WarmupMode::File) => {
            return Err(format!(
                "warmup = \"file\" but there is no {WARMUP_FILE} in {} or its model directory",
                version_dir.display()
            ));
        }
        (None, _) => (vec![zeros(signature, max_batch_size)?], false),
    };
    for _ in 0..runs {
        for (ix, inputs) in requests.iter().enumerate() {
            if let Err(error) = model.predict(inputs) {
                let message = format!("warm-up request {} failed: {error}", ix + 1);
                if from_file {
                    return Err(message);
                }
                tracing::warn!(dir = %version_dir.display(), "{message} (a made-up request of zeros; add a {WARMUP_FILE} to warm up with real inputs)");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The version's warm-up file, else the model's.
fn warmup_file(version_dir: &Path) -> Option<PathBuf> {
    let own = version_dir.join(WARMUP_FILE);
    if own.is_file() {
        return Some(own);
    }
    let shared = version_dir.parent()?.join(WARMUP_FILE);
    shared.is_file().then_some(shared)
}

/// Each request of the file, decoded and checked against the signature.
fn read_requests(
    path: &Path,
    signature: &Signature,
    max_batch_size: usize,
) -> Result<Vec<Vec<Tensor>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let bodies = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    if bodies.is_empty() {
        return Err(format!("{}: no requests", path.display()));
    }
    let limits = RequestLimits {
        max_tensor_elements: usize::MAX,
        max_decoded_bytes: usize::MAX,
    };
    bodies
        .iter()
        .enumerate()
        .map(|(ix, body)| {
            let at = || format!("{} request {}", path.display(), ix + 1);
            let bytes = serde_json::to_vec(body).map_err(|e| format!("{}: {e}", at()))?;
            let request =
                decode_request(&bytes, None, limits, None).map_err(|e| format!("{}: {e}", at()))?;
            signature
                .validate_inputs(request.inputs, max_batch_size)
                .map_err(|e| format!("{}: {e}", at()))
        })
        .collect()
}

/// One request of zeros: every dynamic dimension 1 (so a batch of one row).
fn zeros(signature: &Signature, max_batch_size: usize) -> Result<Vec<Tensor>, String> {
    let inputs = signature
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(1))
                .collect();
            let count = shape.iter().product();
            Tensor::new(
                spec.name.clone(),
                shape,
                TensorData::zeros(spec.datatype, count),
            )
            .map_err(|e| format!("made-up warm-up input '{}': {e}", spec.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    signature
        .validate_inputs(inputs, max_batch_size)
        .map_err(|e| format!("made-up warm-up request: {e}"))
}
