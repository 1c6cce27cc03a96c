//! `ferroserve lambda` against a local emulation of the Lambda runtime API: the process pulls
//! events with `GET /runtime/invocation/next` and posts answers and errors back, as it would
//! inside Lambda. The emulation serves a fixed list of events, one per `next`, and records
//! what comes back.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::common::root;

/// What the function posted back for one invocation.
#[derive(Debug, Clone)]
enum Outcome {
    Response(Value),
    Error { kind: String, report: Value },
}

#[derive(Default)]
struct Emulator {
    events: Mutex<VecDeque<(String, Vec<u8>)>>,
    outcomes: Mutex<Vec<(String, Outcome)>>,
    init_error: Mutex<Option<(String, Value)>>,
    next_calls: Mutex<usize>,
    arrived: tokio::sync::Notify,
}

async fn next(State(emulator): State<Arc<Emulator>>) -> impl IntoResponse {
    *emulator.next_calls.lock().unwrap() += 1;
    loop {
        let event = emulator.events.lock().unwrap().pop_front();
        match event {
            Some((id, body)) => {
                let mut headers = HeaderMap::new();
                headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
                headers.insert(
                    "lambda-runtime-deadline-ms",
                    "4102444800000".parse().unwrap(),
                );
                return (headers, body);
            }
            // Like Lambda: `next` waits until there is an invocation.
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn response(
    State(emulator): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    emulator
        .outcomes
        .lock()
        .unwrap()
        .push((id, Outcome::Response(value)));
    emulator.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

/// The error type the function declared in its header.
fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn error(
    State(emulator): State<Arc<Emulator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let kind = error_type(&headers);
    let report = serde_json::from_slice(&body).unwrap();
    emulator
        .outcomes
        .lock()
        .unwrap()
        .push((id, Outcome::Error { kind, report }));
    emulator.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(
    State(emulator): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let kind = error_type(&headers);
    *emulator.init_error.lock().unwrap() = Some((kind, serde_json::from_slice(&body).unwrap()));
    emulator.arrived.notify_waiters();
    StatusCode::ACCEPTED
}

/// Serves the runtime API on a free loopback port; its address and the recorder.
async fn emulate(events: Vec<Value>) -> (String, Arc<Emulator>) {
    let emulator = Arc::new(Emulator::default());
    for (i, event) in events.into_iter().enumerate() {
        let body = match event {
            Value::String(raw) => raw.into_bytes(),
            event => serde_json::to_vec(&event).unwrap(),
        };
        emulator
            .events
            .lock()
            .unwrap()
            .push_back((format!("req-{i}"), body));
    }
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(Arc::clone(&emulator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, emulator)
}

fn spawn_function(api: &str, repository: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .arg("lambda")
        .args(extra)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("FERROSERVE_MODEL_REPOSITORY", repository)
        .current_dir(root())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s) until `count` outcomes are in; them, by request id order.
async fn outcomes(emulator: &Emulator, count: usize) -> Vec<(String, Outcome)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = emulator.arrived.notified();
        {
            let outcomes = emulator.outcomes.lock().unwrap();
            if outcomes.len() >= count {
                let mut outcomes = outcomes.clone();
                outcomes.sort_by_key(|(id, _)| id[4..].parse::<usize>().unwrap());
                return outcomes;
            }
        }
        assert!(
            tokio::time::timeout_at(deadline, arrived).await.is_ok(),
            "only {} of {count} invocations answered",
            emulator.outcomes.lock().unwrap().len()
        );
    }
}

fn iris_v2() -> Value {
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]})
}

fn answer(outcome: &Outcome) -> &Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error { kind, report } => panic!("an error: {kind} {report}"),
    }
}

