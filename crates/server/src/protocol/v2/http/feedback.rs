//! `POST /v2/models/{m}/feedback`: a reward for an answered request of a bandit composite,
//! `{"id": "<the response's id>", "reward": 0.0 to 1.0}`. Answers the variant that got it.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

use crate::protocol::state::Path;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ModelPath;
use crate::codec::{ProtocolError, json_document};
use crate::composite::Composite;
use crate::composite::bandit::FeedbackError;
use crate::protocol::state::{AppState, read_body};
use crate::protocol::status::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Feedback {
    id: String,
    reward: f64,
}

/// The handler.
pub(super) async fn feedback(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.settings.max_request_bytes)?;
    let feedback: Feedback = json_document(&body).map_err(|e| ProtocolError::Json {
        message: format!("{e} (expected {{\"id\": \"<request id>\", \"reward\": 0 to 1}})"),
    })?;
    let version = path.resolve(&state.router)?;
    let Some(Composite::Bandit(bandit)) = version.executor.composite().map(AsRef::as_ref) else {
        return Err(FeedbackError::NotABandit { model: path.model }.into());
    };
    let bandit = std::sync::Arc::clone(bandit);
    let (model, id) = (path.model, feedback.id);
    // On the blocking pool: with a shared store, spending the id is a round trip to it.
    let (variant, id) = tokio::task::spawn_blocking(move || {
        bandit
            .reward(&model, &id, feedback.reward)
            .map(|variant| (variant, id))
    })
    .await
    .map_err(|e| crate::error::RepositoryError::Io(std::io::Error::other(e)))??;
    Ok(Json(json!({ "id": id, "variant": variant })))
}
