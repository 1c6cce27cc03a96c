//! The `ferroserve` binary as a user runs it: `predict` on the example models, its errors, and
//! the crate map's dependency directions (checked with `cargo metadata`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ferroserve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn predict_prints_the_v2_response() {
    for model_dir in ["examples/models/digits_mlp", "examples/models/digits_mlp/1"] {
        let out = ferroserve(&[
            "predict",
            "--model",
            model_dir,
            "--input",
            "examples/oracles/digits_mlp/request.json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let response: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root().join("examples/oracles/digits_mlp/expected.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(response["model_name"], "digits_mlp");
        assert_eq!(
            response["outputs"][0]["data"],
            expected["outputs"][0]["data"]
        );
    }
}

#[test]
fn predict_errors_name_the_problem() {
    let bad = std::env::temp_dir().join(format!("ferroserve-bad-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}"#,
    )
    .unwrap();
    let out = ferroserve(&[
        "predict",
        "--model",
        "examples/models/iris_logreg",
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'input'") && stderr.contains("[-1, 4]"),
        "{stderr}"
    );
    let out = ferroserve(&[
        "predict",
        "--model",
        "examples/models/nope",
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn serve_rejects_a_missing_repository() {
    let out = ferroserve(&[
        "serve",
        "--model-repository",
        "/nonexistent/models",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/models"));
}

#[test]
fn flags_are_read_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args(["serve", "--http-port", "0", "--grpc-port", "0"])
        .env("FERROSERVE_MODEL_REPOSITORY", "/from/the/environment")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/from/the/environment"));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroserve"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .current_dir(root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .take(50)
        .map_while(Result::ok)
        .any(|l| l.contains("listening on http://127.0.0.1:"));
    assert!(listening, "no 'listening on' line");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// DESIGN.md's crate map: `core` <- runtimes <- `server` <- `cli`; runtimes never depend on
/// each other or on the server, and `core` stays free of async and I/O crates.
#[test]
fn dependencies_point_the_right_way() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed: &[(&str, &[&str])] = &[
        ("ferroserve-core", &[]),
        ("ferroserve-onnx", &["ferroserve-core"]),
        ("ferroserve-trees", &["ferroserve-core"]),
        (
            "ferroserve-server",
            &["ferroserve-core", "ferroserve-onnx", "ferroserve-trees"],
        ),
        (
            "ferroserve",
            &["ferroserve-core", "ferroserve-onnx", "ferroserve-server"],
        ),
    ];
    let forbidden_in_core = ["tokio", "axum", "hyper", "serde_json", "tract-onnx"];
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let deps: Vec<&str> = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        let (_, may) = allowed
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not in the crate map"));
        for dep in deps.iter().filter(|d| d.starts_with("ferroserve")) {
            assert!(may.contains(dep), "{name} must not depend on {dep}");
        }
        if name == "ferroserve-core" {
            for dep in &deps {
                assert!(
                    !forbidden_in_core.contains(dep),
                    "ferroserve-core must not depend on {dep}"
                );
            }
        }
    }
}
