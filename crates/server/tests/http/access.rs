//! Access control over the wire: a key file with an inference key limited to one model, a
//! read key and an admin key; every endpoint class over HTTP and gRPC with no key, a wrong
//! key, a key without the scope and a key with it; health open; the key file changed while
//! the server runs.

use std::path::Path;
use std::time::Duration;

use ferroserve_server::access::Scope;
use ferroserve_server::access::keys::{KeyEntry, entry_toml, generate_key};
use ferroserve_server::access::rate::Rate;
use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::{ModelControl, ServerConfig};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

use crate::grpc::{client, iris_request};
use crate::kit::{TestServer, oracle, temp_repository};

/// Keys by role, as their plain text.
struct Keys {
    iris: String,
    reader: String,
    admin: String,
}

/// Writes a key file: `iris` (infer on iris_logreg only), `reader` (read), `admin`.
fn write_keys(path: &Path) -> Keys {
    let mut text = String::new();
    let mut add = |name: &str, scopes: &[Scope], models: Option<&[String]>| {
        let (key, hash) = generate_key();
        let mut entry = KeyEntry::new(name, hash, scopes);
        if let Some(models) = models {
            entry = entry.with_models(models);
        }
        text.push_str(&entry_toml(&entry));
        key
    };
    let iris_only = ["iris_logreg".to_owned()];
    let keys = Keys {
        iris: add("iris-client", &[Scope::Infer], Some(&iris_only)),
        reader: add("dashboards", &[Scope::Read], None),
        admin: add("operator", &[Scope::Admin], None),
    };
    std::fs::write(path, text).unwrap();
    keys
}

/// A server on a copy of the example repository (explicit model control) with the keys of
/// [`write_keys`]; the folders live as long as the returned guards.
struct Keyed {
    server: TestServer,
    keys: Keys,
    keys_file: std::path::PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn start() -> Keyed {
    let repo = temp_repository();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.toml");
    let keys = write_keys(&keys_file);
    let mut config = ServerConfig::new(repo.path());
    config.api_keys = Some(keys_file.clone());
    config.model_control = ModelControl::Explicit;
    let server = TestServer::start(config).await;
    Keyed {
        server,
        keys,
        keys_file,
        _dirs: (repo, dir),
    }
}

/// Sends `method path` with `key` (as a bearer token) and a JSON body for POST.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let url = server.url(path);
    let mut request = match method {
        "GET" => server.client.get(url),
        _ => server.client.post(url).json(&body_for(path)),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn body_for(path: &str) -> serde_json::Value {
    if path.ends_with("/infer") {
        oracle("iris_logreg", "request.json")
    } else if path.ends_with("/labels") {
        json!({"labels": {}})
    } else if path.ends_with(":predict") {
        json!({"instances": [[5.1, 3.5, 1.4, 0.2]]})
    } else {
        json!({})
    }
}

#[tokio::test]
async fn every_endpoint_class_needs_its_scope_over_http() {
    let k = start().await;
    let (server, keys) = (&k.server, &k.keys);

    // method path, the key that may, a key that may not
    let table = "
        GET /v2 iris reader
        GET /v2/models/iris_logreg iris reader
        GET /v2/models/iris_logreg/ready iris admin
        POST /v2/models/iris_logreg/infer iris reader
        POST /v1/models/iris_logreg:predict iris admin
        GET /v2/models/iris_logreg/stats reader iris
        GET /v2/models/stats reader iris
        GET /metrics reader iris
        GET /dashboard reader admin
        POST /v2/repository/index reader iris
        POST /v2/repository/models/iris_logreg/load admin reader
        POST /v2/repository/models/iris_logreg/labels admin iris
    ";
    let key = |role: &str| match role {
        "iris" => keys.iris.as_str(),
        "reader" => keys.reader.as_str(),
        _ => keys.admin.as_str(),
    };
    let cases = table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            (f[0], f[1], key(f[2]), key(f[3]))
        });
    for (method, path, allowed, refused) in cases {
        let what = format!("{method} {path}");
        let r = call(server, method, path, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}: no key");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"ferroserve\"",
            "{what}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("needs an API key"),
            "{what}: {body}"
        );

        let r = call(server, method, path, Some("fsk_not-a-key")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}: wrong key");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );

