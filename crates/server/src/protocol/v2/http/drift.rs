//! `GET /v2/models/{m}[/versions/{v}|/labels/{l}]/monitoring`: the version's live data scored
//! against its reference profile (drift per input feature and output column, missing and
//! out-of-range counts, the histograms for plots).

use axum::Json;
use axum::extract::State;

use crate::protocol::state::Path;

use super::ModelPath;
use crate::error::InferError;
use crate::monitor::MonitorReport;
use crate::protocol::state::AppState;
use crate::protocol::status::ApiError;

/// The handler.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<MonitorReport>, ApiError> {
    let version = path.resolve(&state.router)?;
    let monitor = version
        .monitor
        .as_ref()
        .ok_or_else(|| InferError::NotMonitored {
            model: version.model_name.clone(),
            version: version.version,
        })?;
    Ok(Json(monitor.report()))
}
