//! The bad-input matrix: each malformed request gets a 4xx naming the problem, and the server
//! answers the next request as if nothing happened.

use ferroserve_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{
    TestServer, assert_client_error, assert_outputs_match, examples, into_json, oracle,
};

const INFER: &str = "/v2/models/iris_logreg/infer";

fn input(datatype: &str, shape: Value, data: Value) -> Value {
    json!({"inputs": [{"name": "input", "datatype": datatype, "shape": shape, "data": data}]})
}

/// After every bad request the server still answers a good one correctly.
async fn still_serves(server: &TestServer) {
    let (status, body) = server
        .post(INFER, &oracle("iris_logreg", "request.json"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_outputs_match(&body, &oracle("iris_logreg", "expected.json"));
}

#[tokio::test]
async fn malformed_json_bodies() {
    let server = TestServer::examples().await;
    let cases: Vec<(&[u8], &[&str])> = vec![
        (b"{\"inputs\": [", &["malformed"]),
        (b"not json", &["malformed"]),
        (b"{}", &["inputs"]),
        (br#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, "x"]}]}"#, &["'input'", "element 3", "FP32"]),
        (br#"{"inputs": [{"name": "input", "shape": "1,4", "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#, &["inputs[0].shape"]),
        (br#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32"}]}"#, &["input", "no data"]),
        (br#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3,4]}], "outputs": [{"name": "label"}, {"name": "label"}]}"#, &["'label'", "more than once"]),
    ];
    for (body, needles) in cases {
        let r = server
            .post_raw(
                INFER,
                body.to_vec(),
                &[("Content-Type", "application/json".into())],
            )
            .await;
        let (status, json) = into_json(r).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_client_error(status, &json, needles);
        still_serves(&server).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_model_and_version() {
    let server = TestServer::examples().await;
    let request = oracle("iris_logreg", "request.json");
    let (status, body) = server.post("/v2/models/nope/infer", &request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_client_error(status, &body, &["unknown model", "'nope'"]);
    let (status, body) = server
        .post("/v2/models/iris_logreg/versions/9/infer", &request)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_client_error(status, &body, &["iris_logreg", "'9'", "[1]"]);
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn signature_mismatches() {
    let server = TestServer::examples().await;
    let rows = json!([[5.1, 3.5, 1.4, 0.2]]);
    let cases: Vec<(Value, &[&str])> = vec![
        (
            input("FP64", json!([1, 4]), rows.clone()),
            &["'input'", "FP64", "FP32"],
        ),
        (
            input("FP31", json!([1, 4]), rows.clone()),
            &["'input'", "FP31"],
        ),
        (
            input("FP32", json!([1, 3]), json!([1, 2, 3])),
            &["'input'", "[1, 3]", "[-1, 4]"],
        ),
        (
            input("FP32", json!([4]), json!([1, 2, 3, 4])),
            &["'input'", "[4]"],
        ),
        (
            input("FP32", json!([2, 4]), rows.clone()),
            &["'input'", "8", "4"],
        ),
        (
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": rows}]}),
            &["'x'", "input"],
        ),
        (json!({"inputs": []}), &["missing input 'input'"]),
        (
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": rows}], "outputs": [{"name": "proba"}]}),
            &["'proba'", "probabilities"],
        ),
        (
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": rows}], "outputs": [{"name": "label", "parameters": {"classification": 2}}]}),
            &["classification"],
        ),
    ];
    for (request, needles) in cases {
        let (status, body) = server.post(INFER, &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        assert_client_error(status, &body, needles);
        still_serves(&server).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn binary_framing_errors() {
    let server = TestServer::examples().await;
    let header = serde_json::to_vec(
        &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
        "parameters": {"binary_data_size": 16}}]}),
    )
    .unwrap();
    let with = |extra: usize| {
        let mut body = header.clone();
        body.extend(std::iter::repeat_n(0u8, extra));
        body
    };
    let cases: Vec<(Vec<u8>, String, &[&str])> = vec![
        (
            with(10),
            header.len().to_string(),
            &["'input'", "truncated", "16", "10"],
        ),
        (with(20), header.len().to_string(), &["4 bytes after"]),
        (
            with(16),
            (header.len() + 100).to_string(),
            &["Inference-Header-Content-Length", "larger than the body"],
        ),
        (
            with(16),
            "abc".into(),
            &[
                "Inference-Header-Content-Length",
                "not a non-negative integer",
            ],
        ),
        (with(16), "5".into(), &["malformed"]),
        (vec![0; 10], "0".into(), &["'input'", "raw binary"]),
    ];
    let r = server
        .post_raw(
            INFER,
            vec![0x1f, 0x8b, 0, 0],
            &[("Content-Encoding", "gzip".into())],
        )
        .await;
    let (status, json) = into_json(r).await;
    assert_client_error(status, &json, &["Content-Encoding", "gzip", "uncompressed"]);
    for (body, length, needles) in cases {
        let r = server
            .post_raw(
                INFER,
                body,
                &[("Inference-Header-Content-Length", length.clone())],
            )
            .await;
        let (status, json) = into_json(r).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "header length {length}: {json}"
        );
        assert_client_error(status, &json, needles);
        still_serves(&server).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn oversize_body_and_tensor() {
    let mut config = ServerConfig::new(examples());
    config.max_request_bytes = 4096;
    config.max_tensor_elements = 400;
    let server = TestServer::start(config).await;
    let big = vec![b' '; 10_000];
    let r = server.post_raw(INFER, big, &[]).await;
    let (status, body) = into_json(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_client_error(status, &body, &["4096"]);
    still_serves(&server).await;

    let (status, body) = server
        .post(INFER, &input("FP32", json!([101, 4]), json!([])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_client_error(status, &body, &["'input'", "404", "400"]);
    still_serves(&server).await;

    let (status, body) = server
        .post(INFER, &input("FP32", json!([u64::MAX, 4]), json!([])))
        .await;
    assert_client_error(status, &body, &["'input'", "too large"]);
    still_serves(&server).await;
    server.stop().await;
}

/// Values a float type cannot hold, a compressed TF Serving body and a path that is not
/// UTF-8 are refused with a V2 error naming them (they once became infinity, were decoded as
/// garbage, and got axum's plain text).
#[tokio::test]
async fn out_of_range_floats_compressed_bodies_and_bad_paths_are_named() {
    let server = TestServer::examples().await;
    let x = json!([5.1, 3.5, 1.4, 1e39]);
    let (status, body) = server
        .post(INFER, &input("FP32", json!([1, 4]), x.clone()))
        .await;
    assert_client_error(status, &body, &["input 'input'", "element 3", "FP32"]);
    let (status, body) = server
        .post("/v1/models/iris_logreg:predict", &json!({"instances": [x]}))
        .await;
    assert_client_error(status, &body, &["1e39"]);

    let r = server
        .post_raw(
            "/v1/models/iris_logreg:predict",
            vec![0x1f, 0x8b, 0, 0],
            &[("Content-Encoding", "gzip".into())],
        )
        .await;
    let (status, json) = into_json(r).await;
    assert_client_error(status, &json, &["Content-Encoding", "gzip", "uncompressed"]);

    for path in [
        "/v2/models/%FF/ready",
        "/v2/models/iris_logreg/versions/%C3%28",
    ] {
        let (status, body) = server.get(path).await;
        assert_client_error(status, &body, &["malformed path"]);
    }
    still_serves(&server).await;
    server.stop().await;
}
