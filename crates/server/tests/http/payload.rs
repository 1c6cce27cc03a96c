//! Payload logging over the wire: every request of a model with `rate = 1` becomes a JSON
//! line with its id, version, latency, inputs and outputs (and, routed by a composite, the
//! composite and variant); files rotate at their size limit and only the newest are kept.

use std::time::Duration;

use ferroserve_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, temp_repository};

#[tokio::test]
async fn sampled_requests_are_written_to_rotating_files() {
    let repo = temp_repository();
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("iris_logreg/model.toml"),
        format!(
            "[payload_log]\nrate = 1.0\ndirectory = \"{}\"\nmax_file_bytes = 2000\nmax_files = 3\n",
            logs.path().display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(repo.path().join("ab")).unwrap();
    std::fs::write(
        repo.path().join("ab/model.toml"),
        "kind = \"split\"\nvariants = { \"iris_logreg\" = 1 }\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = |i: usize| {
        json!({"id": format!("r{i}"), "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
               "data": [5.1, 3.5, 1.4, i as f32 / 10.0]}]})
    };
    for i in 0..30 {
        let (status, body) = server
            .post("/v2/models/iris_logreg/infer", &request(i))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The writer is a thread of its own: wait for the last record.
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        let mut files: Vec<_> = std::fs::read_dir(logs.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        lines = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        if lines.last().is_some_and(|l| l["id"] == "r29") {
            assert!(files.len() <= 3, "{files:?}");
            assert!(files.len() >= 2, "2,000-byte files rotate: {files:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = lines.last().unwrap_or_else(|| panic!("no records"));
    assert_eq!(last["id"], "r29");
    assert_eq!(last["model"], "iris_logreg");
    assert_eq!(last["version"], 1);
    assert!(last["latency_us"].as_u64().unwrap() > 0);
    assert_eq!(last["inputs"][0]["shape"], json!([1, 4]));
    assert!((last["inputs"][0]["data"][3].as_f64().unwrap() - 2.9).abs() < 1e-6);
    assert_eq!(last["outputs"][0]["name"], "label");
    assert!(lines.len() < 30, "the oldest files were removed");
    // Consecutive: the kept files hold the newest records, in order.
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let first: usize = ids[0][1..].parse().unwrap();
    let expected: Vec<String> = (first..30).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, expected);

    // A request an A/B split routes here is logged with the split and the variant it chose.
    let (status, body) = server.post("/v2/models/ab/infer", &request(30)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut routed = Value::Null;
    for _ in 0..100 {
        let newest = std::fs::read_dir(logs.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap();
        let text = std::fs::read_to_string(newest).unwrap();
        if let Some(line) = text.lines().find(|l| l.contains("\"r30\"")) {
            routed = serde_json::from_str(line).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(routed["composite"], "ab", "{routed}");
    assert_eq!(routed["variant"], "iris_logreg@1");
    assert!(
        last.get("composite").is_none(),
        "a direct request names no composite"
    );

    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains(
            "ferroserve_payload_log_records_total{model=\"iris_logreg\",version=\"1\"} 31"
        ),
        "{metrics}"
    );
    server.stop().await;
}

/// `max_files` counts every file of the model in the directory, so restarts and reloads do
/// not grow it without bound; other models' files and other files are left alone; the
/// directory is 0700 and the files 0600 (they hold raw inputs).
#[tokio::test]
async fn retention_spans_runs_and_files_are_private() {
    let repo = temp_repository();
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().join("iris");
    std::fs::create_dir_all(&dir).unwrap();
    // Files of earlier runs (and of another model whose name shares a prefix).
    for start in [1000, 2000, 3000, 4000] {
        std::fs::write(
            dir.join(format!("iris_logreg-1-{start}-000000.jsonl")),
            "{}\n",
        )
        .unwrap();
    }
    std::fs::write(dir.join("iris_logreg-v2-1-5000-000000.jsonl"), "{}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "keep").unwrap();
    std::fs::write(
        repo.path().join("iris_logreg/model.toml"),
        format!(
            "[payload_log]\nrate = 1.0\ndirectory = \"{}\"\nmax_files = 3\n",
            dir.display()
        ),
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = json!({"id": "new", "inputs": [{"name": "input", "datatype": "FP32",
                         "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]});
    let (status, body) = server.post("/v2/models/iris_logreg/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let mut newest = None;
    for _ in 0..100 {
        newest = names().into_iter().find(|n| {
            n.starts_with("iris_logreg-1-")
                && !n.contains("-1000-")
                && !n.contains("-2000-")
                && !n.contains("-3000-")
                && !n.contains("-4000-")
        });
        if newest.as_ref().is_some_and(|n| {
            std::fs::read_to_string(dir.join(n))
                .unwrap()
                .contains("\"new\"")
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let newest = newest.expect("no new log file");
    let names = names();
    let own: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("iris_logreg-1-"))
        .collect();
    assert_eq!(own.len(), 3, "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("-1000-") || n.contains("-2000-")),
        "{names:?}"
    );
    assert!(
        names.contains(&"iris_logreg-v2-1-5000-000000.jsonl".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"notes.txt".to_owned()), "{names:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(&newest)), 0o600);
    }
    server.stop().await;
}

/// `drop`, `redact` and `hash` keep named tensors out of the records: a dropped output is
/// absent, a redacted input keeps its name and shape only, a hashed output's values are keyed
/// hashes that match across records.
#[tokio::test]
async fn named_tensors_are_dropped_redacted_or_hashed() {
    let repo = temp_repository();
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("iris_logreg/model.toml"),
        format!(
            "[payload_log]\nrate = 1.0\ndirectory = \"{}\"\ndrop = [\"probabilities\"]\n\
             redact = [\"input\"]\nhash = [\"label\"]\nhash_key = \"s3cret\"\n",
            logs.path().display()
        ),
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
                         "data": [5.1, 3.5, 1.4, 0.2]}]});
    for _ in 0..2 {
        let (status, body) = server.post("/v2/models/iris_logreg/infer", &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_dir(logs.path())
            .unwrap()
            .flat_map(|e| {
                let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
                assert!(
                    !text.contains("5.1") && !text.contains("probabilities"),
                    "{text}"
                );
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        if lines.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
    assert_eq!(lines.len(), 2);
    let input = &lines[0]["inputs"][0];
    assert_eq!(input["name"], "input");
    assert_eq!(input["shape"], json!([1, 4]));
    assert_eq!(input["data"], "redacted");
    let outputs = lines[0]["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0]["name"], "label");
    let hashed = outputs[0]["hashed"].as_array().unwrap();
    assert_eq!(hashed.len(), 1);
    let hash = hashed[0].as_str().unwrap();
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(lines[1]["outputs"][0]["hashed"], outputs[0]["hashed"]);
    assert!(outputs[0].get("data").is_none());
}
