//! The TensorFlow Serving REST API over the same repository and schedulers, so a TF Serving
//! client switches to ferroserve by changing the URL:
//!
//! | request | answer |
//! |---|---|
//! | `GET /v1/models/{m}[/versions/{v}\|/labels/{l}]` | `model_version_status` |
//! | `GET …/metadata` | `model_spec` and the `serving_default` `signature_def` |
//! | `POST …:predict` | `predictions` (row request) or `outputs` (columnar request) |
//! | `POST …:classify` | `result`: `[class, score]` pairs per example |
//! | `POST …:regress` | `result`: one value per example |
//!
//! Errors are `{"error": "..."}` as TF Serving's, with the same status codes as the V2 API.

mod codec;

use axum::Router;
use axum::extract::State;

use crate::protocol::state::Path;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferroserve_core::{Tensor, TensorData};
use serde_json::{Value, json};

use crate::codec::ProtocolError;
use crate::error::InferError;
use crate::inference::InferRequest;
use crate::protocol::state::{AppState, InferenceBody};
use crate::protocol::status::ApiError;
use crate::repository::{LoadedVersion, VersionState};
use crate::router::Selector;
use codec::Layout;

/// The TF Serving routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/models/{*path}", get(status_or_metadata).post(post))
}

/// What a `/v1/models/...` path names.
#[derive(Debug, PartialEq)]
struct TfPath {
    model: String,
    /// A version number or a label.
    version: Option<String>,
    /// What follows: `metadata`, or the `:verb` of a POST.
    action: Option<String>,
}

/// Splits `m[/versions/v|/labels/l][/metadata|:verb]`.
fn parse_path(path: &str) -> Option<TfPath> {
    let (path, verb) = match path.rsplit_once(':') {
        Some((p, v)) if !v.contains('/') => (p, Some(v.to_owned())),
        _ => (path, None),
    };
    let mut parts = path.split('/');
    let model = parts.next().filter(|m| !m.is_empty())?.to_owned();
    let rest: Vec<&str> = parts.collect();
    let (version, tail) = match rest.as_slice() {
        ["versions" | "labels", v, tail @ ..] => (Some((*v).to_owned()), tail),
        tail => (None, tail),
    };
    let action = match (tail, verb) {
        ([], verb) => verb,
        (["metadata"], None) => Some("metadata".to_owned()),
        _ => return None,
    };
    Some(TfPath {
        model,
        version,
        action,
    })
}

/// The model a `/v1/models/{path}` request is about (`path` percent-decoded), as the
/// handlers read it; `None` when the path is not one of the API's.
pub(super) fn model_in_path(path: &str) -> Option<String> {
    parse_path(path).map(|p| p.model)
}

fn no_route(method: &str, path: &str) -> ApiError {
    ApiError::NoRoute {
        method: method.to_owned(),
        path: format!("/v1/models/{path}"),
    }
}

async fn status_or_metadata(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let parsed = parse_path(&path).ok_or_else(|| no_route("GET", &path))?;
    match parsed.action.as_deref() {
        None => status(&state, &parsed),
        Some("metadata") => {
            let version = state
                .repository
                .resolve(&parsed.model, parsed.version.as_deref())?;
            Ok(axum::Json(metadata(&version)).into_response())
        }
        Some(_) => Err(no_route("GET", &path)),
    }
}

/// `model_version_status` of the model's versions (or the one asked for).
fn status(state: &AppState, path: &TfPath) -> Result<Response, ApiError> {
    let entry = state
        .repository
        .entry(&path.model)
        .ok_or_else(|| InferError::ModelNotFound {
            model: path.model.clone(),
        })?;
    let wanted = match &path.version {
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .or_else(|| entry.labels.get(v).copied())
                .filter(|n| entry.versions.contains_key(n))
                .ok_or_else(|| InferError::VersionNotFound {
                    model: path.model.clone(),
                    version: v.clone(),
                    available: entry.versions.keys().copied().collect(),
                })?,
        ),
        None => None,
    };
    let statuses: Vec<Value> = entry
        .versions
        .iter()
        .rev()
        .filter(|(n, _)| wanted.is_none_or(|w| w == **n))
        .map(|(n, state)| {
            let (tf_state, code, message) = match state {
                VersionState::Ready(_) => ("AVAILABLE", "OK", String::new()),
                other => ("END", "UNKNOWN", other.reason().to_owned()),
            };
            json!({"version": n.to_string(), "state": tf_state,
                   "status": {"error_code": code, "error_message": message}})
        })
        .collect();
    Ok(axum::Json(json!({ "model_version_status": statuses })).into_response())
}

/// `GetModelMetadata`: the signature as TF Serving's `serving_default` `signature_def`.
fn metadata(v: &LoadedVersion) -> Value {
    let tensors = |specs: &[ferroserve_core::TensorSpec]| -> Value {
        specs
            .iter()
            .map(|s| {
                let dims: Vec<Value> = s
                    .shape
                    .iter()
                    .map(|d| json!({"size": d.to_string(), "name": ""}))
                    .collect();
                (
                    s.name.clone(),
                    json!({"dtype": codec::tf_dtype(s.datatype), "name": s.name,
                           "tensor_shape": {"dim": dims, "unknown_rank": false}}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "model_spec": {"name": v.model_name, "signature_name": "", "version": v.version.to_string()},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": tensors(&v.signature.inputs),
            "outputs": tensors(&v.signature.outputs),
            "method_name": "tensorflow/serving/predict",
        }}}}
    })
}

