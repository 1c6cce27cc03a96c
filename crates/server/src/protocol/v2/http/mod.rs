//! The V2 HTTP/REST endpoints, one file per group, and [`routes`] that lists them.
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
//! | `GET /v2/models/{m}[/versions/{v}]/monitoring` (ferroserve, data drift) | `drift` |
//!
//! Every `/versions/{v}` path also exists as `/labels/{label}` (`/v2/models/m/labels/stable/infer`).

mod config;
mod drift;
mod feedback;
mod health;
mod infer;
mod metadata;
mod repository;
mod stats;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;

use crate::error::InferError;
use crate::protocol::state::AppState;
use crate::repository::LoadedVersion;
use crate::router::Selector;

/// `{model}` and the optional `{version}` or `{label}` of a model path.
#[derive(Debug, Deserialize)]
struct ModelPath {
    model: String,
    version: Option<String>,
    label: Option<String>,
}

impl ModelPath {
    /// Which version the path names: by label, by number (or label), or the latest.
    fn selector(&self) -> Selector<'_> {
        match &self.label {
            Some(label) => Selector::Label(label),
            None => Selector::version(self.version.as_deref()),
        }
    }

    /// The version the path names now.
    fn resolve(&self, router: &crate::router::Router) -> Result<Arc<LoadedVersion>, InferError> {
        router.resolve(&self.model, self.selector())
    }
}

/// The protocol extensions the server implements, for every front-end's server metadata.
pub(crate) fn metadata_extensions() -> &'static [&'static str] {
    metadata::EXTENSIONS
}

/// Adds `endpoint` (`""` for the model itself, else `/ready`, `/infer`, …) under the three
/// ways of naming a model version: `/v2/models/{model}`, `…/versions/{version}` and
/// `…/labels/{label}`.
fn per_version(
    router: Router<AppState>,
    endpoint: &str,
    handler: &MethodRouter<AppState>,
) -> Router<AppState> {
    ["", "/versions/{version}", "/labels/{label}"]
        .into_iter()
        .fold(router, |router, version| {
            router.route(
                &format!("/v2/models/{{model}}{version}{endpoint}"),
                handler.clone(),
            )
        })
}

/// The V2 HTTP routes.
pub(crate) fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/v2", get(metadata::server))
        .route("/v2/health/live", get(health::live))
        .route("/v2/health/ready", get(health::ready))
        .route("/v2/models/stats", get(stats::all))
        .route("/v2/models/{model}/feedback", post(feedback::feedback))
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{model}/load", post(repository::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(repository::unload),
        )
        .route(
            "/v2/repository/models/{model}/labels",
            get(repository::labels).post(repository::move_labels),
        );
    [
        ("", get(metadata::model)),
        ("/ready", get(health::model_ready)),
        ("/config", get(config::model)),
        ("/monitoring", get(drift::model)),
        ("/stats", get(stats::model)),
        ("/infer", post(infer::infer)),
    ]
    .into_iter()
    .fold(api, |api, (endpoint, handler)| {
        per_version(api, endpoint, &handler)
    })
}