#[test]
fn lambda_answers_direct_and_http_events_like_the_server() {
    let repository = tempfile::tempdir().unwrap();
    let model = repository.path().join("iris_logreg");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::copy(
        root().join("examples/models/iris_logreg/1/model.onnx"),
        model.join("1/model.onnx"),
    )
    .unwrap();
    crate::common::block_on(async {
        let events = vec![
            // 0: a direct V2 invocation, to the only model.
            iris_v2(),
            // 1: a direct TF Serving invocation naming the model and version.
            json!({"model_name": "iris_logreg", "model_version": "1", "instances": [[5.1, 3.5, 1.4, 0.2]]}),
            // 2: a function URL (payload 2.0) POST to the V2 route.
            json!({
                "version": "2.0", "rawPath": "/v2/models/iris_logreg/infer", "rawQueryString": "",
                "headers": {"content-type": "application/json"},
                "requestContext": {"http": {"method": "POST", "sourceIp": "203.0.113.9"}},
                "body": iris_v2().to_string(), "isBase64Encoded": false,
            }),
            // 3: a REST API (payload 1.0) GET of readiness.
            json!({
                "resource": "/{proxy+}", "path": "/v2/health/ready", "httpMethod": "GET",
                "headers": null, "queryStringParameters": null,
                "requestContext": {"identity": {"sourceIp": "203.0.113.9"}}, "body": null,
            }),
            // 4: a direct invocation with a wrong input name: refused with the server's words.
            json!({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}),
            // 5: a function URL request for a model that does not exist: a 404 answer.
            json!({
                "version": "2.0", "rawPath": "/v2/models/missing", "rawQueryString": "",
                "headers": {}, "requestContext": {"http": {"method": "GET"}}, "isBase64Encoded": false,
            }),
            // 6: not JSON.
            Value::String("not json".into()),
            // 7: an ALB request, its body base64.
            json!({
                "path": "/v2/models/iris_logreg/infer", "httpMethod": "POST",
                "headers": {"content-type": "application/json"},
                "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:x"}},
                "body": base64_of(iris_v2().to_string().as_bytes()), "isBase64Encoded": true,
            }),
        ];
        let count = events.len();
        let (api, emulator) = emulate(events).await;
        let mut function = spawn_function(&api, repository.path(), &[]);
        let outcomes = outcomes(&emulator, count).await;
        let _ = function.kill();
        let _ = function.wait();

        let direct = answer(&outcomes[0].1);
        assert_eq!(direct["model_name"], "iris_logreg");
        let label = direct["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "label")
            .unwrap();
        assert_eq!(label["data"], json!([0]), "{direct}");

        let tf = answer(&outcomes[1].1);
        assert!(tf["predictions"].is_array(), "{tf}");

        let url = answer(&outcomes[2].1);
        assert_eq!(url["statusCode"], 200, "{url}");
        assert_eq!(url["isBase64Encoded"], false);
        let body: Value = serde_json::from_str(url["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["outputs"], direct["outputs"]);
        assert!(
            url["headers"]["content-type"]
                .as_str()
                .unwrap()
                .starts_with("application/json")
        );

        let ready = answer(&outcomes[3].1);
        assert_eq!(ready["statusCode"], 200, "{ready}");

        match &outcomes[4].1 {
            Outcome::Error { kind, report } => {
                assert_eq!(kind, "ferroserve.BadRequest");
                assert_eq!(report["errorType"], "ferroserve.BadRequest");
                let message = report["errorMessage"].as_str().unwrap();
                assert!(message.contains("nope"), "{message}");
            }
            other => panic!("a wrong input was answered: {other:?}"),
        }

        let missing = answer(&outcomes[5].1);
        assert_eq!(missing["statusCode"], 404, "{missing}");
        assert!(missing["body"].as_str().unwrap().contains("missing"));

        match &outcomes[6].1 {
            Outcome::Error { kind, report } => {
                assert_eq!(kind, "ferroserve.InvalidEvent");
                assert!(
                    report["errorMessage"]
                        .as_str()
                        .unwrap()
                        .contains("not a JSON object")
                );
            }
            other => panic!("a non-JSON event was answered: {other:?}"),
        }

        let alb = answer(&outcomes[7].1);
        assert_eq!(alb["statusCode"], 200, "{alb}");
        assert_eq!(alb["statusDescription"], "200 OK");

        // One `next` per invocation, and one more waiting for the ninth.
        assert!(*emulator.next_calls.lock().unwrap() >= count);
    });
}

#[test]
fn lambda_reports_a_model_that_fails_to_load_as_an_init_error() {
    let repository = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repository.path().join("broken/1")).unwrap();
    std::fs::write(
        repository.path().join("broken/1/model.onnx"),
        b"not a model",
    )
    .unwrap();
    crate::common::block_on(async {
        let (api, emulator) = emulate(vec![iris_v2()]).await;
        let mut function = spawn_function(&api, repository.path(), &[]);
        let status = tokio::task::spawn_blocking(move || function.wait().unwrap())
            .await
            .unwrap();
        assert!(!status.success());
        let (kind, report) = emulator
            .init_error
            .lock()
            .unwrap()
            .clone()
            .expect("no init error");
        assert_eq!(kind, "ferroserve.ModelLoad");
        assert!(
            report["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("broken: "),
            "{report}"
        );
        assert_eq!(
            *emulator.next_calls.lock().unwrap(),
            0,
            "asked for work with a broken model"
        );
    });
}

#[test]
fn lambda_direct_invocation_needs_a_model_when_there_are_several() {
    crate::common::block_on(async {
        let (api, emulator) = emulate(vec![iris_v2()]).await;
        let mut function = spawn_function(&api, &root().join("examples/models"), &[]);
        let outcomes = outcomes(&emulator, 1).await;
        let _ = function.kill();
        let _ = function.wait();
        match &outcomes[0].1 {
            Outcome::Error { kind, report } => {
                assert_eq!(kind, "ferroserve.InvalidEvent");
                let message = report["errorMessage"].as_str().unwrap();
                assert!(
                    message.contains("model_name") && message.contains("iris_logreg"),
                    "{message}"
                );
            }
            other => panic!("answered without a model: {other:?}"),
        }
    });
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
