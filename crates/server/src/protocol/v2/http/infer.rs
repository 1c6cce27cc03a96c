//! `POST /v2/models/{m}[/versions/{v}|/labels/{l}]/infer`: decode (JSON or the binary
//! extension) against the version's signature, run through the
//! [`Router`](crate::router::Router), encode.

use axum::extract::State;

use crate::protocol::state::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::ModelPath;
use crate::budget::Reservation;
use crate::codec::request::decode_raw_binary;
use crate::codec::{
    EncodedResponse, Expected, HEADER_LENGTH, OutputForm, ProtocolError, RequestLimits,
    encode_response, plan_request,
};
use crate::error::InferError;
use crate::inference::InferRequest;
use crate::protocol::state::{AppState, InferenceBody};
use crate::protocol::status::ApiError;
use crate::repository::LoadedVersion;

/// The handler.
pub(super) async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    mut request: InferenceBody,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let held = &mut request.held;
    state
        .router
        .infer(
            &path.model,
            path.selector(),
            request.started,
            |version| decode(version, &request.headers, &request.bytes, limits, held),
            |version, response, form: OutputForm| {
                let encoded = encode_response(
                    &version.model_name,
                    version.version,
                    response.id.as_deref(),
                    &response.outputs,
                    &form,
                    &response.parameters,
                );
                Ok(into_http(encoded))
            },
        )
        .await
}

/// The request in `body`, as its headers say it is sent, checked against `version`.
fn decode(
    version: &LoadedVersion,
    headers: &HeaderMap,
    body: &[u8],
    limits: RequestLimits,
    held: &mut Reservation,
) -> Result<(InferRequest, OutputForm), ApiError> {
    let request = match header_length(headers)? {
        Some(0) => {
            let [spec] = version.signature.inputs.as_slice() else {
                return Err(ProtocolError::Header {
                    header: "Inference-Header-Content-Length",
                    message: format!(
                        "0 (a raw binary request) needs a model with exactly one input; '{}' has {}",
                        version.model_name,
                        version.signature.inputs.len()
                    ),
                }
                .into());
            };
            // Its tensor is the body's bytes: as much again.
            held.grow(body.len()).map_err(InferError::from)?;
            decode_raw_binary(spec, version.max_batch_size > 0, body, limits)?
        }
        length => {
            let planned = plan_request(body, length, limits, Some(Expected::of(version)))?;
            held.grow(planned.decoded_bytes())
                .map_err(InferError::from)?;
            planned.decode()?
        }
    };
    let (mut request, form) = request.into_request()?;
    // Only composites route by headers; a model's request skips the copy.
    if version.executor.composite().is_some() {
        request.context.headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
    }
    Ok((request, form))
}

/// The `Inference-Header-Content-Length` header, if present.
fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ProtocolError> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| ProtocolError::Header {
            header: "Inference-Header-Content-Length",
            message: format!("{value:?} is not a non-negative integer"),
        })
}

fn into_http(encoded: EncodedResponse) -> Response {
    match encoded.header_length {
        None => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            encoded.body,
        )
            .into_response(),
        Some(length) => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (
                    axum::http::HeaderName::from_static(HEADER_LENGTH),
                    HeaderValue::from(length),
                ),
            ],
            encoded.body,
        )
            .into_response(),
    }
}
