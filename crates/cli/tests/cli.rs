//! The `ferroserve` binary as a user runs it: `predict` on the example models, its errors, and
//! the crate map's dependency directions (checked with `cargo metadata`).

use std::process::Command;

mod common;
// `ferroserve lambda` against an emulated runtime API (tests/lambda/mod.rs).
mod lambda;
// Remote model repositories: S3 (moto) and an HTTP tree (tests/object_store/mod.rs).
mod object_store;

use common::{Server, block_on, ferroserve, ferroserve_fails, ferroserve_ok, root, start_server};

/// The committed example profile is what `ferroserve profile` writes from the committed
/// training split, and a mismatch between columns and the model names both.
#[test]
fn profile_writes_the_committed_example_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("profile.json");
    ferroserve_ok(&[
        "profile",
        "--model",
        "examples/models/iris_logreg",
        "--data",
        "examples/data/iris_logreg/train.csv",
        "--ignore",
        "species",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    let written = std::fs::read_to_string(&out_path).unwrap();
    let committed =
        std::fs::read_to_string(root().join("examples/models/iris_logreg/profile.json")).unwrap();
    assert_eq!(written, committed, "rerun `ferroserve profile` and commit");
    let profile: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(profile["rows"], 112);
    assert_eq!(profile["inputs"][3]["name"], "petal_width");
    assert_eq!(profile["outputs"][0]["type"], "categorical");

    // Malformed records are not part of the sample: the same profile with two in the file.
    let train =
        std::fs::read_to_string(root().join("examples/data/iris_logreg/train.csv")).unwrap();
    let mut lines: Vec<&str> = train.lines().collect();
    lines.insert(5, "5.0,3.1");
    lines.insert(50, "{not, csv, at, all, 1, 2}");
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, lines.join("\n") + "\n").unwrap();
    let ragged_profile = dir.path().join("ragged.json");
    ferroserve_ok(&[
        "profile",
        "--model",
        "examples/models/iris_logreg",
        "--data",
        ragged.to_str().unwrap(),
        "--ignore",
        "species",
        "--output",
        ragged_profile.to_str().unwrap(),
    ]);
    let mut ragged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ragged_profile).unwrap()).unwrap();
    assert_eq!(ragged["source"], "ragged.csv");
    ragged["source"] = profile["source"].clone();
    assert!(
        ragged == profile,
        "the same profile without the malformed records"
    );

    let out = ferroserve(&[
        "profile",
        "--model",
        "examples/models/iris_logreg",
        "--data",
        "examples/data/iris_logreg/train.csv",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("takes 4 features per row") && message.contains("species"),
        "{message}"
    );
}