async fn post(
    State(state): State<AppState>,
    Path(path): Path<String>,
    mut request: InferenceBody,
) -> Result<Response, ApiError> {
    let parsed = parse_path(&path).ok_or_else(|| no_route("POST", &path))?;
    let verb = parsed.action.clone().unwrap_or_default();
    if !matches!(verb.as_str(), "predict" | "classify" | "regress") {
        return Err(no_route("POST", &path));
    }
    let (body, held) = (&request.bytes, &mut request.held);
    let request_limits = state.settings.limits;
    state
        .router
        .infer(
            &parsed.model,
            Selector::version(parsed.version.as_deref()),
            request.started,
            |version| {
                let limits = codec::Limits {
                    request: request_limits,
                    max_batch_size: version.max_batch_size,
                };
                // Straight from the bytes into typed tensors, within `limits`: no JSON tree
                // is built.
                let (inputs, format) = match verb.as_str() {
                    "predict" => codec::decode_predict(body, &version.signature, limits, held)?,
                    _ => (
                        codec::decode_examples(body, &version.signature, limits, held)?,
                        Layout::Row,
                    ),
                };
                let request = InferRequest {
                    inputs,
                    ..InferRequest::default()
                };
                Ok((request, format))
            },
            |_, response, format| {
                let encoded = match verb.as_str() {
                    "predict" => codec::encode_predict(&response.outputs, format)?,
                    "classify" => classify(&response.outputs)?,
                    _ => regress(&response.outputs)?,
                };
                Ok(([(CONTENT_TYPE, "application/json")], encoded).into_response())
            },
        )
        .await
}

/// `:predict`'s decoder and `:classify`/`:regress`'s on `body`, for the fuzz targets:
/// whether either decoded it.
#[cfg(feature = "fuzzing")]
pub(super) fn decode_for_fuzzing(
    body: &[u8],
    signature: &ferroserve_core::Signature,
    request: crate::codec::RequestLimits,
    max_batch_size: usize,
    budget: &crate::budget::MemoryBudget,
) -> bool {
    let limits = codec::Limits {
        request,
        max_batch_size,
    };
    let Ok(mut held) = budget.reserve(body.len()) else {
        return false;
    };
    let predict = codec::decode_predict(body, signature, limits, &mut held).is_ok();
    predict || codec::decode_examples(body, signature, limits, &mut held).is_ok()
}

/// The scores of every row of a `[N, classes]` floating-point output.
fn score_rows(outputs: &[Tensor]) -> Option<(usize, Vec<f64>)> {
    outputs.iter().rev().find_map(|t| {
        let [n, classes] = t.shape[..] else {
            return None;
        };
        let values: Vec<f64> = match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            _ => return None,
        };
        (n > 0).then_some((classes, values))
    })
}

/// `:classify`: `[class, score]` for every class of every example, from the model's
/// `[N, classes]` score output (the last such output: classifiers list labels first).
fn classify(outputs: &[Tensor]) -> Result<Vec<u8>, ProtocolError> {
    let (classes, scores) = score_rows(outputs).ok_or_else(|| ProtocolError::Json {
        message: "classify needs a model with a [N, classes] floating-point score output; use \
                  :predict"
            .into(),
    })?;
    let result: Vec<Value> = scores
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(c, s)| json!([c.to_string(), s]))
                .collect()
        })
        .collect();
    Ok(serde_json::to_vec(&json!({ "result": result })).expect("JSON values serialise"))
}

/// `:regress`: one value per example, from the model's single `[N]` or `[N, 1]` output.
fn regress(outputs: &[Tensor]) -> Result<Vec<u8>, ProtocolError> {
    let values: Option<Vec<f64>> = match outputs {
        [t] if t.shape.len() == 1 || t.shape.get(1) == Some(&1) => match t.data() {
            TensorData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            TensorData::F64(v) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    };
    let values = values.ok_or_else(|| ProtocolError::Json {
        message: "regress needs a model with one floating-point output of one value per row; \
                  use :predict"
            .into(),
    })?;
    Ok(serde_json::to_vec(&json!({ "result": values })).expect("JSON values serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_model_version_and_action() {
        let p = |s: &str| parse_path(s);
        assert_eq!(
            p("m:predict"),
            Some(TfPath {
                model: "m".into(),
                version: None,
                action: Some("predict".into())
            })
        );
        assert_eq!(
            p("m/versions/3:classify").unwrap().version.as_deref(),
            Some("3")
        );
        assert_eq!(
            p("m/labels/stable/metadata").unwrap().action.as_deref(),
            Some("metadata")
        );
        assert_eq!(p("m").unwrap().action, None);
        assert_eq!(p("m/other"), None);
        assert_eq!(p(""), None);
    }
}
