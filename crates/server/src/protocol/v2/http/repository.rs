//! Triton's model repository extension: `POST /v2/repository/index` and
//! `POST /v2/repository/models/{m}/{load,unload}` (the latter two only with
//! `--model-control explicit`), and ferroserve's label moves:
//! `GET|POST /v2/repository/models/{m}/labels` (moves need `explicit` or `poll`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;

use crate::protocol::state::Path;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codec::{ProtocolError, json_document};
use crate::error::RepositoryError;
use crate::protocol::state::{AppState, read_body};
use crate::protocol::status::ApiError;
use crate::repository::Repository;

#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

/// `POST /v2/repository/index`, body `{"ready": bool}` optional: a bare array of
/// `{name, version, state, reason}`.
pub(super) async fn index(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.settings.max_request_bytes)?;
    let request: IndexRequest = parse_optional(&body)?;
    let repository = Arc::clone(&state.repository);
    let rows = tokio::task::spawn_blocking(move || repository.index())
        .await
        .map_err(|e| RepositoryError::Io(std::io::Error::other(e)))??;
    let rows: Vec<Value> = rows
        .into_iter()
        .filter(|r| !request.ready || r.state == Some("READY"))
        .map(|r| {
            let mut row = json!({ "name": r.name });
            if let Some(v) = r.version {
                row["version"] = json!(v.to_string());
            }
            if let Some(s) = r.state {
                row["state"] = json!(s);
                row["reason"] = json!(r.reason);
            }
            row
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// A load or unload request's (optional) JSON body, once explicit model control allows it.
fn control_request(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = read_body(body, state.settings.max_request_bytes)?;
    if !state.settings.model_control_explicit {
        return Err(RepositoryError::load_control_disabled().into());
    }
    Ok(parse_optional(&body)?)
}

/// `POST /v2/repository/models/{m}/load`: loads or reloads the model from the repository.
pub(super) async fn load(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = control_request(&state, body)?;
    if let Some(parameters) = request.get("parameters").and_then(Value::as_object)
        && let Some(key) = parameters
            .keys()
            .find(|k| *k == "config" || k.starts_with("file:"))
    {
        return Err(ProtocolError::UnsupportedParameter {
                parameter: key.clone(),
                message: "loading a model from a request body is not supported; place its files in the model repository".into(),
            }
            .into());
    }
    run_blocking(&state.repository, move |r| r.load(&model)).await?;
    Ok(Json(json!({})))
}

/// `POST /v2/repository/models/{m}/unload`.
pub(super) async fn unload(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    control_request(&state, body)?;
    run_blocking(&state.repository, move |r| r.unload(&model)).await?;
    Ok(Json(json!({})))
}

/// `GET /v2/repository/models/{m}/labels`: `{"labels": {"stable": 1, ...}}`.
pub(super) async fn labels(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .repository
        .entry(&model)
        .ok_or_else(|| RepositoryError::NotInRepository {
            model: model.clone(),
        })?;
    Ok(Json(json!({ "labels": entry.labels })))
}

/// The body of a label move: each label to the version it should name, `null` to remove it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveLabels {
    labels: BTreeMap<String, Option<u64>>,
}

/// `POST /v2/repository/models/{m}/labels`, body `{"labels": {"canary": 4, "old": null}}`:
/// moves every label given in one step (each target must be a ready version) and answers the
/// model's labels afterwards.
pub(super) async fn move_labels(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body, state.settings.max_request_bytes)?;
    if !state.settings.label_control {
        return Err(RepositoryError::label_control_disabled().into());
    }
    let request: MoveLabels = json_document(&body).map_err(|e| ProtocolError::Json {
        message: format!("{e} (expected {{\"labels\": {{\"<label>\": <version> or null}}}})"),
    })?;
    if let Some(bad) = request
        .labels
        .keys()
        .find(|l| l.is_empty() || l.parse::<u64>().is_ok())
    {
        return Err(ProtocolError::Json {
            message: format!(
                "label '{bad}': a label must be a non-empty name that is not a number"
            ),
        }
        .into());
    }
    let repository = Arc::clone(&state.repository);
    let labels =
        tokio::task::spawn_blocking(move || repository.set_labels(&model, &request.labels))
            .await
            .map_err(|e| RepositoryError::Io(std::io::Error::other(e)))??;
    Ok(Json(json!({ "labels": labels })))
}

/// Parses a JSON body that may be empty.
fn parse_optional<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ProtocolError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_document(body).map_err(|message| ProtocolError::Json { message })
}

/// Runs a repository operation (file reads, model preparation) off the async threads.
async fn run_blocking(
    repository: &Arc<Repository>,
    op: impl FnOnce(&Repository) -> Result<(), RepositoryError> + Send + 'static,
) -> Result<(), RepositoryError> {
    let repository = Arc::clone(repository);
    tokio::task::spawn_blocking(move || op(&repository))
        .await
        .map_err(|e| RepositoryError::Io(std::io::Error::other(e)))?
}
