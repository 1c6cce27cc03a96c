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
use axum::extract::DefaultBodyLimit;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{Method, Uri};
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
        Some(dir) => api.fallback_service(
            ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .not_found_service(no_route.into_service()),
        ),
        None => api.fallback(no_route),
    };
    let guard =
        axum::middleware::from_fn_with_state(std::sync::Arc::clone(&state.access), guard::http);
    api.layer(guard)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Unknown paths answer in the V2 error shape too.
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
