//! `GET /metrics` after a known sequence of requests, parsed with a Prometheus text parser
//! (the prometheus-parse crate): names, labels and values, on the HTTP port and on the
//! metrics port, in both exposition formats.

use std::time::Duration;

use ferroserve_server::ServerConfig;
use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;

use crate::kit::{TestServer, temp_repository, write_test_model};

fn rows(values: &[f32]) -> serde_json::Value {
    json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [values.len() / 2, 2], "data": values}]})
}

/// Fetches and parses `/metrics` from `addr`.
async fn scrape(server: &TestServer, addr: std::net::SocketAddr) -> Scrape {
    let r = server
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`; panics when there is none.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    find(scrape, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

fn find(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
    Some(match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
        Value::Summary(_) => unreachable!("no summaries"),
    })
}

#[tokio::test]
async fn metrics_count_a_known_sequence_of_requests() {
    let repo = temp_repository();
    write_test_model(repo.path(), "double", 1, 0);
    write_test_model(repo.path(), "slow", 1, 300);
    std::fs::write(
        repo.path().join("slow/model.toml"),
        "instances = 1\nmax_queue_size = 1\n",
    )
    .unwrap();
    // A model that cannot load: its failure is counted.
    let broken = repo.path().join("broken/1");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("test.model"), "not a number").unwrap();
    let mut config = ServerConfig::new(repo.path());
    config.strict_readiness = false;
    config.triton_metric_names = true;
    let server = TestServer::start(config).await;

    for _ in 0..3 {
        let (status, body) = server
            .post("/v2/models/double/infer", &rows(&[1.0, 2.0]))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // One malformed request (wrong datatype), one the model panics on.
    let wrong =
        json!({"inputs": [{"name": "x", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]}]});
    let (status, _) = server.post("/v2/models/double/infer", &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .post("/v2/models/double/infer", &rows(&[-1.0, 1.0]))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // Overload: one instance, a queue of one, four at once.
    let one = rows(&[1.0, 1.0]);
    let calls = (0..4).map(|_| server.post("/v2/models/slow/infer", &one));
    let results = futures::future::join_all(calls).await;
    let overloaded = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(overloaded >= 1, "{results:?}");
    // A request for no model at all.
    let (status, _) = server
        .post("/v2/models/nothing/infer", &rows(&[1.0, 1.0]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let m = scrape(&server, server.addr).await;
    let double = [("model", "double"), ("version", "1")];
    let slow = [("model", "slow"), ("version", "1")];
    assert_eq!(value(&m, "ferroserve_requests_total", &double), 5.0);
    assert_eq!(
        value(&m, "ferroserve_request_successes_total", &double),
        3.0
    );
    let failures = |labels: &[(&str, &str)], reason: &str| {
        let mut l = labels.to_vec();
        l.push(("reason", reason));
        find(&m, "ferroserve_request_failures_total", &l).unwrap_or(0.0)
    };
    assert_eq!(failures(&double, "invalid_request"), 1.0);
    assert_eq!(failures(&double, "model_error"), 1.0);
    assert_eq!(failures(&slow, "overloaded"), overloaded as f64);
    assert_eq!(
        value(&m, "ferroserve_request_successes_total", &slow),
        (4 - overloaded) as f64
    );
    assert_eq!(
        failures(&[("model", ""), ("version", "")], "not_found"),
        1.0,
        "a request for an unknown model is counted without its name"
    );
    // Histograms: one observation per success; three executions of one row.
    assert_eq!(
        value(&m, "ferroserve_request_duration_seconds_count", &double),
        3.0
    );
    assert_eq!(
        value(&m, "ferroserve_request_duration_seconds", &double),
        3.0
    );
    assert_eq!(
        value(&m, "ferroserve_compute_duration_seconds_count", &double),
        3.0
    );
    assert_eq!(value(&m, "ferroserve_batch_size_count", &double), 3.0);
    assert_eq!(value(&m, "ferroserve_batch_size_sum", &double), 3.0);
    assert_eq!(value(&m, "ferroserve_executions_total", &double), 3.0);
    assert_eq!(value(&m, "ferroserve_inference_rows_total", &double), 3.0);
    assert!(value(&m, "ferroserve_queue_duration_seconds_sum", &slow) > 0.0);
    assert_eq!(value(&m, "ferroserve_queue_depth", &double), 0.0);
    // Lifecycle.
    assert_eq!(
        value(
            &m,
            "ferroserve_model_versions_loaded",
            &[("model", "double")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "ferroserve_model_versions_loaded",
            &[("model", "broken")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "ferroserve_model_load_failures_total",
            &[("model", "broken")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "ferroserve_model_version_ready",
            &[("model", "double"), ("runtime", "test")]
        ),
        1.0
    );
    assert!(value(&m, "ferroserve_build_info", &[]) == 1.0);
    // The process.
    assert!(value(&m, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&m, "process_open_fds", &[]) > 3.0);
    assert!(value(&m, "process_start_time_seconds", &[]) > 1.7e9);
    // Triton's names for the same counts.
    assert_eq!(value(&m, "nv_inference_request_success", &double), 3.0);
    assert_eq!(value(&m, "nv_inference_count", &double), 3.0);
    let rejected = [("model", "slow"), ("version", "1"), ("reason", "REJECTED")];
    assert_eq!(
        value(&m, "nv_inference_request_failure", &rejected),
        overloaded as f64
    );
    let backend = [("model", "double"), ("version", "1"), ("reason", "BACKEND")];
    assert_eq!(value(&m, "nv_inference_request_failure", &backend), 1.0);
    assert!(value(&m, "nv_inference_compute_infer_duration_us", &slow) >= 300_000.0);

    // The metrics port serves the same, and nothing else.
    let alone = scrape(&server, server.metrics_addr).await;
    assert_eq!(value(&alone, "ferroserve_requests_total", &double), 5.0);
    let r = server
        .client
        .get(format!("http://{}/v2/health/ready", server.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // OpenMetrics for a scraper that asks for it.
    let r = server
        .client
        .get(server.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("ferroserve_requests_total{model=\"double\",version=\"1\"} 5"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_cover_composites_and_the_cache() {
    let repo = temp_repository();
    write_test_model(repo.path(), "fast", 1, 0);
    write_test_model(repo.path(), "copy", 1, 0);
    std::fs::write(
        repo.path().join("fast/model.toml"),
        "cache_bytes = 100000\n",
    )
    .unwrap();
    let composite = |name: &str, toml: &str| {
        std::fs::create_dir_all(repo.path().join(name)).unwrap();
        std::fs::write(repo.path().join(name).join("model.toml"), toml).unwrap();
    };
    composite(
        "mirrored",
        "kind = \"shadow\"\nprimary = \"fast\"\nshadows = [\"copy\"]\n",
    );
    composite(
        "ab",
        "kind = \"split\"\nvariants = { \"fast\" = 1, \"copy\" = 1 }\n",
    );
    composite(
        "chooser",
        "kind = \"bandit\"\nvariants = [\"fast\", \"copy\"]\n",
    );
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let request = rows(&[1.0, 2.0]);
    for model in ["ab", "chooser"] {
        for _ in 0..10 {
            let (status, body) = server
                .post(&format!("/v2/models/{model}/infer"), &request)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let (_, answer) = server.post("/v2/models/chooser/infer", &request).await;
    let id = answer["parameters"]["feedback_id"].as_str().unwrap();
    let (status, body) = server
        .post(
            "/v2/models/chooser/feedback",
            &json!({"id": id, "reward": 1.0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Mirrors run one at a time, after the answer: wait for the first comparison.
    let mut m = scrape(&server, server.addr).await;
    for _ in 0..100 {
        let (status, _) = server.post("/v2/models/mirrored/infer", &request).await;
        assert_eq!(status, StatusCode::OK);
        m = scrape(&server, server.addr).await;
        let agreed = [
            ("model", "mirrored"),
            ("shadow", "copy"),
            ("result", "agree"),
        ];
        if find(&m, "ferroserve_shadow_comparisons_total", &agreed).unwrap_or(0.0) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shadow = [("model", "mirrored"), ("shadow", "copy")];
    assert_eq!(value(&m, "ferroserve_shadow_agreement_ratio", &shadow), 1.0);
    let mut disagreed = shadow.to_vec();
    disagreed.push(("result", "disagree"));
    assert_eq!(
        value(&m, "ferroserve_shadow_comparisons_total", &disagreed),
        0.0
    );
    assert!(
        value(
            &m,
            "ferroserve_shadow_mirrored_total",
            &[("model", "mirrored")]
        ) >= 1.0
    );

    let sum = |name: &str, model: &str| -> f64 {
        m.samples
            .iter()
            .filter(|s| s.metric == name && s.labels.get("model") == Some(model))
            .map(|s| match s.value {
                Value::Counter(v) => v,
                _ => panic!("{name} is not a counter"),
            })
            .sum()
    };
    assert_eq!(sum("ferroserve_split_requests_total", "ab"), 10.0);
    assert_eq!(sum("ferroserve_bandit_choices_total", "chooser"), 11.0);
    assert_eq!(sum("ferroserve_bandit_feedback_total", "chooser"), 1.0);
    assert_eq!(sum("ferroserve_bandit_reward_total", "chooser"), 1.0);
    // The same input every time: after the first miss, the primary answers from its cache.
    let fast = [("model", "fast"), ("version", "1")];
    assert_eq!(value(&m, "ferroserve_cache_misses_total", &fast), 1.0);
    assert_eq!(
        value(&m, "ferroserve_cache_hits_total", &fast) + 1.0,
        value(&m, "ferroserve_request_successes_total", &fast)
    );
    assert!(value(&m, "ferroserve_cache_bytes", &fast) > 0.0);
    server.stop().await;
}
