//! Server metadata (`GET /v2`) and model metadata (`GET /v2/models/{m}[/versions/{v}]`).

use axum::Json;
use axum::extract::State;

use crate::protocol::state::Path;
use ferroserve_core::TensorSpec;
use serde_json::{Value, json};

use super::ModelPath;
use crate::protocol::state::AppState;
use crate::protocol::status::ApiError;

/// The protocol extensions this server implements completely. `statistics` is listed because
/// every key perf_analyzer reads is present (it crashes on a missing one).
pub(crate) const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "statistics",
];

/// `GET /v2`.
pub(super) async fn server() -> Json<Value> {
    Json(json!({
        "name": "ferroserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}

/// A tensor's metadata entry.
pub(super) fn tensor_json(spec: &TensorSpec) -> Value {
    json!({ "name": spec.name, "datatype": spec.datatype.name(), "shape": spec.shape })
}

/// `GET /v2/models/{m}[/versions/{v}]`.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let version = path.resolve(&state.router)?;
    let versions = state.repository.ready_version_names(&path.model);
    Ok(Json(json!({
        "name": version.model_name,
        "versions": versions,
        "platform": version.platform,
        "inputs": version.signature.inputs.iter().map(tensor_json).collect::<Vec<_>>(),
        "outputs": version.signature.outputs.iter().map(tensor_json).collect::<Vec<_>>(),
    })))
}
