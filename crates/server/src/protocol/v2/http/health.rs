//! Liveness and readiness: of the server, and of one model (version).

use axum::extract::State;

use crate::protocol::state::Path;
use axum::http::StatusCode;

use super::ModelPath;
use crate::protocol::state::AppState;
use crate::protocol::status::ApiError;

/// `GET /v2/health/live`: the process answers.
pub(super) async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: the start-up load finished and every model has a ready version
/// (with `--readiness started`, only the former).
pub(super) async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.server_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`.
pub(super) async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<StatusCode, ApiError> {
    path.resolve(&state.router)?;
    Ok(StatusCode::OK)
}
