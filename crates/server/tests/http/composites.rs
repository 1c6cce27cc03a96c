//! Composite models over the wire: an A/B split (sticky by parameter or header), a shadow that
//! never slows or fails the primary, and a bandit that learns from feedback and keeps its
//! state across a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::{ModelControl, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, assert_client_error, oracle, temp_repository, write_test_model};

/// The example repository plus iris_logreg versions 1 and 2 (both serving).
fn repository_with_two_iris_versions() -> tempfile::TempDir {
    crate::kit::temp_repository_two_iris("")
}

fn composite(repo: &Path, name: &str, toml: &str) {
    std::fs::create_dir_all(repo.join(name)).unwrap();
    std::fs::write(repo.join(name).join("model.toml"), toml).unwrap();
}

fn with_parameters(mut request: Value, parameters: Value) -> Value {
    request["parameters"] = parameters;
    request
}

#[tokio::test]
async fn a_split_routes_by_weight_and_keeps_each_user_on_one_variant() {
    let repo = repository_with_two_iris_versions();
    composite(
        repo.path(),
        "ab",
        "kind = \"split\"\nvariants = { \"iris_logreg@1\" = 50, \"iris_logreg@2\" = 50 }\nsticky_by = \"user\"\n",
    );
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let expected = oracle("iris_logreg", "expected.json");
    let request = oracle("iris_logreg", "request.json");

    let mut by_user = BTreeMap::new();
    for user in 0..40 {
        for _ in 0..3 {
            let body = with_parameters(request.clone(), json!({"user": format!("u{user}")}));
            let (status, answer) = server.post("/v2/models/ab/infer", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["model_name"], "ab");
            assert_eq!(answer["outputs"][0]["data"], expected["outputs"][0]["data"]);
            let variant = answer["parameters"]["variant"].as_str().unwrap().to_owned();
            let first = by_user.entry(user).or_insert_with(|| variant.clone());
            assert_eq!(*first, variant, "user u{user} moved");
        }
    }
    let variants: BTreeSet<&String> = by_user.values().collect();
    assert_eq!(variants.len(), 2, "{by_user:?}");

    // A header of the sticky name works too, and agrees with the parameter.
    let r = server
        .client
        .post(server.url("/v2/models/ab/infer"))
        .header("user", "u7")
        .json(&request)
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["parameters"]["variant"], by_user[&7].as_str());

    // Over gRPC, with the parameter, the variant comes back as a response parameter.
    let mut c = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let x: Vec<f32> = request["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let grpc_request = proto::ModelInferRequest {
        model_name: "ab".into(),
        inputs: vec![proto::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![16, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![x.iter().flat_map(|v| v.to_le_bytes()).collect()],
        parameters: [(
            "user".to_owned(),
            proto::InferParameter {
                parameter_choice: Some(proto::infer_parameter::ParameterChoice::StringParam(
                    "u7".into(),
                )),
            },
        )]
        .into(),
        ..Default::default()
    };
    let response = c.model_infer(grpc_request).await.unwrap().into_inner();
    assert_eq!(
        response.parameters["variant"].parameter_choice,
        Some(proto::infer_parameter::ParameterChoice::StringParam(
            by_user[&7].clone()
        ))
    );

    // Described like any model, and counted per variant.
    let (_, meta) = server.get("/v2/models/ab").await;
    assert_eq!(meta["platform"], "ferroserve_split");
    assert_eq!(meta["inputs"][0]["name"], "input");
    let (_, config) = server.get("/v2/models/ab/config").await;
    assert_eq!(config["parameters"]["composite"]["kind"], "split");
    let (_, stats) = server.get("/v2/models/ab/stats").await;
    let served: u64 = stats["model_stats"][0]["composite"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["served"].as_u64().unwrap())
        .sum();
    // 120 by parameter, one by header, one over gRPC.
    assert_eq!(served, 122);
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["success"]["count"],
        122
    );
    server.stop().await;
}

