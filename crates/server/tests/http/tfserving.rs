//! The TensorFlow Serving REST API over a real socket: the same rows through `:predict` in the
//! row and columnar formats give the V2 answer; status, metadata, labels, classify, regress.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use ferroserve_server::ServerConfig;

use crate::kit::{TestServer, into_json, oracle, temp_repository};

/// The iris request's rows as a list of 4-value rows.
fn iris_rows() -> Vec<Value> {
    let request = oracle("iris_logreg", "request.json");
    request["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .chunks(4)
        .map(|r| Value::Array(r.to_vec()))
        .collect()
}

#[tokio::test]
async fn predict_in_both_formats_gives_the_v2_answer() {
    let server = TestServer::examples().await;
    let expected = oracle("iris_logreg", "expected.json");
    let labels = &expected["outputs"][0]["data"];
    let probabilities: Vec<Value> = expected["outputs"][1]["data"]
        .as_array()
        .unwrap()
        .chunks(3)
        .map(|r| Value::Array(r.to_vec()))
        .collect();

    let (status, body) = server
        .post(
            "/v1/models/iris_logreg:predict",
            &json!({"instances": iris_rows()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 16);
    for (i, p) in predictions.iter().enumerate() {
        assert_eq!(p["label"], labels[i]);
        for (got, want) in p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .zip(probabilities[i].as_array().unwrap())
        {
            assert!((got.as_f64().unwrap() - want.as_f64().unwrap()).abs() < 1e-6);
        }
    }

    let (status, body) = server
        .post(
            "/v1/models/iris_logreg/versions/1:predict",
            &json!({"signature_name": "serving_default", "inputs": {"input": iris_rows()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"]["label"], *labels);
    assert_eq!(
        body["outputs"]["probabilities"].as_array().unwrap().len(),
        16
    );
    server.stop().await;
}

#[tokio::test]
async fn status_metadata_and_errors_follow_tf_serving() {
    let server = TestServer::examples().await;
    let (status, body) = server.get("/v1/models/iris_logreg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})
    );
    let (status, body) = server
        .get("/v1/models/digits_mlp/versions/1/metadata")
        .await;
    assert_eq!(status, StatusCode::OK);
    let signature = &body["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(signature["inputs"]["input"]["dtype"], "DT_FLOAT");
    assert_eq!(
        signature["inputs"]["input"]["tensor_shape"]["dim"][1]["size"],
        "64"
    );
    assert_eq!(body["model_spec"]["version"], "1");

    for (path, body, code, needle) in [
        (
            "/v1/models/nope:predict",
            json!({"instances": [[1.0]]}),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            "/v1/models/iris_logreg/versions/7:predict",
            json!({"instances": [[1.0, 2.0, 3.0, 4.0]]}),
            StatusCode::NOT_FOUND,
            "7",
        ),
        (
            "/v1/models/iris_logreg:predict",
            json!({"instances": [[1.0, 2.0, 3.0]]}),
            StatusCode::BAD_REQUEST,
            "input",
        ),
        (
            "/v1/models/iris_logreg:predict",
            json!({"instances": [[1.0, 2.0], [1.0]]}),
            StatusCode::BAD_REQUEST,
            "ragged",
        ),
        (
            "/v1/models/iris_logreg:regress",
            json!({"examples": [{"input": [1.0, 2.0, 3.0, 4.0]}]}),
            StatusCode::BAD_REQUEST,
            "regress needs",
        ),
    ] {
        let (status, answer) = server.post(path, &body).await;
        assert_eq!(status, code, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{path}: {answer}"
        );
    }
    let r = server
        .client
        .post(server.url("/v1/models/iris_logreg:predict"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, answer) = into_json(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("not JSON"));
    server.stop().await;
}

#[tokio::test]
async fn classify_and_regress_answer_per_example() {
    let repo = temp_repository();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/trees/xgboost/reg_squarederror/model.json");
    let dir = repo.path().join("diabetes/3");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&fixture, dir.join("model.json")).unwrap();
    std::fs::write(
        repo.path().join("diabetes/model.toml"),
        "labels = { stable = 3 }\n",
    )
    .unwrap();
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/iris_logreg");
    std::fs::create_dir_all(repo.path().join("iris/1")).unwrap();
    std::fs::copy(
        iris.join("1/model.onnx"),
        repo.path().join("iris/1/model.onnx"),
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;

    let rows = fixture.with_file_name("rows.json");
    let rows: Value = serde_json::from_slice(&std::fs::read(rows).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture.with_file_name("expected.json")).unwrap())
            .unwrap();
    let examples: Vec<Value> = rows["data"]
        .as_array()
        .unwrap()
        .chunks(10)
        .take(4)
        .map(|r| json!({"input": r}))
        .collect();
    let (status, body) = server
        .post(
            "/v1/models/diabetes/labels/stable:regress",
            &json!({"examples": examples}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (got, want) in body["result"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["predict"].as_array().unwrap())
    {
        assert!((got.as_f64().unwrap() - want.as_f64().unwrap()).abs() < 1e-3);
    }

    let (status, body) = server
        .post(
            "/v1/models/iris:classify",
            &json!({"examples": iris_rows().into_iter().take(2)
                .map(|r| json!({"input": r})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["result"][0];
    assert_eq!(first.as_array().unwrap().len(), 3);
    assert_eq!(first[0][0], "0");
    assert!(first[0][1].as_f64().unwrap() > 0.9, "a setosa row: {body}");
    server.stop().await;
}
