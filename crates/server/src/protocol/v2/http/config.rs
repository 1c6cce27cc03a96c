//! Triton's model configuration extension: `GET /v2/models/{m}[/versions/{v}]/config`, the
//! `ModelConfig` protobuf as JSON with proto field names. perf_analyzer needs it (it aborts on
//! 404) and reads `max_batch_size`, `input[]`, `output[]` and the scheduling fields.

use axum::Json;
use axum::extract::State;

use crate::protocol::state::Path;
use ferroserve_core::TensorSpec;
use serde_json::{Value, json};

use super::ModelPath;
use crate::protocol::state::AppState;
use crate::protocol::status::ApiError;
use crate::repository::{LoadedVersion, VersionPolicy};
use crate::scheduler::BatchMode;

/// `GET /v2/models/{m}[/versions/{v}]/config`.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let version = path.resolve(&state.router)?;
    Ok(Json(model_config(&version)))
}

/// A tensor's dims as Triton lists them: without the batch dimension when the model batches.
fn dims(spec: &TensorSpec, batched: bool) -> &[i64] {
    if batched && !spec.shape.is_empty() {
        &spec.shape[1..]
    } else {
        &spec.shape
    }
}

/// The Triton `ModelConfig` of a loaded version.
pub(crate) fn model_config(v: &LoadedVersion) -> Value {
    let batched = v.max_batch_size > 0;
    let version_policy = match v.config.version_policy() {
        VersionPolicy::Latest(n) => json!({ "latest": { "num_versions": n } }),
        VersionPolicy::All => json!({ "all": {} }),
        VersionPolicy::Specific(versions) => json!({ "specific": { "versions": versions } }),
    };
    let inputs: Vec<Value> = v
        .signature
        .inputs
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "data_type": s.datatype.triton_config_name(),
                "format": "FORMAT_NONE",
                "dims": dims(s, batched),
                "is_shape_tensor": false,
                "allow_ragged_batch": false,
                "optional": false,
            })
        })
        .collect();
    let outputs: Vec<Value> = v
        .signature
        .outputs
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "data_type": s.datatype.triton_config_name(),
                "dims": dims(s, batched),
                "label_filename": "",
                "is_shape_tensor": false,
            })
        })
        .collect();
    let mut config = json!({
        "name": v.model_name,
        "platform": v.platform,
        "backend": v.runtime,
        "runtime": "",
        "version_policy": version_policy,
        "max_batch_size": v.max_batch_size,
        "input": inputs,
        "output": outputs,
        "batch_input": [],
        "batch_output": [],
        "instance_group": [{
            "name": format!("{}_0", v.model_name),
            "kind": "KIND_CPU",
            "count": v.instances,
            "gpus": [],
            "secondary_devices": [],
            "profile": [],
            "passive": false,
            "host_policy": "",
        }],
        "default_model_filename": v.config.raw.default_model_filename.clone()
            .unwrap_or_else(|| "model.onnx".to_owned()),
        "parameters": {},
        "model_warmup": [],
        "model_transaction_policy": { "decoupled": false },
        "response_cache": { "enable": v.cache.is_some() },
    });
    if let Some(composite) = v.executor.composite() {
        config["parameters"] = json!({ "composite": composite.describe() });
    }
    if let Some(policy) = v.executor.policy()
        && batched
        && policy.mode != BatchMode::Off
    {
        // Triton's shape, plus ferroserve's own keys for what Triton has no field for.
        let mut batching = json!({
            "preferred_batch_size": policy.preferred_batch_sizes,
            "max_queue_delay_microseconds": policy.max_queue_delay.as_micros() as u64,
            "preserve_ordering": false,
            "priority_levels": policy.priority_levels,
            "default_priority_level": policy.default_priority,
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "default_timeout_microseconds": 0,
                "allow_timeout_override": true,
                "max_queue_size": policy.max_queue_size,
            },
        });
        if let BatchMode::Adaptive { latency_objective } = policy.mode {
            batching["ferroserve_adaptive"] = json!({
                "latency_objective_microseconds": latency_objective.as_micros() as u64,
            });
        }
        config["dynamic_batching"] = batching;
    }
    config
}
