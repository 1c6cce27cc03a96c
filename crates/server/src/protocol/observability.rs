//! The monitoring endpoints: `GET /metrics` (Prometheus) and `GET /dashboard` (the page), on
//! the main HTTP port and, when configured, alone on a port of their own (Triton's 8002
//! habit), so that a scraper can be let in where inference clients are not.

use axum::Router;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Exposition;
use crate::protocol::state::AppState;

/// The monitoring routes, to merge into a router over [`AppState`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/dashboard", get(dashboard))
}

/// A router with the monitoring routes alone, for the metrics port.
pub(crate) fn router(state: AppState) -> Router {
    routes().with_state(state)
}

/// `GET /metrics`: every metric, in the format the scraper accepts.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::from_accept(accept);
    let body = state.metrics.render(format);
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

/// `GET /dashboard`: the monitoring page.
async fn dashboard(State(state): State<AppState>) -> Response {
    let repository = std::sync::Arc::clone(&state.repository);
    let history = std::sync::Arc::clone(&state.history);
    // Scoring drift sorts every window: off the request threads.
    let page = tokio::task::spawn_blocking(move || crate::dashboard::render(&repository, &history))
        .await
        .unwrap_or_else(|e| format!("cannot render the dashboard: {e}"));
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page,
    )
        .into_response()
}
