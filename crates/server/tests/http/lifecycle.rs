//! Failures inside models, back-pressure and graceful shutdown, with the `test` runtime's models.

use std::time::Duration;

use ferroserve_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::kit::{TestServer, temp_repository, write_test_model};

fn rows(values: &[f32]) -> serde_json::Value {
    json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [values.len() / 2, 2], "data": values}]})
}

#[tokio::test]
async fn a_panicking_model_fails_only_its_request() {
    let repo = temp_repository();
    write_test_model(repo.path(), "double", 1, 0);
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let (status, body) = server
        .post("/v2/models/double/infer", &rows(&[-1.0, 1.0]))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"].as_str().unwrap().contains("negative input"),
        "{body}"
    );
    let (status, body) = server
        .post("/v2/models/double/infer", &rows(&[1.0, 2.5]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outputs"][0]["data"], json!([2.0, 5.0]));
    let (_, stats) = server.get("/v2/models/double/stats").await;
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["fail"]["count"],
        1
    );
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["success"]["count"],
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_at_once() {
    let repo = temp_repository();
    write_test_model(repo.path(), "slow", 1, 300);
    std::fs::write(
        repo.path().join("slow/model.toml"),
        "instances = 1\nmax_queue_size = 1\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = rows(&[1.0, 1.0]);
    let calls = (0..4).map(|_| server.post("/v2/models/slow/infer", &request));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let overloaded: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(ok >= 1 && !overloaded.is_empty(), "{results:?}");
    assert_eq!(ok + overloaded.len(), 4);
    assert!(
        overloaded[0].1["error"]
            .as_str()
            .unwrap()
            .contains("overloaded")
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let repo = temp_repository();
    write_test_model(repo.path(), "slow", 1, 500);
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = server
        .client
        .post(server.url("/v2/models/slow/infer"))
        .json(&rows(&[1.0, 2.0]))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let addr = server.addr;
    server.stop().await;
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // New connections are refused once it has stopped.
    assert!(
        reqwest::get(format!("http://{addr}/v2/health/live"))
            .await
            .is_err()
    );
}
