//! The prediction cache over the wire: a repeated request is answered from the cache without
//! running the model, counted as Triton counts it.

use std::time::{Duration, Instant};

use ferroserve_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::kit::{TestServer, temp_repository, write_test_model};

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let repo = temp_repository();
    write_test_model(repo.path(), "slow", 1, 300);
    std::fs::write(repo.path().join("slow/model.toml"), "cache_bytes = 65536\n").unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let rows = |a: f32| json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [a, 2.0]}]});

    let (status, first) = server.post("/v2/models/slow/infer", &rows(1.0)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let started = Instant::now();
    let (status, again) = server.post("/v2/models/slow/infer", &rows(1.0)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(again["outputs"], first["outputs"]);
    // Other inputs are another entry.
    let (_, other) = server.post("/v2/models/slow/infer", &rows(3.0)).await;
    assert_eq!(other["outputs"][0]["data"], json!([6.0, 4.0]));

    let (_, stats) = server.get("/v2/models/slow/stats").await;
    let s = &stats["model_stats"][0];
    assert_eq!(s["inference_stats"]["cache_hit"]["count"], 1, "{stats}");
    assert_eq!(s["inference_stats"]["cache_miss"]["count"], 2);
    assert_eq!(s["inference_stats"]["success"]["count"], 3);
    assert_eq!(s["execution_count"], 2, "the hit ran no model");
    assert_eq!(s["cache"]["entries"], 2);
    assert_eq!(s["cache"]["capacity_bytes"], 65536);
    let (_, config) = server.get("/v2/models/slow/config").await;
    assert_eq!(config["response_cache"]["enable"], true);
    server.stop().await;
}
