//! What a deployment does to traffic under each version policy: closed-loop clients on V2
//! HTTP, V2 gRPC and TF Serving REST keep sending unversioned requests while versions are
//! added, published broken (a truncated `model.onnx`), fixed, published as an empty directory
//! that fills later (through a file cut short), and removed, with the repository polled. No
//! request may fail, and every answer must come from the version the policy serves for
//! unversioned requests (the newest ready one) while the request was in flight.
//!
//! Every version's model computes `y = version·x`, so even TF Serving's answers, which carry no
//! version, tell which version gave them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::{ModelControl, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, examples, publish, replace_file, scaling_model};

/// The version policies under test, as `model.toml` writes them.
#[derive(Clone, Debug)]
enum Policy {
    Latest(usize),
    All,
    Specific(&'static [u64]),
}

impl Policy {
    fn toml(&self) -> String {
        match self {
            Policy::Latest(n) => format!("version_policy = {{ latest = {n} }}\n"),
            Policy::All => "version_policy = \"all\"\n".to_owned(),
            Policy::Specific(v) => format!("version_policy = {{ specific = {v:?} }}\n"),
        }
    }

    /// The versions served, given which versions on disk would load (the rule the server
    /// must follow): `latest = N` serves the N newest that load, the others every listed one
    /// that loads.
    fn served(&self, disk: &BTreeMap<u64, bool>) -> Vec<u64> {
        let loads = disk.iter().filter(|(_, ok)| **ok).map(|(v, _)| *v);
        let mut served: Vec<u64> = match self {
            Policy::Latest(n) => loads.rev().take(*n).collect(),
            Policy::All => loads.collect(),
            Policy::Specific(wanted) => loads.filter(|v| wanted.contains(v)).collect(),
        };
        served.sort_unstable();
        served
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    V2Http,
    V2Grpc,
    TfRest,
}

/// One answer the clients got: the version that gave it, or why it failed.
struct Answer {
    protocol: Protocol,
    sent: Instant,
    received: Instant,
    outcome: Result<u64, String>,
}

/// A step of the scenario: the version unversioned requests go to, from when its change was
/// made (`changed`) until the next step's change was seen applied.
struct Phase {
    what: &'static str,
    changed: Instant,
    applied: Instant,
    newest: u64,
}

/// What `version`'s answer to `x = [[1, 2]]` is: `y = [[version, 2·version]]`.
fn version_of(y: &[f64]) -> Result<u64, String> {
    match y {
        [a, b] if *a >= 1.0 && a.fract() == 0.0 && *b == 2.0 * a => Ok(*a as u64),
        other => Err(format!("unexpected outputs {other:?}")),
    }
}

async fn ask(
    protocol: Protocol,
    server: &TestServer,
    grpc: &mut GrpcInferenceServiceClient<tonic::transport::Channel>,
) -> Result<u64, String> {
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    match protocol {
        Protocol::V2Http => {
            let body = json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32",
                                          "data": [1.0, 2.0]}]});
            let (status, body) = server.post("/v2/models/m/infer", &body).await;
            if status != StatusCode::OK {
                return Err(format!("{status}: {body}"));
            }
            let version = version_of(&numbers(&body["outputs"][0]["data"]))?;
            if body["model_version"].as_str().and_then(|v| v.parse().ok()) != Some(version) {
                return Err(format!(
                    "model_version {} gave {version}'s answer",
                    body["model_version"]
                ));
            }
            Ok(version)
        }
        Protocol::TfRest => {
            let body = json!({"instances": [[1.0, 2.0]]});
            let (status, body) = server.post("/v1/models/m:predict", &body).await;
            if status != StatusCode::OK {
                return Err(format!("{status}: {body}"));
            }
            version_of(&numbers(&body["predictions"][0]))
        }
        Protocol::V2Grpc => {
            let request = proto::ModelInferRequest {
                model_name: "m".into(),
                inputs: vec![proto::model_infer_request::InferInputTensor {
                    name: "x".into(),
                    datatype: "FP32".into(),
                    shape: vec![1, 2],
                    contents: Some(proto::InferTensorContents {
                        fp32_contents: vec![1.0, 2.0],
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let response = grpc
                .model_infer(request)
                .await
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
                .into_inner();
            let y: Vec<f64> = match response.raw_output_contents.first() {
                Some(raw) => raw
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
                None => response.outputs[0]
                    .contents
                    .as_ref()
                    .map(|c| c.fp32_contents.iter().map(|&v| f64::from(v)).collect())
                    .unwrap_or_default(),
            };
            let version = version_of(&y)?;
            if response.model_version != version.to_string() {
                return Err(format!(
                    "model_version {} gave {version}'s answer",
                    response.model_version
                ));
            }
            Ok(version)
        }
    }
}

/// Waits (up to 20 s) until the model serves exactly `versions`, returning when it did.
async fn until_serving(server: &TestServer, versions: &[u64]) -> Instant {
    let wanted: Vec<String> = versions.iter().map(u64::to_string).collect();
    let mut last = Value::Null;
    for _ in 0..2000 {
        let (_, body) = server.get("/v2/models/m").await;
        if body["versions"] == json!(wanted) {
            return Instant::now();
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw versions {wanted:?} served; last metadata {last}");
}

/// Waits (up to 20 s) until the index reports `version` as not loaded, with a reason.
async fn until_failed(server: &TestServer, version: u64) -> Instant {
    let mut last = Value::Null;
    for _ in 0..2000 {
        let (_, index) = server.post("/v2/repository/index", &json!({})).await;
        let row = index.as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["name"] == "m" && r["version"].as_str() == Some(&*version.to_string()))
        });
        if let Some(row) = row
            && row["state"] == "UNAVAILABLE"
            && !row["reason"].as_str().unwrap_or("").is_empty()
        {
            return Instant::now();
        }
        last = index;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw version {version} reported as failed; last index {last}");
}

async fn deploy_under_load(policy: Policy) {
    let repo = tempfile::tempdir().unwrap();
    let model_dir = repo.path().join("m");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(model_dir.join("model.toml"), policy.toml()).unwrap();
    let onnx = std::fs::read(examples().join("iris_logreg/1/model.onnx")).unwrap();
    let truncated_onnx = &onnx[..onnx.len() / 2];
    let mut disk = BTreeMap::from([(1, true)]);
    publish(&model_dir, 1, "test.model", scaling_model(1).as_bytes());

    let mut config = ServerConfig::new(repo.path());
    config.model_control = ModelControl::Poll {
        interval: Duration::from_millis(30),
    };
    let server = Arc::new(TestServer::start(config).await);
    let grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();

    // Before the clients start, so their first answers fall in the first phase.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [Protocol::V2Http, Protocol::V2Grpc, Protocol::TfRest]
        .into_iter()
        .map(|protocol| {
            let server = Arc::clone(&server);
            let stop = Arc::clone(&stop);
            let mut grpc = grpc.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) && answers.len() < 200_000 {
                    let sent = Instant::now();
                    let outcome = ask(protocol, &server, &mut grpc).await;
                    answers.push(Answer {
                        protocol,
                        sent,
                        received: Instant::now(),
                        outcome,
                    });
                }
                answers
            })
        })
        .collect();

    let newest = |disk: &BTreeMap<u64, bool>| *policy.served(disk).last().unwrap();
    let mut phases = vec![Phase {
        what: "start",
        changed: start,
        applied: start,
        newest: 1,
    }];
    let pause = || tokio::time::sleep(Duration::from_millis(150));
    pause().await;

    // Each step: change the disk, note when, wait until the server shows the change.
    macro_rules! step {
        ($what:literal, $change:expr, $wait:expr) => {{
            let changed = Instant::now();
            $change;
            let applied = $wait;
            phases.push(Phase {
                what: $what,
                changed,
                applied,
                newest: newest(&disk),
            });
            pause().await;
        }};
    }

    step!(
        "version 2 added",
        {
            publish(&model_dir, 2, "test.model", scaling_model(2).as_bytes());
            disk.insert(2, true);
        },
        until_serving(&server, &policy.served(&disk)).await
    );
    step!(
        "version 3 published broken",
        {
            publish(&model_dir, 3, "model.onnx", truncated_onnx);
            disk.insert(3, false);
        },
        {
            until_failed(&server, 3).await;
            until_serving(&server, &policy.served(&disk)).await
        }
    );
    step!(
        "version 3 fixed",
        {
            replace_file(&model_dir, 3, "test.model", scaling_model(3).as_bytes());
            std::fs::remove_file(model_dir.join("3/model.onnx")).unwrap();
            disk.insert(3, true);
        },
        until_serving(&server, &policy.served(&disk)).await
    );
    step!(
        "version 4 appears empty",
        {
            std::fs::create_dir(model_dir.join("4")).unwrap();
            disk.insert(4, false);
        },
        {
            until_failed(&server, 4).await;
            until_serving(&server, &policy.served(&disk)).await
        }
    );
    let complete = scaling_model(4);
    step!(
        "version 4's file is being written",
        std::fs::write(
            model_dir.join("4/test.model"),
            &complete[..complete.len() - 1]
        )
        .unwrap(),
        {
            // Several polls see the file cut short.
            tokio::time::sleep(Duration::from_millis(200)).await;
            until_serving(&server, &policy.served(&disk)).await
        }
    );
    step!(
        "version 4's file is complete",
        {
            std::fs::write(model_dir.join("4/test.model"), &complete).unwrap();
            disk.insert(4, true);
        },
        until_serving(&server, &policy.served(&disk)).await
    );
    step!(
        "the oldest version removed",
        {
            std::fs::remove_dir_all(model_dir.join("1")).unwrap();
            disk.remove(&1);
        },
        until_serving(&server, &policy.served(&disk)).await
    );
    step!(
        "the newest version removed",
        {
            std::fs::remove_dir_all(model_dir.join("4")).unwrap();
            disk.remove(&4);
        },
        until_serving(&server, &policy.served(&disk)).await
    );

    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    drop(grpc);
    // Each failed load was counted (version 3 broken, version 4 empty and cut short).
    let metrics = server.text("/metrics").await;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferroserve_model_load_failures_total{model=\"m\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        failures >= 2,
        "{policy:?}: {failures} load failures counted"
    );
    let Ok(server) = Arc::try_unwrap(server) else {
        panic!("a client still holds the server")
    };
    server.stop().await;

    let failed: Vec<_> = answers
        .iter()
        .filter_map(|a| {
            let phase = phases.iter().rev().find(|p| p.changed <= a.sent)?;
            a.outcome
                .as_ref()
                .err()
                .map(|e| (a.protocol, phase.what, e.clone()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{policy:?}: {} of {} requests failed, e.g. {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)]
    );
    // Phase k's version serves from its change until the next phase's change was seen applied.
    for a in &answers {
        let allowed: Vec<u64> = phases
            .iter()
            .enumerate()
            .filter(|(k, phase)| {
                let until = phases.get(k + 1).map(|p| p.applied);
                phase.changed <= a.received && until.is_none_or(|u| a.sent <= u)
            })
            .map(|(_, phase)| phase.newest)
            .collect();
        let version = a.outcome.as_ref().unwrap();
        assert!(
            allowed.contains(version),
            "{policy:?}: {:?} answered by version {version} at {:?}..{:?}, when {allowed:?} served",
            a.protocol,
            a.sent - start,
            a.received - start
        );
    }
    // Traffic flowed through every step on every protocol, so each was tested under load.
    for protocol in [Protocol::V2Http, Protocol::V2Grpc, Protocol::TfRest] {
        let per_phase: Vec<usize> = phases
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let end = phases.get(k + 1).map(|n| n.changed);
                answers
                    .iter()
                    .filter(|a| a.protocol == protocol)
                    .filter(|a| a.sent >= p.changed && end.is_none_or(|e| a.sent < e))
                    .count()
            })
            .collect();
        assert!(
            per_phase.iter().all(|&n| n > 0),
            "{policy:?} {protocol:?}: answers per phase {per_phase:?}"
        );
    }
    eprintln!("{policy:?}: {} answers, none failed", answers.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latest_one_keeps_serving_through_broken_and_partial_versions() {
    deploy_under_load(Policy::Latest(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latest_two_keeps_serving_through_broken_and_partial_versions() {
    deploy_under_load(Policy::Latest(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_keeps_serving_through_broken_and_partial_versions() {
    deploy_under_load(Policy::All).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn specific_keeps_serving_through_broken_and_partial_versions() {
    deploy_under_load(Policy::Specific(&[1, 3, 4])).await;
}

/// A label moved (by editing `model.toml`) to a version that fails keeps answering from the
/// version it pointed at, the index says so, and it moves once that version loads.
#[tokio::test]
async fn a_label_moved_to_a_failing_version_keeps_its_ready_target() {
    let repo = tempfile::tempdir().unwrap();
    let model_dir = repo.path().join("m");
    std::fs::create_dir_all(&model_dir).unwrap();
    let labels =
        |stable: u64| format!("version_policy = \"all\"\nlabels = {{ stable = {stable} }}\n");
    std::fs::write(model_dir.join("model.toml"), labels(1)).unwrap();
    publish(&model_dir, 1, "test.model", scaling_model(1).as_bytes());
    publish(&model_dir, 2, "test.model", b"0 2"); // cut short: fails
    let mut config = ServerConfig::new(repo.path());
    config.model_control = ModelControl::Explicit;
    config.strict_readiness = false;
    let server = TestServer::start(config).await;
    std::fs::write(model_dir.join("model.toml"), labels(2)).unwrap();
    let (status, body) = server
        .post("/v2/repository/models/m/load", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = infer_stable(&server).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_version"], "1");
    let (_, l) = server.get("/v2/repository/models/m/labels").await;
    assert_eq!(l["labels"], json!({"stable": 1}));
    let (_, index) = server.post("/v2/repository/index", &json!({})).await;
    let row = index
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "m" && r["version"] == "2")
        .unwrap()
        .clone();
    assert_eq!(row["state"], "UNAVAILABLE");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("label 'stable' keeps pointing at version 1"),
        "{reason}"
    );

    // Fixed: the label goes where model.toml asks.
    replace_file(&model_dir, 2, "test.model", scaling_model(2).as_bytes());
    let (status, body) = server
        .post("/v2/repository/models/m/load", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = infer_stable(&server).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_version"], "2");
    assert_eq!(body["outputs"][0]["data"], json!([2.0, 4.0]));
    server.stop().await;
}

async fn infer_stable(server: &TestServer) -> (StatusCode, Value) {
    let body = json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32",
                                  "data": [1.0, 2.0]}]});
    server.post("/v2/models/m/labels/stable/infer", &body).await
}