#[test]
fn predict_prints_the_v2_response() {
    for model_dir in ["examples/models/digits_mlp", "examples/models/digits_mlp/1"] {
        let out = ferroserve_ok(&[
            "predict",
            "--model",
            model_dir,
            "--input",
            "examples/oracles/digits_mlp/request.json",
        ]);
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
fn a_poll_interval_must_be_positive() {
    for bad in ["0", "-1", "nan"] {
        let out = ferroserve(&[
            "serve",
            "--model-control",
            "poll",
            &format!("--repository-poll-secs={bad}"),
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ]);
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--repository-poll-secs"), "{bad}: {stderr}");
    }
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let Server {
        mut child,
        log: lines,
        ..
    } = start_server(&[]);
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

/// Every thread of process `pid`: its name and scheduling policy (`/proc/<pid>/task/*/stat`
/// field 41; 0 SCHED_OTHER, 3 SCHED_BATCH).
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the parenthesised name start at field 3.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after.split(' ').nth(41 - 3).unwrap().parse().unwrap();
        out.push((name.trim().to_string(), policy));
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn request_threads_run_under_the_chosen_scheduling_policy() {
    for (flag, want) in [("batch", 3), ("normal", 0)] {
        let Server {
            mut child,
            log: _log,
            ..
        } = start_server(&["--io-scheduling", flag]);
        // The runtime's threads name themselves and set their policy once they first run,
        // which on a busy machine can be after the "listening" line.
        let mut threads = thread_policies(child.id());
        for _ in 0..100 {
            let io = threads.iter().filter(|(n, _)| n == "tokio-rt-worker");
            if io.clone().count() > 0 && io.clone().all(|(_, p)| *p == want) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            threads = thread_policies(child.id());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let io: Vec<_> = threads
            .iter()
            .filter(|(name, _)| name == "tokio-rt-worker")
            .collect();
        assert!(!io.is_empty(), "{threads:?}");
        assert!(io.iter().all(|(_, p)| *p == want), "{flag}: {threads:?}");
        // The model threads keep the default policy: they are what the I/O must not preempt.
        let compute: Vec<_> = threads
            .iter()
            .filter(|(name, _)| name.starts_with("fs-compute"))
            .collect();
        assert!(compute.iter().all(|(_, p)| *p == 0), "{threads:?}");
    }
}

/// CONTRIBUTING.md's crate map: `core` <- runtimes <- `loader` <- `server`, `batch`, `wasm`, `capi`
/// <- `cli`; runtimes never depend on each other or on the server, and `core` stays free of async
/// and I/O crates.
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
        ("ferroserve-conformance", &["ferroserve-core"]),
        ("ferroserve-onnx", &["ferroserve-core"]),
        ("ferroserve-trees", &["ferroserve-core"]),
        (
            "ferroserve-server",
            &["ferroserve-core", "ferroserve-loader"],
        ),
        (
            "ferroserve-batch",
            &["ferroserve-core", "ferroserve-loader"],
        ),
        (
            "ferroserve-python",
            &["ferroserve-core", "ferroserve-batch", "ferroserve-loader"],
        ),
        (
            "ferroserve-loader",
            &["ferroserve-core", "ferroserve-onnx", "ferroserve-trees"],
        ),
        ("ferroserve-wasm", &["ferroserve-core", "ferroserve-loader"]),
        ("ferroserve-capi", &["ferroserve-core", "ferroserve-loader"]),
        (
            "ferroserve",
            &[
                "ferroserve-core",
                "ferroserve-onnx",
                "ferroserve-server",
                "ferroserve-batch",
                "ferroserve-loader",
            ],
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

/// `keys add` prints a key once and keeps only its hash, in a file only its owner reads;
/// `keys list` shows names, scopes and models; `keys remove` takes one out; a server given a
/// broken key file refuses to start, naming the file.
#[test]
fn keys_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let file_arg = file.to_str().unwrap();
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["keys", "add", "--file", file_arg, "--name", name];
        args.extend_from_slice(extra);
        String::from_utf8(ferroserve_ok(&args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let tenant = add(
        "tenant",
        &["--scope", "infer", "--model", "iris_logreg,digits_mlp"],
    );
    let ops = add("ops", &["--scope", "read,admin", "--rate", "5"]);
    assert!(tenant.starts_with("fsk_") && ops.starts_with("fsk_") && tenant != ops);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(&tenant[4..]) && !text.contains(&ops[4..]),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let list = ferroserve_ok(&["keys", "list", "--file", file_arg]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(
        list,
        "tenant\tinfer\tiris_logreg,digits_mlp\tdefault rate\nops\tread,admin\tevery model\t5/s, burst 5\n"
    );

    let again = ferroserve(&[
        "keys", "add", "--file", file_arg, "--name", "ops", "--scope", "read",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already"));
    let bad_scope = ferroserve(&[
        "keys", "add", "--file", file_arg, "--name", "x", "--scope", "root",
    ]);
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("unknown scope 'root'"));

    ferroserve_ok(&["keys", "remove", "--file", file_arg, "--name", "tenant"]);
    let list = ferroserve_ok(&["keys", "list", "--file", file_arg]);
    assert_eq!(
        String::from_utf8(list.stdout).unwrap(),
        "ops\tread,admin\tevery model\t5/s, burst 5\n"
    );
    let missing = ferroserve(&["keys", "remove", "--file", file_arg, "--name", "tenant"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no key of that name"));

    std::fs::write(&file, "[[key]]\nname = \"a\"\n").unwrap();
    let serve = [
        "serve",
        "--api-keys",
        file_arg,
        "--http-port",
        "0",
        "--no-grpc",
    ];
    ferroserve_fails(&serve, &["API key file", "keys.toml"]);
}

/// Bound beyond loopback with no keys, the server says once that everything is open. The
/// address is TEST-NET-1 (RFC 5737), which no interface here has: the server warns, then fails
/// to bind, so the test never listens beyond loopback.
#[test]
fn an_open_server_beyond_loopback_says_so() {
    let serve = [
        "serve",
        "--host",
        "192.0.2.1",
        "--http-port",
        "0",
        "--no-grpc",
    ];
    let stderr = ferroserve_fails(&serve, &["open to anyone who can reach 192.0.2.1"]);
    assert_eq!(stderr.matches("no --api-keys").count(), 1, "{stderr}");
    assert!(stderr.contains("cannot listen on 192.0.2.1"), "{stderr}");
}

/// TLS flags: the certificate and key go together, the client CA needs them, and a file that
/// is not a certificate is named.
#[test]
fn tls_flags_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("server.crt");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--http-port", "0", "--no-grpc"];
        args.extend_from_slice(extra);
        args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ferroserve_fails(&args, needles);
    };
    run(
        serve(&["--tls-cert", junk]),
        &["--tls-cert and --tls-key go together"],
    );
    run(
        serve(&["--tls-client-ca", junk]),
        &["--tls-client-ca needs --tls-cert"],
    );
    run(
        serve(&["--tls-cert", junk, "--tls-key", junk]),
        &["TLS certificate", "server.crt", "no CERTIFICATE block"],
    );
}

/// Management calls, refused ones too, and a changed key file each leave one audit line
/// (target `audit`) naming who, what and the outcome; inference leaves none.
#[test]
fn management_actions_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let file_arg = file.to_str().unwrap().to_owned();
    let add = |name: &str, scope: &str| {
        let args = [
            "keys", "add", "--file", &file_arg, "--name", name, "--scope", scope,
        ];
        String::from_utf8(ferroserve_ok(&args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let ops = add("ops", "admin");
    let reader = add("reader", "read,infer");
    let Server {
        mut child,
        addr,
        log,
    } = start_server(&["--api-keys", &file_arg, "--model-control", "explicit"]);
    let client = reqwest::Client::new();
    let post = |path: &str, key: &str| {
        let request = client
            .post(format!("http://{addr}{path}"))
            .bearer_auth(key)
            .json(&serde_json::json!({}));
        block_on(async { request.send().await.unwrap().status().as_u16() })
    };
    assert_eq!(post("/v2/repository/models/iris_logreg/load", &ops), 200);
    assert_eq!(
        post("/v2/repository/models/iris_logreg/unload", &reader),
        403
    );
    assert_eq!(post("/v2/models/iris_logreg/infer", &reader), 400);
    add("later", "read");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let audit: Vec<String> = log
        .map_while(Result::ok)
        .filter(|l| l.contains("management action"))
        .collect();
    assert_eq!(audit.len(), 3, "{audit:#?}");
    let has = |needles: &[&str]| audit.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(
        has(&[
            "who=\"ops\"",
            "POST /v2/repository/models/iris_logreg/load",
            "200 OK"
        ]),
        "{audit:#?}"
    );
    assert!(
        has(&[
            "who=\"reader\"",
            "/unload",
            "refused",
            "lacks the 'admin' scope"
        ]),
        "{audit:#?}"
    );
    assert!(
        has(&["who=\"key file\"", "added [later]", "3 keys"]),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .all(|l| !l.contains(&ops) && !l.contains(&reader))
    );
}

/// Refusals a client causes do not flood the log: 30 requests with a wrong key write at most
/// a warning a second, and no ERROR line.
#[test]
fn refused_requests_do_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    let file_arg = file.to_str().unwrap().to_owned();
    let args = [
        "keys", "add", "--file", &file_arg, "--name", "c", "--scope", "infer",
    ];
    ferroserve_ok(&args);
    let Server {
        mut child,
        addr,
        log,
    } = start_server(&["--api-keys", &file_arg]);
    let client = reqwest::Client::new();
    let refused = block_on(async {
        let mut refused = 0;
        for _ in 0..30 {
            let response = client
                .get(format!("http://{addr}/v2/models/digits_mlp"))
                .bearer_auth("fsk_wrong")
                .send()
                .await
                .unwrap();
            refused += u32::from(response.status() == 401);
        }
        refused
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let lines: Vec<String> = log.map_while(Result::ok).collect();
    assert_eq!(refused, 30);
    let errors = lines.iter().filter(|l| l.contains("ERROR")).count();
    let warnings = lines
        .iter()
        .filter(|l| l.contains("request refused"))
        .count();
    assert_eq!(errors, 0, "{lines:#?}");
    assert!(
        (1..=5).contains(&warnings),
        "{warnings} warnings: {lines:#?}"
    );
}

#[test]
fn health_exits_zero_for_a_ready_server_and_one_for_none() {
    let mut server = start_server(&[]);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    let mut ready = false;
    for _ in 0..200 {
        if ferroserve(&["health", "--http-port", &port])
            .status
            .success()
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let live = ferroserve(&["health", "--live", "--http-port", &port]);
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert!(
        ready,
        "the server never became ready to `ferroserve health`"
    );
    assert!(live.status.success());
    let gone = ferroserve(&["health", "--http-port", &port]);
    assert_eq!(gone.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/v2/health/ready")),
        "{stderr}"
    );
}
