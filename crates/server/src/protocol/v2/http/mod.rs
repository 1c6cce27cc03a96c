//! The V2 HTTP/REST endpoints, one file per group, and [`router`] that wires them.
//!
//! | path | file |
//! |---|---|
//! | `GET /v2/health/{live,ready}`, `GET /v2/models/{m}[/versions/{v}]/ready` | `health` |
//! | `GET /v2`, `GET /v2/models/{m}[/versions/{v}]` | `metadata` |
//! | `GET /v2/models/{m}[/versions/{v}]/config` (Triton) | `config` |
//! | `GET /v2/models[/{m}[/versions/{v}]]/stats` (Triton) | `stats` |
//! | `POST /v2/models/{m}[/versions/{v}]/infer` | `infer` |
//! | `POST /v2/models/{m}/feedback` (ferroserve, bandits) | `feedback` |
//! | `POST /v2/repository/index`, `POST /v2/repository/models/{m}/{load,unload}` (Triton) | `repository` |
//! | `GET,POST /v2/repository/models/{m}/labels` (ferroserve) | `repository` |
//! | `GET /v2/models/{m}[/versions/{v}]/monitoring` (ferroserve, data drift) | `monitoring` |
//! | `GET /metrics` (Prometheus), `GET /dashboard` | `crate::protocol::monitoring` |
//!
//! Every `/versions/{v}` path also exists as `/labels/{label}` (`/v2/models/m/labels/stable/infer`).

mod config;
mod feedback;
mod health;
mod infer;
mod metadata;
mod monitoring;
mod repository;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use tower_http::services::ServeDir;

use crate::budget::{MemoryBudget, Reservation};
use crate::error::InferError;
use crate::metrics::Metrics;
use crate::protocol::status::ApiError;
use crate::protocol::v2::codec::{ProtocolError, RequestLimits};
use crate::repository::{LoadedVersion, Repository};

/// Settings of the HTTP front-end.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Limits checked while decoding tensors.
    pub limits: RequestLimits,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Whether `POST /v2/repository/models/{m}/{load,unload}` are enabled.
    pub model_control_explicit: bool,
    /// Whether labels may be moved through `POST /v2/repository/models/{m}/labels`.
    pub label_control: bool,
    /// Whether `/v2/health/ready` also needs every model to be ready.
    pub strict_readiness: bool,
    /// A folder served as static files at every path no API route takes (`--static`).
    pub static_dir: Option<PathBuf>,
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The loaded models.
    pub repository: Arc<Repository>,
    /// Front-end settings.
    pub settings: Arc<HttpSettings>,
    /// What `/metrics` renders; front-ends count the requests no model version saw here.
    pub metrics: Arc<Metrics>,
    /// Traffic over time, for `/dashboard`.
    pub history: Arc<crate::dashboard::history::History>,
    /// Memory held for requests in flight, shared by every front-end.
    pub budget: MemoryBudget,
}

impl AppState {
    /// Counts an inference request that failed before reaching a model version (its body
    /// too large, no such model) in the metrics, and passes its error on.
    pub(crate) fn unrouted(&self, error: impl Into<ApiError>) -> ApiError {
        let error = error.into();
        self.metrics
            .count_unrouted(crate::protocol::status::failure_reason(&error));
        error
    }

    /// An inference request's body, read within `--max-request-bytes` and reserved in the
    /// memory budget ([`read_body_reserved`]); a failure is counted as unrouted.
    pub(crate) async fn read_inference_body(
        &self,
        body: axum::body::Body,
        headers: &axum::http::HeaderMap,
    ) -> Result<(Bytes, Reservation), ApiError> {
        read_body_reserved(body, headers, self.settings.max_request_bytes, &self.budget)
            .await
            .map_err(|e| self.unrouted(e))
    }

    /// Whether the server is ready: the start-up load finished and, with strict readiness,
    /// every model loaded. One definition for HTTP, gRPC and gRPC health.
    pub(crate) fn server_ready(&self) -> bool {
        let repository = &self.repository;
        repository.started() && (!self.settings.strict_readiness || repository.all_ready())
    }
}

/// `{model}` and the optional `{version}` or `{label}` of a model path.
#[derive(Debug, Deserialize)]
struct ModelPath {
    model: String,
    version: Option<String>,
    label: Option<String>,
}

impl ModelPath {
    /// The version the path names: by label, by number (or label), or the latest.
    fn resolve(&self, repository: &Repository) -> Result<Arc<LoadedVersion>, InferError> {
        match &self.label {
            Some(label) => repository.resolve_label(&self.model, label),
            None => repository.resolve(&self.model, self.version.as_deref()),
        }
    }
}

/// The protocol extensions the server implements, for every front-end's server metadata.
pub(crate) fn metadata_extensions() -> &'static [&'static str] {
    metadata::EXTENSIONS
}

