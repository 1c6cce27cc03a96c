//! Dynamic batching seen from the wire: concurrent clients each get exactly their rows back,
//! timeouts answer 504, priorities are checked against the model's levels.

use serde_json::{Value, json};

use ferroserve_server::ServerConfig;
use reqwest::StatusCode;

use crate::kit::{TestServer, assert_outputs_match, oracle, temp_repository, write_test_model};

fn rows(values: &[f32]) -> Value {
    json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [values.len() / 2, 2],
        "data": values}]})
}

#[tokio::test]
async fn concurrent_clients_each_get_exactly_their_rows() {
    let repo = temp_repository();
    // 20 ms a call and one instance: requests queue up and run in batches.
    write_test_model(repo.path(), "double", 1, 20);
    std::fs::write(
        repo.path().join("double/model.toml"),
        "instances = 1\nmax_queue_delay_us = 5000\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let sent: Vec<Vec<f32>> = (0..24)
        .map(|c| (0..2 * (1 + c % 4)).map(|i| (100 * c + i) as f32).collect())
        .collect();
    let bodies: Vec<Value> = sent.iter().map(|values| rows(values)).collect();
    let calls = bodies
        .iter()
        .map(|body| server.post("/v2/models/double/infer", body));
    let answers = futures::future::join_all(calls).await;
    for (values, (status, body)) in sent.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{body}");
        let doubled: Vec<f32> = values.iter().map(|v| v * 2.0).collect();
        assert_eq!(body["outputs"][0]["data"], json!(doubled));
        assert_eq!(body["outputs"][0]["shape"], json!([values.len() / 2, 2]));
    }
    let (_, stats) = server.get("/v2/models/double/stats").await;
    let stats = &stats["model_stats"][0];
    let rows: usize = sent.iter().map(|v| v.len() / 2).sum();
    assert_eq!(stats["inference_count"], rows);
    let executions = stats["execution_count"].as_u64().unwrap();
    assert!(executions < 24, "24 requests ran in {executions} batches");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_rows_of_a_real_model_match_their_answers_alone() {
    let server = TestServer::examples().await;
    let request = oracle("digits_mlp", "request.json");
    let data = request["inputs"][0]["data"].as_array().unwrap();
    let single = |row: usize| {
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
            "data": data[row * 64..(row + 1) * 64]}]})
    };
    let mut alone = Vec::new();
    for row in 0..16 {
        alone.push(
            server
                .post("/v2/models/digits_mlp/infer", &single(row))
                .await
                .1,
        );
    }
    for _ in 0..4 {
        let bodies: Vec<Value> = (0..16).map(single).collect();
        let calls = bodies
            .iter()
            .map(|body| server.post("/v2/models/digits_mlp/infer", body));
        for (row, (status, body)) in futures::future::join_all(calls).await.iter().enumerate() {
            assert_eq!(*status, StatusCode::OK);
            // Labels exactly; probabilities to float tolerance (tract's matrix kernels sum in
            // a different order for a batch of rows than for one).
            assert_eq!(body["outputs"][0], alone[row]["outputs"][0], "row {row}");
            assert_outputs_match(body, &alone[row]);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn an_expired_timeout_answers_504_and_a_bad_priority_400() {
    let repo = temp_repository();
    write_test_model(repo.path(), "slow", 1, 300);
    std::fs::write(
        repo.path().join("slow/model.toml"),
        "instances = 1\npriority_levels = 2\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let first = rows(&[1.0, 1.0]);
    let busy = server.post("/v2/models/slow/infer", &first);
    let mut hurried = rows(&[2.0, 2.0]);
    hurried["parameters"] = json!({"timeout": 50_000, "priority": 1});
    let late = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        server.post("/v2/models/slow/infer", &hurried).await
    };
    let ((busy_status, _), (status, body)) = tokio::join!(busy, late);
    assert_eq!(busy_status, StatusCode::OK);
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );

    let mut bad = rows(&[1.0, 1.0]);
    bad["parameters"] = json!({"priority": 3});
    let (status, body) = server.post("/v2/models/slow/infer", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("priority"),
        "{body}"
    );
    bad["parameters"] = json!({"timeout": "soon"});
    let (status, body) = server.post("/v2/models/slow/infer", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
    server.stop().await;
}
