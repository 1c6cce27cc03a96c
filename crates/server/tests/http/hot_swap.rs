//! Zero-downtime lifecycle under load: a closed-loop client keeps sending while versions are
//! added, replaced with a broken file, fixed and removed, and labels move (through the API and
//! through `model.toml`), with the repository polled. No request may fail, and every answer
//! must come from a version that was live while the request was in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferroserve_server::{ModelControl, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, oracle, publish, replace_file, temp_repository};

/// One answer the clients got.
struct Answer {
    path: &'static str,
    sent: Instant,
    received: Instant,
    status: StatusCode,
    version: String,
    outputs: Value,
}

/// A step of the scenario: what it leaves live for each path, from when its change was made
/// (`changed`) until the next step's change was seen applied.
struct Phase {
    changed: Instant,
    applied: Instant,
    latest: &'static [&'static str],
    stable: &'static [&'static str],
}

impl Phase {
    fn new(
        changed: Instant,
        applied: Instant,
        latest: &'static [&'static str],
        stable: &'static [&'static str],
    ) -> Self {
        Phase {
            changed,
            applied,
            latest,
            stable,
        }
    }
}

const LATEST: &str = "/v2/models/m/infer";
const STABLE: &str = "/v2/models/m/labels/stable/infer";

/// Waits (up to 20 s) until `check` holds for the server's view, returning when it did.
async fn until<F: Fn(&Value) -> bool>(
    server: &TestServer,
    path: &str,
    what: &str,
    check: F,
) -> Instant {
    for _ in 0..2000 {
        let (_, body) = if path == "/v2/repository/index" {
            server.post(path, &json!({})).await
        } else {
            server.get(path).await
        };
        if check(&body) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw {what}");
}

fn index_row(index: &Value, version: &str) -> Option<Value> {
    index
        .as_array()?
        .iter()
        .find(|r| r["name"] == "m" && r["version"] == version)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_and_labels_change_under_load_with_no_failed_request() {
    let repo = temp_repository();
    let good = std::fs::read(repo.path().join("iris_logreg/1/model.onnx")).unwrap();
    let model_dir = repo.path().join("m");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(
        model_dir.join("model.toml"),
        "version_policy = \"all\"\nlabels = { stable = 1 }\n",
    )
    .unwrap();
    publish(&model_dir, 1, "model.onnx", &good);
    let mut config = ServerConfig::new(repo.path());
    config.model_control = ModelControl::Poll {
        interval: Duration::from_millis(30),
    };
    let server = Arc::new(TestServer::start(config).await);
    let request = oracle("iris_logreg", "request.json");
    let (status, reference) = server.post(LATEST, &request).await;
    assert_eq!(status, StatusCode::OK, "{reference}");

    // The closed-loop clients: two on the latest version, one on the label.
    // Before the clients start, so their first answers fall in the first phase.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [LATEST, LATEST, STABLE]
        .into_iter()
        .map(|path| {
            let server = Arc::clone(&server);
            let stop = Arc::clone(&stop);
            let request = request.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) && answers.len() < 200_000 {
                    let sent = Instant::now();
                    let (status, body) = server.post(path, &request).await;
                    answers.push(Answer {
                        path,
                        sent,
                        received: Instant::now(),
                        status,
                        version: body["model_version"].as_str().unwrap_or("").to_owned(),
                        outputs: if status == StatusCode::OK {
                            body["outputs"].clone()
                        } else {
                            body
                        },
                    });
                }
                answers
            })
        })
        .collect();

    let mut phases = vec![Phase {
        changed: start,
        applied: start,
        latest: &["1"],
        stable: &["1"],
    }];
    // Each step: make the change, note when, wait until the server shows it.
    let pause = || tokio::time::sleep(Duration::from_millis(150));
    pause().await;

    // 1. A new version loads beside the serving one and takes the latest traffic.
    let changed = Instant::now();
    publish(&model_dir, 2, "model.onnx", &good);
    let applied = until(&server, "/v2/models/m", "version 2 ready", |m| {
        m["versions"] == json!(["1", "2"])
    })
    .await;
    phases.push(Phase::new(changed, applied, &["2"], &["1"]));
    pause().await;

    // 2. The label moves through the API, in one call.
    let changed = Instant::now();
    let (status, body) = server
        .post(
            "/v2/repository/models/m/labels",
            &json!({"labels": {"stable": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["labels"], json!({"stable": 2}));
    phases.push(Phase::new(changed, Instant::now(), &["2"], &["2"]));
    pause().await;

    // 3. Version 2's file is replaced by a broken one: the build loaded before keeps serving,
    //    and the index says why the new file was refused.
    let changed = Instant::now();
    replace_file(&model_dir, 2, "model.onnx", b"not an onnx model");
    let applied = until(
        &server,
        "/v2/repository/index",
        "the broken file reported",
        |index| {
            index_row(index, "2").is_some_and(|r| {
                r["state"] == "READY"
                    && r["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains("failed to load")
            })
        },
    )
    .await;
    phases.push(Phase::new(changed, applied, &["2"], &["2"]));
    pause().await;

    // 4. A new version arrives broken: reported UNAVAILABLE, traffic stays on version 2.
    let changed = Instant::now();
    publish(&model_dir, 3, "model.onnx", b"also not a model");
    let applied = until(
        &server,
        "/v2/repository/index",
        "version 3 failed",
        |index| index_row(index, "3").is_some_and(|r| r["state"] == "UNAVAILABLE"),
    )
    .await;
    phases.push(Phase::new(changed, applied, &["2"], &["2"]));
    pause().await;

    // 5. Both are fixed: version 2 is rebuilt from the good file, version 3 loads and serves.
    let changed = Instant::now();
    replace_file(&model_dir, 2, "model.onnx", &good);
    replace_file(&model_dir, 3, "model.onnx", &good);
    let applied = until(
        &server,
        "/v2/repository/index",
        "versions 2 and 3 healthy",
        |index| {
            ["2", "3"].iter().all(|v| {
                index_row(index, v).is_some_and(|r| r["state"] == "READY" && r["reason"] == "")
            })
        },
    )
    .await;
    phases.push(Phase::new(changed, applied, &["2", "3"], &["2"]));
    pause().await;

    // 6. The label moves back by editing model.toml.
    let changed = Instant::now();
    std::fs::write(
        model_dir.join("model.toml"),
        "version_policy = \"all\"\nlabels = { stable = 3 }\n",
    )
    .unwrap();
    let applied = until(
        &server,
        "/v2/repository/models/m/labels",
        "stable = 3",
        |l| l["labels"] == json!({"stable": 3}),
    )
    .await;
    phases.push(Phase::new(changed, applied, &["3"], &["3"]));
    pause().await;

    // 7. Versions 1 and 2 are removed; 3 keeps serving.
    let changed = Instant::now();
    std::fs::remove_dir_all(model_dir.join("1")).unwrap();
    std::fs::remove_dir_all(model_dir.join("2")).unwrap();
    let applied = until(&server, "/v2/models/m", "only version 3", |m| {
        m["versions"] == json!(["3"])
    })
    .await;
    phases.push(Phase::new(changed, applied, &["3"], &["3"]));
    pause().await;

    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    let Ok(server) = Arc::try_unwrap(server) else {
        panic!("a client still holds the server")
    };
    server.stop().await;

    // Phase k's set is live from its change until the next phase's change was seen applied.
    let live = |a: &Answer| -> Vec<&'static str> {
        let mut versions = Vec::new();
        for (k, phase) in phases.iter().enumerate() {
            let until = phases.get(k + 1).map(|p| p.applied);
            let overlaps = phase.changed <= a.received && until.is_none_or(|u| a.sent <= u);
            if overlaps {
                versions.extend(if a.path == STABLE {
                    phase.stable
                } else {
                    phase.latest
                });
            }
        }
        versions
    };
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| a.status != StatusCode::OK)
        .map(|a| (a.path, a.status, a.outputs.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed requests, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    for a in &answers {
        let allowed = live(a);
        assert!(
            allowed.contains(&a.version.as_str()),
            "{} answered by version {} at {:?}..{:?}, when {allowed:?} were live",
            a.path,
            a.version,
            a.sent - start,
            a.received - start
        );
        assert_eq!(a.outputs, reference["outputs"]);
    }
    let per_phase: Vec<usize> = phases
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let end = phases.get(k + 1).map(|n| n.changed);
            answers
                .iter()
                .filter(|a| a.sent >= p.changed && end.is_none_or(|e| a.sent < e))
                .count()
        })
        .collect();
    // Traffic flowed through every step, so each was tested under load.
    assert!(
        per_phase.iter().all(|&n| n > 0),
        "answers per phase: {per_phase:?}"
    );
    eprintln!("{} answers, per phase {per_phase:?}", answers.len());
}