        let r = call(server, method, path, Some(refused)).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{what}: key without the scope"
        );
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains("insufficient_scope"),
            "{what}: {challenge}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("lacks the"),
            "{what}: {body}"
        );

        let r = call(server, method, path, Some(allowed)).await;
        assert!(
            r.status().is_success(),
            "{what}: allowed key got {}",
            r.status()
        );
    }

    // Health stays open for probes.
    for path in ["/v2/health/live", "/v2/health/ready"] {
        assert_eq!(
            call(server, "GET", path, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    // `x-api-key` works as well as a bearer token.
    let r = server
        .client
        .get(server.url("/v2/models/iris_logreg"))
        .header("x-api-key", &keys.iris)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A key limited to iris_logreg may not use another model, by any path or protocol.
    for (method, path) in [
        ("GET", "/v2/models/digits_mlp"),
        ("GET", "/v2/models/digits_mlp/versions/1/ready"),
        ("POST", "/v2/models/digits_mlp/infer"),
        ("POST", "/v1/models/digits_mlp:predict"),
        ("GET", "/v1/models/digits_mlp/metadata"),
        ("GET", "/v2/models/digits%5Fmlp"),
    ] {
        let r = call(server, method, path, Some(&keys.iris)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("may not use model 'digits_mlp'"),
            "{method} {path}: {body}"
        );
    }
    k.server.stop().await;
}

/// A gRPC request with `key` as its bearer token.
fn with<T>(key: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        let value = format!("Bearer {key}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::test]
async fn every_method_class_needs_its_scope_over_grpc() {
    let k = start().await;
    let (server, keys) = (&k.server, &k.keys);
    let mut c = client(server).await;
    // Open: liveness, readiness, grpc.health.v1.
    assert!(
        c.server_live(with(None, proto::ServerLiveRequest {}))
            .await
            .is_ok()
    );
    assert!(
        c.server_ready(with(None, proto::ServerReadyRequest {}))
            .await
            .is_ok()
    );

    // Inference: no key, a wrong key, a key without `infer`, the iris key on another model.
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map(|_| ()).unwrap_err().code()
    }
    assert_eq!(
        code(c.model_infer(with(None, iris_request(true))).await),
        Code::Unauthenticated
    );
    let wrong = with(Some("fsk_nope"), iris_request(true));
    assert_eq!(code(c.model_infer(wrong).await), Code::Unauthenticated);
    let reader = with(Some(&keys.reader), iris_request(true));
    assert_eq!(code(c.model_infer(reader).await), Code::PermissionDenied);
    let mut other = iris_request(true);
    other.model_name = "digits_mlp".into();
    let denied = c
        .model_infer(with(Some(&keys.iris), other))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("may not use model 'digits_mlp'"),
        "{denied:?}"
    );
    let answer = c
        .model_infer(with(Some(&keys.iris), iris_request(true)))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().model_name, "iris_logreg");

    // Per-model metadata, readiness and config follow the model list too.
    let metadata = |name: &str| proto::ModelMetadataRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        c.model_metadata(with(Some(&keys.iris), metadata("iris_logreg")))
            .await
            .is_ok()
    );
    let r = c
        .model_metadata(with(Some(&keys.iris), metadata("digits_mlp")))
        .await;
    assert_eq!(code(r), Code::PermissionDenied);
    let ready = proto::ModelReadyRequest {
        name: "digits_mlp".into(),
        version: String::new(),
    };
    assert_eq!(
        code(c.model_ready(with(Some(&keys.iris), ready)).await),
        Code::PermissionDenied
    );

    // Read and admin methods.
    let index = || proto::RepositoryIndexRequest {
        repository_name: String::new(),
        ready: false,
    };
    assert_eq!(
        code(c.repository_index(with(Some(&keys.iris), index())).await),
        Code::PermissionDenied
    );
    assert!(
        c.repository_index(with(Some(&keys.reader), index()))
            .await
            .is_ok()
    );
    let load = || proto::RepositoryModelLoadRequest {
        model_name: "iris_logreg".into(),
        ..Default::default()
    };
    assert_eq!(
        code(
            c.repository_model_load(with(Some(&keys.reader), load()))
                .await
        ),
        Code::PermissionDenied
    );
    assert!(
        c.repository_model_load(with(Some(&keys.admin), load()))
            .await
            .is_ok()
    );
    k.server.stop().await;
}