#[tokio::test]
async fn a_shadow_adds_no_latency_or_errors_and_counts_agreement() {
    let repo = temp_repository();
    write_test_model(repo.path(), "fast", 1, 0);
    write_test_model(repo.path(), "slow_copy", 1, 400);
    composite(
        repo.path(),
        "mirrored",
        "kind = \"shadow\"\nprimary = \"fast\"\nshadows = [\"slow_copy\"]\n",
    );
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let rows =
        json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]});
    for _ in 0..3 {
        let started = Instant::now();
        let (status, answer) = server.post("/v2/models/mirrored/infer", &rows).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outputs"][0]["data"], json!([2.0, 4.0]));
        assert_eq!(answer["parameters"]["variant"], "fast");
        // The shadow takes 400 ms; the caller never waits for it.
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    // One mirror runs at a time (max_in_flight = 1): the first request's is still running
    // when the next two come, so theirs are skipped rather than queued behind it.
    let mut composite = Value::Null;
    for _ in 0..100 {
        let (_, stats) = server.get("/v2/models/mirrored/stats").await;
        composite = stats["model_stats"][0]["composite"].clone();
        if composite["shadows"][0]["compared"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(composite["mirrored"], 1, "{composite}");
    assert_eq!(composite["skipped_busy"], 2, "{composite}");
    let shadow = &composite["shadows"][0];
    assert_eq!(shadow["compared"], 1, "{composite}");
    assert_eq!(shadow["agreed"], 1);
    assert_eq!(shadow["agreement"], 1.0);
    assert_eq!(shadow["target"], "slow_copy");
    // The shadow's own statistics count the mirrored request.
    let (_, shadow_stats) = server.get("/v2/models/slow_copy/stats").await;
    assert_eq!(
        shadow_stats["model_stats"][0]["inference_stats"]["success"]["count"],
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bandit_learns_from_feedback_and_remembers_it_across_a_restart() {
    let repo = repository_with_two_iris_versions();
    composite(
        repo.path(),
        "chooser",
        "kind = \"bandit\"\nvariants = [\"iris_logreg@1\", \"iris_logreg@2\"]\n",
    );
    let state_dir = tempfile::tempdir().unwrap();
    let with_state = || {
        let mut config = ServerConfig::new(repo.path());
        config.state_dir = Some(state_dir.path().to_owned());
        config
    };
    let server = TestServer::start(with_state()).await;
    let request = oracle("iris_logreg", "request.json");
    let mut chosen = BTreeMap::<String, u32>::new();
    for i in 0..200 {
        let (status, answer) = server.post("/v2/models/chooser/infer", &request).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let id = answer["parameters"]["feedback_id"]
            .as_str()
            .expect("a bandit answer carries a feedback id")
            .to_owned();
        let variant = answer["parameters"]["variant"].as_str().unwrap().to_owned();
        // Version 2 always pays, version 1 never does.
        let reward = if variant == "iris_logreg@2" { 1.0 } else { 0.0 };
        let (status, body) = server
            .post(
                "/v2/models/chooser/feedback",
                &json!({"id": id, "reward": reward}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["variant"], variant.as_str());
        if i >= 150 {
            *chosen.entry(variant).or_default() += 1;
        }
    }
    assert!(
        chosen.get("iris_logreg@2").copied().unwrap_or(0) >= 40,
        "{chosen:?}"
    );

    // A caller's own request id is kept; feedback is checked: made-up and caller-chosen ids
    // are refused, and an id counts once.
    let mut mine = request.clone();
    mine["id"] = json!("order-42");
    let (_, answer) = server.post("/v2/models/chooser/infer", &mine).await;
    assert_eq!(answer["id"], "order-42");
    let minted = answer["parameters"]["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, kept) = server.post("/v2/models/chooser/infer", &request).await;
    let kept_for_later = kept["parameters"]["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (body, words) in [
        (
            json!({"id": minted, "reward": 2}),
            vec!["reward 2", "0 to 1"],
        ),
        (
            json!({"id": "order-42", "reward": 1}),
            vec!["'order-42'", "was not issued by this server"],
        ),
        (json!({"reward": 1}), vec!["missing field `id`"]),
    ] {
        let (status, answer) = server.post("/v2/models/chooser/feedback", &body).await;
        assert_client_error(status, &answer, &words);
    }
    let once = json!({"id": minted, "reward": 1});
    let (status, _) = server.post("/v2/models/chooser/feedback", &once).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = server.post("/v2/models/chooser/feedback", &once).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("rewarded already")
    );
    let (status, answer) = server
        .post(
            "/v2/models/iris_logreg/feedback",
            &json!({"id": "x", "reward": 1}),
        )
        .await;
    assert_client_error(status, &answer, &["not a bandit"]);

    let (_, stats) = server.get("/v2/models/chooser/stats").await;
    let before = stats["model_stats"][0]["composite"]["variants"].clone();
    assert_eq!(
        before
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["rewarded"].as_u64().unwrap())
            .sum::<u64>(),
        201
    );
    server.stop().await;

    // The state file outlives the server (written when the bandit is dropped, or each second),
    // in the state directory, not in the model repository.
    let state = state_dir.path().join("chooser/bandit-state.json");
    for _ in 0..60 {
        if state.is_file() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = TestServer::start(with_state()).await;
    let (_, stats) = server.get("/v2/models/chooser/stats").await;
    let after = &stats["model_stats"][0]["composite"]["variants"];
    for (b, a) in before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
    {
        assert_eq!(b["rewarded"], a["rewarded"], "{before} vs {after}");
        assert_eq!(b["beta"], a["beta"]);
    }
    assert!(!repo.path().join("chooser/bandit-state.json").exists());
    // The feedback key is kept in the state directory: an answer's id outlives a restart.
    let (status, answer) = server
        .post(
            "/v2/models/chooser/feedback",
            &json!({"id": kept_for_later, "reward": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_composite_waits_for_its_targets_and_reports_bad_specs() {
    let repo = temp_repository();
    composite(
        repo.path(),
        "later",
        "kind = \"split\"\nvariants = { \"arrives_later\" = 1 }\n",
    );
    composite(
        repo.path(),
        "typo",
        "kind = \"split\"\nvariant = { \"iris_logreg\" = 1 }\n",
    );
    composite(
        repo.path(),
        "mixed",
        "kind = \"split\"\nvariants = { \"iris_logreg\" = 1, \"digits_mlp\" = 1 }\n",
    );
    // A bandit may not place its state outside the state directory.
    for (name, file) in [("escape", "../../escape.json"), ("absolute", "/tmp/x.json")] {
        let toml = format!(
            "kind = \"bandit\"\nvariants = [\"iris_logreg\", \"iris_logreg@1\"]\nstate_file = \"{file}\"\n"
        );
        composite(repo.path(), name, &toml);
    }
    let mut config = ServerConfig::new(repo.path());
    config.strict_readiness = false;
    config.model_control = ModelControl::Poll {
        interval: Duration::from_millis(50),
    };
    let server = TestServer::start(config).await;
    let (_, index) = server.post("/v2/repository/index", &json!({})).await;
    let reason = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["reason"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    assert!(
        reason("later").contains("'arrives_later' is not ready"),
        "{index}"
    );
    assert!(
        reason("typo").contains("unknown field `variant`"),
        "{index}"
    );
    assert!(reason("mixed").contains("take different inputs"), "{index}");
    for name in ["escape", "absolute"] {
        assert!(reason(name).contains("must be a file name"), "{index}");
    }

    // The target arrives: the composite loads at the next look.
    std::fs::create_dir_all(repo.path().join("arrives_later/1")).unwrap();
    std::fs::copy(
        repo.path().join("iris_logreg/1/model.onnx"),
        repo.path().join("arrives_later/1/model.onnx"),
    )
    .unwrap();
    let request = oracle("iris_logreg", "request.json");
    let mut ok = false;
    for _ in 0..200 {
        let (status, _) = server.post("/v2/models/later/infer", &request).await;
        if status == StatusCode::OK {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ok, "the composite never loaded");
    server.stop().await;
}

#[tokio::test]
async fn an_ensemble_runs_a_pipeline_and_combines_models() {
    let repo = repository_with_two_iris_versions();
    write_test_model(repo.path(), "double", 1, 0);
    composite(
        repo.path(),
        "quadruple",
        r#"kind = "ensemble"
outputs = ["four_x"]
[[step]]
model = "double"
inputs = { x = "two_x" }
outputs = { y = "four_x" }
[[step]]
model = "double"
inputs = { x = "x" }
outputs = { y = "two_x" }
"#,
    );
    composite(
        repo.path(),
        "committee",
        r#"kind = "ensemble"
outputs = ["label", "probabilities"]
[[step]]
model = "iris_logreg@1"
inputs = { input = "features" }
outputs = { label = "l1", probabilities = "p1" }
[[step]]
model = "iris_logreg@2"
inputs = { input = "features" }
outputs = { label = "l2", probabilities = "p2" }
[[combine]]
op = "vote"
inputs = ["l1", "l2"]
output = "label"
[[combine]]
op = "mean"
inputs = ["p1", "p2"]
output = "probabilities"
"#,
    );
    let server = TestServer::start(ServerConfig::new(repo.path())).await;

    let rows = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 0.5]}]});
    let (status, answer) = server.post("/v2/models/quadruple/infer", &rows).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"][0]["name"], "four_x");
    assert_eq!(answer["outputs"][0]["data"], json!([4.0, 8.0, 12.0, 2.0]));
    let (_, meta) = server.get("/v2/models/quadruple").await;
    assert_eq!(meta["platform"], "ensemble");
    assert_eq!(meta["inputs"][0]["name"], "x");
    assert_eq!(meta["outputs"][0]["name"], "four_x");
    // The step model counted both calls.
    let (_, stats) = server.get("/v2/models/double/stats").await;
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["success"]["count"],
        2
    );

    let expected = oracle("iris_logreg", "expected.json");
    let mut request = oracle("iris_logreg", "request.json");
    request["inputs"][0]["name"] = json!("features");
    let (status, answer) = server.post("/v2/models/committee/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"][0]["name"], "label");
    assert_eq!(answer["outputs"][0]["data"], expected["outputs"][0]["data"]);
    let probabilities = answer["outputs"][1]["data"].as_array().unwrap();
    let want = expected["outputs"][1]["data"].as_array().unwrap();
    for (p, w) in probabilities.iter().zip(want) {
        assert!((p.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-5);
    }
    // Outputs can be asked for by name, and a wrong input is named.
    request["outputs"] = json!([{"name": "probabilities"}]);
    let (_, answer) = server.post("/v2/models/committee/infer", &request).await;
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 1);
    request["inputs"][0]["name"] = json!("input");
    let (status, answer) = server.post("/v2/models/committee/infer", &request).await;
    assert_client_error(status, &answer, &["features"]);
    let (_, config) = server.get("/v2/models/committee/config").await;
    assert_eq!(
        config["parameters"]["composite"]["combine"][0]["op"],
        "vote"
    );
    server.stop().await;
}
