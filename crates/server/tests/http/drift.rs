//! Data monitoring over the wire, on the example iris model and its committed reference
//! profile: traffic drawn from the training distribution scores as stable, shifted traffic
//! crosses the alert threshold, in `/monitoring` and in `/metrics`.

use ferroserve_core::profile::{ColumnKind, Profile, bin_shares, psi};
use ferroserve_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::kit::{TestServer, temp_repository};

/// The feature rows of the iris training split.
fn training_rows() -> Vec<[f32; 4]> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/iris_logreg/train.csv"
    ))
    .unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<f32> = line.split(',').map(|x| x.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

/// `n` rows drawn with replacement from `rows` (a fixed LCG: the same draw every run), each
/// feature moved by `shift`.
fn draw(rows: &[[f32; 4]], n: usize, shift: f32) -> Vec<[f32; 4]> {
    let mut state: u64 = 42;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let row = rows[(state >> 33) as usize % rows.len()];
            row.map(|v| v + shift)
        })
        .collect()
}

async fn send(server: &TestServer, rows: &[[f32; 4]]) {
    for chunk in rows.chunks(50) {
        let data: Vec<f32> = chunk.iter().flatten().copied().collect();
        let request = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [chunk.len(), 4], "data": data}]});
        let (status, body) = server.post("/v2/models/iris_logreg/infer", &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn column<'a>(report: &'a Value, side: &str, name: &str) -> &'a Value {
    report[side]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {side} column {name} in {report}"))
}

#[tokio::test]
async fn drift_is_scored_against_the_reference_profile() {
    let repo = temp_repository();
    std::fs::write(
        repo.path().join("iris_logreg/model.toml"),
        "[monitoring]\nwindow = 400\nmin_samples = 100\n",
    )
    .unwrap();
    let server = TestServer::start(ServerConfig::new(repo.path())).await;
    let rows = training_rows();

    // Too few rows yet: collecting.
    send(&server, &draw(&rows, 50, 0.0)).await;
    let (status, report) = server.get("/v2/models/iris_logreg/monitoring").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        column(&report, "inputs", "sepal_length")["status"],
        "collecting"
    );
    assert!(column(&report, "inputs", "sepal_length")["psi"].is_null());

    // 400 rows from the reference distribution fill the window: stable.
    let stable = draw(&rows, 400, 0.0);
    send(&server, &stable).await;
    let (_, report) = server.get("/v2/models/iris_logreg/monitoring").await;
    assert_eq!(report["alerts"], json!([]), "{report}");
    let profile: Profile = serde_json::from_slice(
        &std::fs::read(repo.path().join("iris_logreg/profile.json")).unwrap(),
    )
    .unwrap();
    for (i, reference) in profile.inputs.iter().enumerate() {
        let live = column(&report, "inputs", &reference.name);
        assert_eq!(live["status"], "ok", "{live}");
        assert_eq!(live["window"], 400);
        assert_eq!(live["missing"], 0);
        let ColumnKind::Numeric { edges, shares, .. } = &reference.kind else {
            panic!("numeric")
        };
        // The window holds exactly the rows sent: its PSI is theirs.
        let sent: Vec<f64> = stable.iter().map(|r| f64::from(r[i])).collect();
        let expected = psi(shares, &bin_shares(edges, &sent));
        let got = live["psi"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(got < 0.1, "{}: PSI {got}", reference.name);
        assert!(live["ks"].as_f64().unwrap() < 0.15, "{live}");
    }
    let label = column(&report, "outputs", "label");
    assert_eq!(label["kind"], "categorical");
    assert_eq!(label["status"], "ok", "{label}");

    // Shifted traffic replaces the window: every input feature alerts.
    send(&server, &draw(&rows, 400, 1.5)).await;
    let (_, report) = server.get("/v2/models/iris_logreg/monitoring").await;
    for name in ["sepal_length", "sepal_width", "petal_length", "petal_width"] {
        let live = column(&report, "inputs", name);
        assert_eq!(live["status"], "alert", "{live}");
        assert!(live["psi"].as_f64().unwrap() > 0.25, "{live}");
        assert!(live["out_of_range"].as_u64().unwrap() > 0, "{live}");
        assert!(
            report["alerts"].as_array().unwrap().contains(&json!(name)),
            "{report}"
        );
    }

    // The same in the metrics.
    let text = server.text("/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("model") == Some("iris_logreg")
                    && s.labels.get("feature") == Some("petal_length")
                    && s.labels.get("side") == Some("input")
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                _ => panic!("{name}"),
            })
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(sample("ferroserve_drift_alert"), 1.0);
    assert!(sample("ferroserve_drift_psi") > 0.25);
    assert_eq!(sample("ferroserve_feature_values_total"), 850.0);

    // The dashboard draws the same: a histogram per profiled column, the alerts marked.
    let r = server
        .client
        .get(server.url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let page = r.text().await.unwrap();
    assert_eq!(
        page.matches("<svg class=\"histogram\"").count(),
        8,
        "{page}"
    );
    assert!(page.contains("<figure class=\"feature alert\"><figcaption><b>petal_length</b>"));
    assert!(!page.contains("<script"), "no script on the page");

    // A model without a profile is not monitored.
    let (status, body) = server.get("/v2/models/digits_mlp/monitoring").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("ferroserve profile"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn missing_values_are_counted() {
    let server = TestServer::start(ServerConfig::new(temp_repository().path())).await;
    // JSON has no NaN: the binary extension carries one.
    let values = [f32::NAN, 3.0, 1.0, 0.2];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4],
        "parameters": {"binary_data_size": 16}}]});
    let mut body = serde_json::to_vec(&header).unwrap();
    let length = body.len();
    body.extend_from_slice(&bytes);
    let r = server
        .post_raw(
            "/v2/models/iris_logreg/infer",
            body,
            &[("Inference-Header-Content-Length", length.to_string())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, report) = server.get("/v2/models/iris_logreg/monitoring").await;
    assert_eq!(column(&report, "inputs", "sepal_length")["missing"], 1);
    assert_eq!(column(&report, "inputs", "sepal_width")["missing"], 0);
    assert_eq!(column(&report, "inputs", "sepal_width")["count"], 1);
    server.stop().await;
}
