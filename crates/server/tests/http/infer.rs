//! Inference over HTTP beyond the numbers: requested outputs, nested data, binary tensors both
//! ways, rows alone and in a batch, both ONNX engines pinned by config. Every conformance case
//! over every protocol is conformance.rs's (tests/conformance/cases.json).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, assert_outputs_match, into_json, oracle, split_binary};

#[tokio::test]
async fn echoes_the_request_id_and_returns_only_requested_outputs() {
    let server = TestServer::examples().await;
    let mut request = oracle("digits_mlp", "request.json");
    request["id"] = json!("req-42");
    request["outputs"] = json!([{"name": "probabilities"}]);
    let (status, body) = server
        .post("/v2/models/digits_mlp/versions/1/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "req-42");
    assert_eq!(body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    server.stop().await;
}

#[tokio::test]
async fn nested_json_data_is_accepted() {
    let server = TestServer::examples().await;
    let mut request = oracle("iris_logreg", "request.json");
    let flat: Vec<Value> = request["inputs"][0]["data"].as_array().unwrap().clone();
    request["inputs"][0]["data"] =
        Value::Array(flat.chunks(4).map(|r| Value::Array(r.to_vec())).collect());
    let (status, body) = server.post("/v2/models/iris_logreg/infer", &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_outputs_match(&body, &oracle("iris_logreg", "expected.json"));
    server.stop().await;
}

/// The binary form of the oracle request: JSON header + little-endian FP32 rows.
fn binary_request(model: &str, outputs: Value) -> (Vec<u8>, usize) {
    let request = oracle(model, "request.json");
    let input = &request["inputs"][0];
    let bytes: Vec<u8> = input["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| (v.as_f64().unwrap() as f32).to_le_bytes())
        .collect();
    let header = json!({
        "inputs": [{
            "name": input["name"], "datatype": "FP32", "shape": input["shape"],
            "parameters": {"binary_data_size": bytes.len()},
        }],
        "outputs": outputs,
    });
    let mut body = serde_json::to_vec(&header).unwrap();
    let header_length = body.len();
    body.extend_from_slice(&bytes);
    (body, header_length)
}

#[tokio::test]
async fn binary_tensors_both_ways_match_the_oracle() {
    let server = TestServer::examples().await;
    let (body, header_length) = binary_request(
        "digits_mlp",
        json!([{"name": "label", "parameters": {"binary_data": true}},
               {"name": "probabilities", "parameters": {"binary_data": false}}]),
    );
    // As tritonclient sends it: no Content-Type.
    let r = server
        .post_raw(
            "/v2/models/digits_mlp/infer",
            body,
            &[("Inference-Header-Content-Length", header_length.to_string())],
        )
        .await;
    let (header, binary) = split_binary(r).await;
    assert_eq!(
        header["outputs"][0]["parameters"]["binary_data_size"],
        16 * 8
    );
    assert!(header["outputs"][0].get("data").is_none());
    let labels: Vec<i64> = binary
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected = oracle("digits_mlp", "expected.json");
    let want: Vec<i64> = expected["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels, want);
    // The JSON output in the same response.
    let mut as_json = header.clone();
    as_json["outputs"] = json!([header["outputs"][1]]);
    assert_outputs_match(&as_json, &json!({"outputs": [expected["outputs"][1]]}));
    server.stop().await;
}

#[tokio::test]
async fn binary_data_output_parameter_applies_to_all_outputs() {
    let server = TestServer::examples().await;
    let mut request = oracle("iris_logreg", "request.json");
    request["parameters"] = json!({"binary_data_output": true});
    let r = server
        .client
        .post(server.url("/v2/models/iris_logreg/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let (header, binary) = split_binary(r).await;
    assert_eq!(
        header["outputs"][1]["parameters"]["binary_data_size"],
        16 * 3 * 4
    );
    assert_eq!(binary.len(), 16 * 8 + 16 * 3 * 4);
    server.stop().await;
}

#[tokio::test]
async fn header_length_equal_to_the_body_is_plain_json() {
    // perf_analyzer's JSON mode sends the header even when no binary part follows.
    let server = TestServer::examples().await;
    let body = serde_json::to_vec(&oracle("cnn", "request.json")).unwrap();
    let length = body.len().to_string();
    let r = server
        .post_raw(
            "/v2/models/cnn/infer",
            body,
            &[
                ("Inference-Header-Content-Length", length),
                ("Content-Type", "application/json".into()),
            ],
        )
        .await;
    let (status, body) = into_json(r).await;
    assert_eq!(status, StatusCode::OK);
    assert_outputs_match(&body, &oracle("cnn", "expected.json"));
    server.stop().await;
}

#[tokio::test]
async fn raw_binary_request_is_one_row() {
    let server = TestServer::examples().await;
    let row: Vec<u8> = [5.1f32, 3.5, 1.4, 0.2]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let r = server
        .post_raw(
            "/v2/models/iris_logreg/infer",
            row,
            &[("Inference-Header-Content-Length", "0".into())],
        )
        .await;
    let (header, binary) = split_binary(r).await;
    assert_eq!(header["outputs"][0]["shape"], json!([1]));
    let label = i64::from_le_bytes(binary[..8].try_into().unwrap());
    assert_eq!(label, 0, "a setosa row");
    server.stop().await;
}

#[tokio::test]
async fn a_row_gives_the_same_answer_alone_and_inside_a_batch() {
    let server = TestServer::examples().await;
    let request = oracle("digits_mlp", "request.json");
    let (_, batch) = server.post("/v2/models/digits_mlp/infer", &request).await;
    let data = request["inputs"][0]["data"].as_array().unwrap();
    for row in [0usize, 7, 15] {
        let single = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
            "data": data[row * 64..(row + 1) * 64]}]});
        let (_, alone) = server.post("/v2/models/digits_mlp/infer", &single).await;
        assert_eq!(
            alone["outputs"][0]["data"][0],
            batch["outputs"][0]["data"][row]
        );
        let probabilities =
            &batch["outputs"][1]["data"].as_array().unwrap()[row * 10..(row + 1) * 10];
        assert_outputs_match(
            &alone,
            &json!({"outputs": [{"name": "probabilities", "datatype": "FP32",
            "shape": [1, 10], "data": probabilities}]}),
        );
    }
    server.stop().await;
}

/// `runtime = "tract"` / `"onnxruntime"` in model.toml pin the ONNX engine; both answer the
/// oracle request over HTTP, and `/config` names the engine as the backend. ONNX Runtime's leg
/// runs when its library is found (`scripts/fetch-onnxruntime.sh`; `.ci/run` requires it).
#[tokio::test]
async fn both_onnx_engines_serve_the_oracles() {
    use ferroserve_onnx::onnxruntime::{LibraryChoice, library};
    let mut engines = vec!["tract"];
    match library::initialize(LibraryChoice::Search) {
        Ok(_) => engines.push("onnxruntime"),
        Err(e) if std::env::var_os("FERROSERVE_REQUIRE_ONNXRUNTIME").is_some() => {
            panic!("FERROSERVE_REQUIRE_ONNXRUNTIME is set but {e}")
        }
        Err(e) => eprintln!("ONNX Runtime engine not tested: {e}"),
    }
    let repo = tempfile::tempdir().unwrap();
    for engine in &engines {
        for model in ["digits_mlp", "cnn"] {
            let dir = repo.path().join(format!("{model}_{engine}"));
            std::fs::create_dir_all(dir.join("1")).unwrap();
            std::fs::copy(
                crate::kit::examples().join(model).join("1/model.onnx"),
                dir.join("1/model.onnx"),
            )
            .unwrap();
            std::fs::write(dir.join("model.toml"), format!("runtime = \"{engine}\"\n")).unwrap();
        }
    }
    let server = TestServer::start(ferroserve_server::ServerConfig::new(repo.path())).await;
    for engine in &engines {
        for model in ["digits_mlp", "cnn"] {
            let name = format!("{model}_{engine}");
            let (status, config) = server.get(&format!("/v2/models/{name}/config")).await;
            assert_eq!(status, StatusCode::OK, "{name}: {config}");
            assert_eq!(config["backend"], *engine, "{name}");
            let request = oracle(model, "request.json");
            let (status, body) = server
                .post(&format!("/v2/models/{name}/infer"), &request)
                .await;
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_outputs_match(&body, &oracle(model, "expected.json"));
        }
    }
    server.stop().await;
}