/// The V2 HTTP router over `state`.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_request_bytes;
    let api = Router::new()
        .route("/v2", get(metadata::server))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .route("/v2/models/stats", get(stats::all))
        .route("/v2/models/{model}", get(metadata::model))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(metadata::model),
        )
        .route("/v2/models/{model}/labels/{label}", get(metadata::model))
        .route("/v2/models/{model}/ready", get(health::model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(health::model_ready),
        )
        .route(
            "/v2/models/{model}/labels/{label}/ready",
            get(health::model_ready),
        )
        .route("/v2/models/{model}/config", get(config::model))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(config::model),
        )
        .route(
            "/v2/models/{model}/labels/{label}/config",
            get(config::model),
        )
        .route("/v2/models/{model}/monitoring", get(monitoring::model))
        .route(
            "/v2/models/{model}/versions/{version}/monitoring",
            get(monitoring::model),
        )
        .route(
            "/v2/models/{model}/labels/{label}/monitoring",
            get(monitoring::model),
        )
        .route("/v2/models/{model}/stats", get(stats::model))
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(stats::model),
        )
        .route("/v2/models/{model}/labels/{label}/stats", get(stats::model))
        .route("/v2/models/{model}/infer", post(infer::infer))
        .route("/v2/models/{model}/feedback", post(feedback::feedback))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer::infer),
        )
        .route(
            "/v2/models/{model}/labels/{label}/infer",
            post(infer::infer),
        )
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{model}/load", post(repository::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(repository::unload),
        )
        .route(
            "/v2/repository/models/{model}/labels",
            get(repository::labels).post(repository::move_labels),
        )
        .merge(crate::protocol::tfserving::routes())
        .merge(crate::protocol::monitoring::routes());
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
    api.layer(DefaultBodyLimit::max(max_body)).with_state(state)
}

/// Unknown paths answer in the V2 error shape too.
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Reads an inference request's body, at most `limit` bytes, reserving its bytes in `budget`
/// before they are buffered: all at once when `Content-Length` declares them, else chunk by
/// chunk. Too large is 413; the budget spent is 503 at once. The reservation is held until the
/// caller drops it (when the request has been answered).
async fn read_body_reserved(
    body: axum::body::Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
    budget: &MemoryBudget,
) -> Result<(Bytes, Reservation), ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProtocolError::BodyTooLarge { limit }.into());
    }
    let mut body = body.into_data_stream();
    let mut reservation = match budget.reserve(declared.unwrap_or(0)) {
        Ok(reservation) => reservation,
        Err(over) => return Err(discard(&mut body, limit, over).await),
    };
    let mut buffer = bytes::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| ProtocolError::Json {
            message: format!("the body could not be read: {e}"),
        })?;
        let length = buffer.len() + chunk.len();
        if length > limit {
            return Err(ProtocolError::BodyTooLarge { limit }.into());
        }
        if length > reservation.bytes()
            && let Err(over) = reservation.grow(length - reservation.bytes())
        {
            drop((buffer, reservation));
            return Err(discard(&mut body, limit, over).await);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok((buffer.freeze(), reservation))
}

/// Reads and drops the rest of a body refused for the budget (at most `limit` bytes, holding
/// none of it), so the client gets its 503 cleanly instead of a connection reset mid-upload.
async fn discard(
    body: &mut axum::body::BodyDataStream,
    limit: usize,
    over: crate::budget::OverBudget,
) -> ApiError {
    let mut read = 0usize;
    while read <= limit {
        match futures::StreamExt::next(body).await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    InferError::from(over).into()
}

/// The body, or the error of reading it (too large, or the connection broke).
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ProtocolError::BodyTooLarge { limit }.into()
        } else {
            ProtocolError::Json {
                message: rejection.body_text(),
            }
            .into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use axum::http::header::CONTENT_LENGTH;

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit_and_the_budget() {
        let declared = |n: usize| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, n.into());
            h
        };
        let budget = MemoryBudget::new(8 * 1024);
        let read = |h: HeaderMap, text: Vec<u8>, limit: usize| {
            let budget = budget.clone();
            async move { read_body_reserved(axum::body::Body::from(text), &h, limit, &budget).await }
        };
        let (body, held) = read(declared(4), b"abcd".to_vec(), 4).await.unwrap();
        assert_eq!((&body[..], held.bytes()), (&b"abcd"[..], 1024));
        drop(held);
        let (body, _) = read(HeaderMap::new(), b"abc".to_vec(), 4).await.unwrap();
        assert_eq!(&body[..], b"abc");
        // Declared over the limit: refused before reading; sent over it: refused on reading.
        for (h, text) in [(declared(5), b"abcde"), (HeaderMap::new(), b"abcde")] {
            let err = read(h, text.to_vec(), 4).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ApiError::Protocol(ProtocolError::BodyTooLarge { limit: 4 })
                ),
                "{err}"
            );
        }
        // Past the budget, declared or not: 503 at once.
        let big = vec![b' '; 9 * 1024];
        for h in [declared(big.len()), HeaderMap::new()] {
            let err = read(h, big.clone(), 1 << 20).await.unwrap_err();
            assert!(
                matches!(err, ApiError::Infer(InferError::OverBudget(_))),
                "{err}"
            );
        }
        assert_eq!(budget.held(), 0, "refused bodies hold nothing");
    }
}