#[tokio::test]
async fn keys_added_and_removed_apply_without_a_restart() {
    let k = start().await;
    let (server, keys, keys_file) = (&k.server, &k.keys, &k.keys_file);
    let ready = "/v2/models/iris_logreg/ready";
    assert_eq!(
        call(server, "GET", ready, Some(&keys.iris)).await.status(),
        StatusCode::OK
    );

    // The file is replaced by one with only a new key: the new key works, the old ones stop.
    let (new_key, hash) = generate_key();
    std::fs::write(
        keys_file,
        entry_toml(&KeyEntry::new("new", hash, &[Scope::Infer])),
    )
    .unwrap();
    let mut applied = false;
    for _ in 0..100 {
        if call(server, "GET", ready, Some(&new_key)).await.status() == StatusCode::OK {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(applied, "the new key was not accepted within 5 s");
    let old = call(server, "GET", ready, Some(&keys.iris)).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);

    // A broken file is refused and the keys in force stay.
    std::fs::write(keys_file, "[[key]]\nname = \"x\"\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        call(server, "GET", ready, Some(&new_key)).await.status(),
        StatusCode::OK
    );
    k.server.stop().await;
}

/// A key over its rate gets 429 with `Retry-After` (gRPC RESOURCE_EXHAUSTED) once its burst is
/// spent, while other keys and the health probes carry on; refusals are counted by key on
/// `/metrics`. On a server without keys the default rate applies per client address.
#[tokio::test]
async fn rates_are_limited_per_key_and_per_address() {
    let repo = temp_repository();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.toml");
    let (slow, slow_hash) = generate_key();
    let (fast, fast_hash) = generate_key();
    // One token per 5 s: the burst of 3 is all a quick run of requests gets.
    let slow_rate = Rate::new(0.2, Some(3.0)).unwrap();
    let text = entry_toml(&KeyEntry::new("slow", slow_hash, &[Scope::Infer]).with_rate(slow_rate))
        + &entry_toml(&KeyEntry::new(
            "fast",
            fast_hash,
            &[Scope::Infer, Scope::Read],
        ));
    std::fs::write(&keys_file, text).unwrap();
    let mut config = ServerConfig::new(repo.path());
    config.api_keys = Some(keys_file);
    let server = TestServer::start(config).await;
    let infer = "/v2/models/iris_logreg/infer";

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = call(&server, "POST", infer, Some(&slow)).await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=5).contains(&retry), "Retry-After {retry}");
            let body: serde_json::Value = r.json().await.unwrap();
            let error = body["error"].as_str().unwrap();
            assert!(
                error.contains("key 'slow' is over its rate limit"),
                "{error}"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    // gRPC draws on the same bucket.
    let mut c = client(&server).await;
    let status = c
        .model_infer(with(Some(&slow), iris_request(true)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Another key, and the health probes, are not held back.
    for _ in 0..10 {
        assert_eq!(
            call(&server, "POST", infer, Some(&fast)).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            call(&server, "GET", "/v2/health/ready", None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let bearer = format!("Bearer {fast}");
    let metrics = server
        .get_with("/metrics", &[("authorization", &bearer)])
        .await;
    let metrics = metrics.text().await.unwrap();
    let line = "ferroserve_access_refusals_total{key=\"slow\",reason=\"rate_limited\"} 4";
    assert!(metrics.contains(line), "{metrics}");
    server.stop().await;

    // Without keys, each client address has the default rate.
    let mut config = ServerConfig::new(repo.path());
    config.default_rate = Some(Rate::new(0.2, Some(2.0)).unwrap());
    let server = TestServer::start(config).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(call(&server, "POST", infer, None).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let body: serde_json::Value = call(&server, "POST", infer, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("client 127.0.0.1"),
        "{body}"
    );
    server.stop().await;
}

/// Without keys, a web page cannot drive management: a form's content type is refused, a
/// foreign `Origin` or a `Host` that is someone else's name (DNS rebinding) is 403, and bytes
/// after a JSON body are an error; the same calls from this server's own names work.
#[tokio::test]
async fn pages_on_other_sites_cannot_drive_management() {
    let repo = temp_repository();
    let mut config = ServerConfig::new(repo.path());
    config.model_control = ModelControl::Explicit;
    config.allowed_hosts = vec!["models.internal".into()];
    let server = TestServer::start(config).await;
    let labels = "/v2/repository/models/iris_logreg/labels";
    let post = |path: &str, body: &str, headers: &[(&str, &str)]| {
        let mut request = server.client.post(server.url(path)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let json = ("content-type", "application/json");

    // The attack as a plain HTML form would send it.
    let form = [
        ("content-type", "text/plain"),
        ("origin", "http://evil.example"),
    ];
    let r = post(labels, r#"{"labels": {"stable": 1}}"#, &form)
        .await
        .unwrap();
    let (status, body) = crate::kit::into_json(r).await;
    crate::kit::assert_client_error(status, &body, &["Content-Type", "text/plain"]);
    // A foreign Origin, even with a JSON body.
    let r = post(
        labels,
        r#"{"labels": {}}"#,
        &[json, ("origin", "http://evil.example")],
    )
    .await
    .unwrap();
    let (status, body) = crate::kit::into_json(r).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Origin 'http://evil.example'")
    );
    // DNS rebinding: the attacker's name in Host.
    let load = "/v2/repository/models/iris_logreg/load";
    let r = post(load, "{}", &[json, ("host", "attacker.example:8000")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = server
        .get_with("/dashboard", &[("host", "attacker.example")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Bytes after the JSON document.
    let r = post(labels, r#"{"labels": {}} <form>"#, &[json])
        .await
        .unwrap();
    let (status, body) = crate::kit::into_json(r).await;
    crate::kit::assert_client_error(status, &body, &["trailing characters"]);

    // This server's own names, its own origin, and allowed names work.
    let own = format!("http://{}", server.addr);
    let r = post(
        labels,
        r#"{"labels": {}}"#,
        &[json, ("origin", own.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for host in ["localhost", "models.internal:8000"] {
        let r = post(load, "", &[("host", host)]).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    // The three cross-site refusals above are counted.
    let metrics = server.text("/metrics").await;
    let line = "ferroserve_access_refusals_total{key=\"\",reason=\"cross_site\"} 3";
    assert!(metrics.contains(line), "{metrics}");
    // Inference is not a browser-guarded call.
    let r = server
        .client
        .post(server.url("/v2/models/iris_logreg/infer"))
        .header("origin", "http://evil.example")
        .json(&oracle("iris_logreg", "request.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}
