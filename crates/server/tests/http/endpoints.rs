//! Health, metadata, config and statistics endpoints.

use reqwest::StatusCode;
use serde_json::json;

use crate::kit::{TestServer, assert_client_error};

#[tokio::test]
async fn health_endpoints_answer_200_with_empty_bodies() {
    let server = TestServer::examples().await;
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/digits_mlp/ready",
        "/v2/models/digits_mlp/versions/1/ready",
    ] {
        let r = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let (status, body) = server.get("/v2/models/nope/ready").await;
    assert_client_error(status, &body, &["nope"]);
    let (status, _) = server.get("/v2/models/digits_mlp/versions/7/ready").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn server_metadata_lists_complete_extensions() {
    let server = TestServer::examples().await;
    let (status, body) = server.get("/v2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "ferroserve");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let extensions = body["extensions"].as_array().unwrap();
    for e in [
        "binary_tensor_data",
        "model_configuration",
        "model_repository",
        "statistics",
    ] {
        assert!(extensions.contains(&json!(e)), "{e}");
    }
    server.stop().await;
}

#[tokio::test]
async fn model_metadata_comes_from_the_onnx_graph() {
    let server = TestServer::examples().await;
    for path in ["/v2/models/digits_mlp", "/v2/models/digits_mlp/versions/1"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "name": "digits_mlp",
                "versions": ["1"],
                "platform": "onnx_onnxv1",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
                "outputs": [
                    {"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                ],
            })
        );
    }
    let (_, cnn) = server.get("/v2/models/cnn").await;
    assert_eq!(cnn["inputs"][0]["shape"], json!([-1, 1, 8, 8]));
    assert_eq!(
        cnn["outputs"][0],
        json!({"name": "logits", "datatype": "FP32", "shape": [-1, 10]})
    );
    server.stop().await;
}

#[tokio::test]
async fn model_config_drops_the_batch_dimension() {
    let server = TestServer::examples().await;
    let (status, body) = server.get("/v2/models/digits_mlp/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "digits_mlp");
    assert_eq!(body["max_batch_size"], 1024);
    assert_eq!(body["input"][0]["name"], "input");
    assert_eq!(body["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(body["input"][0]["dims"], json!([64]));
    assert_eq!(body["output"][0]["data_type"], "TYPE_INT64");
    assert_eq!(body["output"][0]["dims"], json!([]));
    assert_eq!(body["output"][1]["dims"], json!([10]));
    assert_eq!(
        body["version_policy"],
        json!({"latest": {"num_versions": 1}})
    );
    assert_eq!(body["instance_group"][0]["kind"], "KIND_CPU");
    assert_eq!(body["model_transaction_policy"]["decoupled"], false);
    let (status, _) = server.get("/v2/models/digits_mlp/versions/1/config").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn statistics_count_rows_and_executions() {
    let server = TestServer::examples().await;
    let request = crate::kit::oracle("iris_logreg", "request.json");
    for _ in 0..3 {
        let (status, _) = server.post("/v2/models/iris_logreg/infer", &request).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = server.get("/v2/models/iris_logreg/stats").await;
    assert_eq!(status, StatusCode::OK);
    let stats = &body["model_stats"][0];
    assert_eq!(stats["name"], "iris_logreg");
    assert_eq!(stats["version"], "1");
    assert_eq!(stats["inference_count"], 48);
    assert_eq!(stats["execution_count"], 3);
    let inference = &stats["inference_stats"];
    for key in [
        "success",
        "fail",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
        "cache_hit",
        "cache_miss",
    ] {
        assert!(
            inference[key]["count"].is_u64() && inference[key]["ns"].is_u64(),
            "{key}"
        );
    }
    assert_eq!(inference["success"]["count"], 3);
    assert_eq!(inference["compute_infer"]["count"], 3);
    assert_eq!(stats["batch_stats"][0]["batch_size"], 16);
    assert!(stats["last_inference"].as_u64().unwrap() > 0);

    let (_, all) = server.get("/v2/models/stats").await;
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 3);
    let (status, _) = server.get("/v2/models/nope/stats").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_answer_in_the_v2_error_shape() {
    let server = TestServer::examples().await;
    let (status, body) = server.get("/v3/models").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("/v3/models"));
    server.stop().await;
}
