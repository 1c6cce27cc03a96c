//! Triton's statistics extension: `GET /v2/models[/{m}[/versions/{v}]]/stats`. Every key
//! perf_analyzer reads is present (it reads them unchecked).

use axum::Json;
use axum::extract::State;

use crate::protocol::state::Path;
use serde_json::{Value, json};

use super::ModelPath;
use crate::protocol::state::AppState;
use crate::protocol::status::ApiError;
use crate::repository::LoadedVersion;
use crate::stats::DurationStat;

/// `GET /v2/models/stats`: every ready version.
pub(super) async fn all(State(state): State<AppState>) -> Json<Value> {
    let stats: Vec<Value> = state
        .repository
        .ready_versions()
        .iter()
        .map(|v| version_stats(v))
        .collect();
    Json(json!({ "model_stats": stats }))
}

/// `GET /v2/models/{m}[/versions/{v}]/stats`: one version, or every ready version of the model.
pub(super) async fn model(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let versions = match (&path.version, &path.label) {
        (Some(_), _) | (_, Some(_)) => vec![path.resolve(&state.router)?],
        (None, None) => {
            // Resolve first so an unknown or unready model is an error, not an empty list.
            state.repository.resolve(&path.model, None)?;
            state
                .repository
                .entry(&path.model)
                .map(|e| e.ready_versions())
                .unwrap_or_default()
        }
    };
    let stats: Vec<Value> = versions.iter().map(|v| version_stats(v)).collect();
    Ok(Json(json!({ "model_stats": stats })))
}

fn duration(d: &DurationStat) -> Value {
    json!({ "count": d.count, "ns": d.ns })
}

fn version_stats(v: &LoadedVersion) -> Value {
    let s = v.stats.snapshot();
    let zero = json!({ "count": 0, "ns": 0 });
    let batches: Vec<Value> = s
        .batches
        .iter()
        .map(|(size, b)| {
            json!({
                "batch_size": size,
                "compute_input": zero,
                "compute_infer": { "count": b.count, "ns": b.compute_infer_ns },
                "compute_output": zero,
            })
        })
        .collect();
    let mut stats = json!({
        "name": v.model_name,
        "version": v.version.to_string(),
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": duration(&s.success),
            "fail": duration(&s.fail),
            "queue": duration(&s.queue),
            "compute_input": duration(&s.compute_input),
            "compute_infer": duration(&s.compute_infer),
            "compute_output": duration(&s.compute_output),
            "cache_hit": duration(&s.cache_hit),
            "cache_miss": duration(&s.cache_miss),
        },
        "response_stats": {},
        "batch_stats": batches,
        "memory_usage": [],
    });
    // ferroserve's own: what a composite routed, mirrored or learnt.
    if let Some(composite) = v.executor.composite() {
        stats["composite"] = composite.describe();
    }
    if let Some(cache) = &v.cache {
        let (bytes, entries) = cache.usage();
        stats["cache"] =
            json!({ "capacity_bytes": cache.capacity(), "bytes": bytes, "entries": entries });
    }
    stats
}
