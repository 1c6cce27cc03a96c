//! The protocol front-ends: each decodes its wire form into an
//! [`InferRequest`](crate::inference::InferRequest), calls the [`router`](crate::router) and
//! encodes the answer. Status codes are decided in [`status`] alone; every HTTP route is
//! composed in [`http_router`].
//!
//! - [`state`]: [`AppState`], what every handler shares, and request body reading.
//! - [`v2`]: the KServe V2 codec and HTTP endpoints.
//! - [`grpc`]: the V2 protocol over gRPC, and gRPC health.
//! - [`tfserving`]: the TensorFlow Serving REST API.
//! - [`offline`]: one V2 body from a file through a model directory, no server
//!   (`ferroserve predict`).
//! - [`observability`]: `GET /metrics` and `GET /dashboard`.
//! - [`status`]: errors to HTTP and gRPC statuses.
//! - [`guard`]: access control in front of every HTTP route and gRPC method.
//! - `fuzzing` (feature `fuzzing`): the network decoders on arbitrary bytes, for `fuzz/`.

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod grpc;
pub(crate) mod guard;
pub(crate) mod observability;
pub(crate) mod offline;
pub(crate) mod state;
pub mod status;
pub(crate) mod tfserving;
pub(crate) mod v2;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

pub(crate) use state::{AppState, HttpSettings};
use status::ApiError;

/// Every HTTP route over `state`: V2, TF Serving, metrics and dashboard, and the static
/// folder (`--static`) at the paths none of them takes; all behind the access guard (which
/// also writes the audit trail).
pub(crate) fn http_router(state: AppState) -> Router {
    let max_body = state.settings.max_request_bytes;
    let api = v2::http::routes()
        .merge(tfserving::routes())
        .merge(observability::routes());
    let api = match &state.settings.static_dir {
        // Files (a web page running ferroserve's WebAssembly build, say) at the paths the API
        // does not take; a missing file still answers in the V2 error shape.
        Some(_) => api.fallback(static_file),
        None => api.fallback(no_route),
    };
    let guard =
        axum::middleware::from_fn_with_state(std::sync::Arc::clone(&state.access), guard::http);
    api.layer(guard)
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            refuse_declared_oversize,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// 413 at once for a body whose `Content-Length` is past the limit, on every route, before
/// any of it is read (the body extractors would read up to the limit first); the connection
/// is closed rather than drained.
async fn refuse_declared_oversize(
    State(limit): State<usize>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let error = ApiError::from(crate::codec::ProtocolError::BodyTooLarge { limit });
        let mut response = error.into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(request).await
}

/// A file of the `--static` folder. Hidden files (any path segment starting with `.`, such as
/// `.env` or `.git/`) are not served, and a symbolic link is followed only to a file inside the
/// folder; both answer as a missing file would.
async fn static_file(State(state): State<AppState>, request: Request) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let Some(dir) = state.settings.static_dir.clone() else {
        return no_route(method, uri).await.into_response();
    };
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let hidden = segments.iter().any(|s| s.starts_with('.'));
    let confined = async {
        let root = tokio::fs::canonicalize(&dir).await.ok()?;
        match tokio::fs::canonicalize(dir.join(segments.join("/"))).await {
            Ok(target) => Some(target.starts_with(&root)),
            // Missing: ServeDir answers 404 in the V2 shape.
            Err(_) => Some(true),
        }
    };
    if hidden || confined.await != Some(true) {
        return no_route(method, uri).await.into_response();
    }
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .not_found_service(no_route.into_service());
    match files.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// Unknown paths answer in the V2 error shape too.
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
