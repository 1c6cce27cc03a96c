//! `POST /v2/models/{m}[/versions/{v}]/infer`: decode (JSON or binary extension), validate
//! against the version's signature, queue, encode.

use crate::composite::RequestContext;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{AppState, ModelPath};
use crate::budget::Reservation;
use crate::error::InferError;
use crate::protocol::status::{ApiError, failure_reason};
use crate::protocol::v2::codec::request::decode_raw_binary;
use crate::protocol::v2::codec::{
    EncodedResponse, Expected, HEADER_LENGTH, ProtocolError, plan_request,
};
use crate::protocol::v2::execute;
use crate::repository::LoadedVersion;

/// The handler.
pub(super) async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (body, mut held) = state.read_inference_body(body, &headers).await?;
    let version = path
        .resolve(&state.repository)
        .map_err(|e| state.unrouted(e))?;
    let result = run(&state, &version, &headers, &body, &mut held, started).await;
    if let Err(error) = &result {
        version
            .stats
            .record_failure(started.elapsed(), failure_reason(error));
    }
    result
}

async fn run(
    state: &AppState,
    version: &LoadedVersion,
    headers: &HeaderMap,
    body: &[u8],
    held: &mut Reservation,
    started: Instant,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    if let Some(encoding) = headers.get(axum::http::header::CONTENT_ENCODING)
        && encoding.as_bytes() != b"identity"
    {
        return Err(ProtocolError::Header {
            header: "Content-Encoding",
            message: format!("{encoding:?} is not supported; send the request body uncompressed"),
        }
        .into());
    }
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
    // Only composites route by parameters and headers; a model's request skips the copy.
    let context = match version.executor.composite() {
        Some(_) => RequestContext {
            parameters: request.parameters.clone(),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
        },
        None => RequestContext::default(),
    };
    let encoded = execute(&state.repository, version, request, &context, started).await?;
    Ok(into_http(encoded))
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
