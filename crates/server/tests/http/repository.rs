//! The repository: index, failed models reported beside healthy ones, version policies and
//! labels, and explicit load/unload.

use ferroserve_server::{ModelControl, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, assert_client_error, oracle, temp_repository};

#[tokio::test]
async fn index_lists_every_version_with_its_state() {
    let server = TestServer::examples().await;
    let (status, body) = server.post("/v2/repository/index", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([
            {"name": "cnn", "version": "1", "state": "READY", "reason": ""},
            {"name": "digits_mlp", "version": "1", "state": "READY", "reason": ""},
            {"name": "iris_logreg", "version": "1", "state": "READY", "reason": ""},
        ])
    );
    // An empty body is accepted too.
    let r = server
        .client
        .post(server.url("/v2/repository/index"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_broken_model_is_reported_and_the_others_serve() {
    let repo = temp_repository();
    let garbage = repo.path().join("garbage/1");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("model.onnx"), b"this is not a protobuf").unwrap();
    let bad_config = repo.path().join("bad_config");
    std::fs::create_dir_all(bad_config.join("1")).unwrap();
    std::fs::copy(
        repo.path().join("iris_logreg/1/model.onnx"),
        bad_config.join("1/model.onnx"),
    )
    .unwrap();
    std::fs::write(bad_config.join("model.toml"), "max_batch = 4\n").unwrap();
    let empty = repo.path().join("no_versions");
    std::fs::create_dir_all(&empty).unwrap();

    // Readiness that waits for the start-up load only: the broken models never get ready.
    let mut config = ServerConfig::new(repo.path());
    config.strict_readiness = false;
    let server = TestServer::start(config).await;
    let (_, index) = server.post("/v2/repository/index", &json!({})).await;
    let row = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("garbage")["state"], "UNAVAILABLE");
    let reason = row("garbage")["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("garbage/1/model.onnx"), "{reason}");
    assert_eq!(row("bad_config")["state"], "UNAVAILABLE");
    assert!(
        row("bad_config")["reason"]
            .as_str()
            .unwrap()
            .contains("max_batch")
    );
    assert!(
        row("no_versions")["reason"]
            .as_str()
            .unwrap()
            .contains("no version directory")
    );

    let (status, body) = server
        .post(
            "/v2/models/garbage/infer",
            &oracle("iris_logreg", "request.json"),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("model.onnx"));
    let (status, _) = server.get("/v2/models/garbage/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (status, _) = server
        .post(
            "/v2/models/iris_logreg/infer",
            &oracle("iris_logreg", "request.json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, ready_only) = server
        .post("/v2/repository/index", &json!({"ready": true}))
        .await;
    assert_eq!(ready_only.as_array().unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn strict_readiness_waits_for_every_model() {
    let repo = temp_repository();
    std::fs::create_dir_all(repo.path().join("garbage/1")).unwrap();
    std::fs::write(repo.path().join("garbage/1/model.onnx"), b"nope").unwrap();
    let mut config = ServerConfig::new(repo.path());
    config.strict_readiness = true;
    // Not ready with strict readiness, so start a lenient server over the same repository first
    // to know loading is done, then check the strict one by hand.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ferroserve_server::serve(
        config,
        listener,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let mut live = false;
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://{addr}/v2/models/iris_logreg/ready"))
            .send()
            .await
        {
            if r.status() == StatusCode::OK {
                live = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(live);
    // Loading is sequential by name: once 'iris_logreg' is ready, 'garbage' has been tried.
    let r = client
        .get(format!("http://{addr}/v2/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn version_policy_and_labels_address_versions() {
    let repo = temp_repository();
    let iris = repo.path().join("iris_logreg");
    for v in ["2", "3"] {
        std::fs::create_dir_all(iris.join(v)).unwrap();
        std::fs::copy(iris.join("1/model.onnx"), iris.join(v).join("model.onnx")).unwrap();
    }
    std::fs::write(
        iris.join("model.toml"),
        "version_policy = { latest = 2 }\nlabels = { stable = 2, canary = 3 }\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let (_, meta) = server.get("/v2/models/iris_logreg").await;
    assert_eq!(meta["versions"], json!(["2", "3"]));
    let request = oracle("iris_logreg", "request.json");
    for (path, version) in [
        ("/v2/models/iris_logreg/infer", "3"),
        ("/v2/models/iris_logreg/versions/2/infer", "2"),
        ("/v2/models/iris_logreg/versions/stable/infer", "2"),
        ("/v2/models/iris_logreg/versions/canary/infer", "3"),
    ] {
        let (status, body) = server.post(path, &request).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["model_version"], version, "{path}");
    }
    let (status, body) = server
        .post("/v2/models/iris_logreg/versions/1/infer", &request)
        .await;
    assert_client_error(status, &body, &["'1'", "[2, 3]"]);
    // `/labels/{l}` names labels only, on every per-version path.
    for (path, version) in [
        ("/v2/models/iris_logreg/labels/stable/infer", "2"),
        ("/v2/models/iris_logreg/labels/canary/infer", "3"),
    ] {
        let (status, body) = server.post(path, &request).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["model_version"], version, "{path}");
    }
    for path in ["", "/ready", "/config", "/stats"] {
        let (status, body) = server
            .get(&format!("/v2/models/iris_logreg/labels/canary{path}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, body) = server
        .post("/v2/models/iris_logreg/labels/3/infer", &request)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_client_error(status, &body, &["no label '3'", "canary", "stable"]);
    let (status, body) = server.get("/v2/repository/models/iris_logreg/labels").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"labels": {"canary": 3, "stable": 2}}));
    // Moving labels needs model control.
    let (status, body) = server
        .post(
            "/v2/repository/models/iris_logreg/labels",
            &json!({"labels": {"stable": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_client_error(
        status,
        &body,
        &["--model-control explicit or --model-control poll"],
    );
    let (_, config) = server.get("/v2/models/iris_logreg/config").await;
    assert_eq!(
        config["version_policy"],
        json!({"latest": {"num_versions": 2}})
    );
    server.stop().await;
}

#[tokio::test]
async fn load_and_unload_need_explicit_model_control() {
    let server = TestServer::examples().await;
    for action in ["load", "unload"] {
        let (status, body) = server
            .post(
                &format!("/v2/repository/models/iris_logreg/{action}"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_client_error(status, &body, &["--model-control explicit"]);
    }
    server.stop().await;
}

#[tokio::test]
async fn explicit_unload_and_load() {
    let repo = temp_repository();
    let mut config = ServerConfig::new(repo.path());
    config.model_control = ModelControl::Explicit;
    let server = TestServer::start(config).await;
    let request = oracle("iris_logreg", "request.json");

    let (status, _) = server
        .post("/v2/repository/models/iris_logreg/unload", &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get("/v2/models/iris_logreg/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = server.post("/v2/models/iris_logreg/infer", &request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("unloaded"));
    let (_, index) = server.post("/v2/repository/index", &json!({})).await;
    assert!(index.as_array().unwrap().contains(
        &json!({"name": "iris_logreg", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"})
    ));

    let (status, _) = server
        .post("/v2/repository/models/iris_logreg/load", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.post("/v2/models/iris_logreg/infer", &request).await;
    assert_eq!(status, StatusCode::OK);

    // A model added to the directory after start-up can be loaded.
    std::fs::create_dir_all(repo.path().join("late/1")).unwrap();
    std::fs::copy(
        repo.path().join("iris_logreg/1/model.onnx"),
        repo.path().join("late/1/model.onnx"),
    )
    .unwrap();
    let (status, _) = server
        .post("/v2/repository/models/late/load", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.post("/v2/models/late/infer", &request).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = server
        .post("/v2/repository/models/missing/load", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_client_error(status, &body, &["'missing'"]);
    let (status, body) = server
        .post("/v2/repository/models/../load", &json!({}))
        .await;
    assert!(status.is_client_error(), "{body}");
    let (status, body) = server
        .post(
            "/v2/repository/models/late/load",
            &json!({"parameters": {"config": "{}"}}),
        )
        .await;
    assert_client_error(status, &body, &["config", "not supported"]);

    // Label moves: checked, and applied at once.
    let (status, body) = server
        .post(
            "/v2/repository/models/late/labels",
            &json!({"labels": {"stable": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post("/v2/models/late/labels/stable/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (bad, words) in [
        (
            json!({"labels": {"stable": 2}}),
            vec!["version 2", "not loaded", "[1]"],
        ),
        (json!({"labels": {"7": 1}}), vec!["'7'", "not a number"]),
        (json!({"stable": 1}), vec!["unknown field", "expected"]),
    ] {
        let (status, body) = server.post("/v2/repository/models/late/labels", &bad).await;
        assert_client_error(status, &body, &words);
    }
    server.stop().await;
}
