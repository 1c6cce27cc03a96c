//! `--model-repository s3://...` against a real S3-compatible server (moto's, from the project's
//! venv, started per test on a free port), and `https://`-style trees served by a real HTTP
//! server: versions published by upload are picked up by polling, half-uploaded ones are not,
//! a restart reuses the cache (the store's request log shows no download), and files whose
//! hash does not match are refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, block_on, root, start_server_with_env};

/// A server whose log is drained (so it never blocks on a full pipe), killed on drop (so a
/// failed assertion leaves nothing running).
struct Running {
    child: Child,
    addr: String,
}

impl Running {
    fn new(server: Server) -> Running {
        let Server { child, addr, log } = server;
        std::thread::spawn(move || log.for_each(drop));
        Running { child, addr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's S3 server, killed on drop.
struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    /// Its request log: `METHOD PATH STATUS`, one per request.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Whether moto is in `.venv` (`scripts/python-env.sh`); when not, the test is skipped,
    /// unless `FERROSERVE_REQUIRE_MOTO` is set (CI).
    fn installed() -> bool {
        let python = root().join(".venv/bin/python");
        let installed = python.exists()
            && Command::new(&python)
                .args(["-c", "import moto, flask"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("FERROSERVE_REQUIRE_MOTO").is_none(),
                "FERROSERVE_REQUIRE_MOTO is set but .venv has no moto: run scripts/python-env.sh"
            );
            eprintln!("skipped: no moto in .venv (scripts/python-env.sh installs it)");
        }
        installed
    }

    /// Starts moto on a free port, with the bucket `models`; `None` when not installed.
    fn start() -> Option<Moto> {
        Moto::installed().then(|| Moto::start_on(None))
    }

    /// Starts moto on `port` (a free one when `None`), with the bucket `models`.
    fn start_on(port: Option<u16>) -> Moto {
        let python = root().join(".venv/bin/python");
        let mut child = Command::new(&python)
            .arg(root().join("tests/object_store/moto_s3.py"))
            .args(port.map(|p| p.to_string()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("PORT ").map(str::to_owned))
            .expect("moto printed no port");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        moto.request(reqwest::Method::PUT, "models", Vec::new());
        moto
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Vec<u8>) {
        let url = format!("{}/{path}", self.endpoint);
        let status = block_on(async {
            reqwest::Client::new()
                .request(method, &url)
                .header("content-type", "application/octet-stream")
                // moto picks the service from the credential scope; it checks no signature.
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                     SignedHeaders=host, Signature=0",
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(status.is_success(), "{url}: {status}");
    }

    /// Uploads `body` as `key` in the bucket `models`.
    fn put(&self, key: &str, body: impl Into<Vec<u8>>) {
        self.request(reqwest::Method::PUT, &format!("models/{key}"), body.into());
    }

    fn delete(&self, key: &str) {
        self.request(
            reqwest::Method::DELETE,
            &format!("models/{key}"),
            Vec::new(),
        );
    }

    /// The objects read so far (successful GETs of a key, not listings).
    fn downloads(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("GET /models/") && l.ends_with(" 200") && !l.contains('?'))
            .cloned()
            .collect()
    }
}

fn iris_model() -> Vec<u8> {
    std::fs::read(root().join("examples/models/iris_logreg/1/model.onnx")).unwrap()
}

/// The status of `GET path` on `server`.
fn get(server: &Running, path: &str) -> u16 {
    block_on(async {
        reqwest::get(format!("http://{}{path}", server.addr))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

/// Waits (≤ 20 s) until `GET path` answers `status`.
fn wait_for(server: &Running, path: &str, status: u16) {
    let start = Instant::now();
    while get(server, path) != status {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{path} never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Infers on iris version `version` and asserts the answer came from it.
fn infer(server: &Running, version: u64) {
    let body = std::fs::read(root().join("examples/oracles/iris_logreg/request.json")).unwrap();
    let (status, answer) = block_on(async {
        let r = reqwest::Client::new()
            .post(format!(
                "http://{}/v2/models/iris/versions/{version}/infer",
                server.addr
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["model_version"], version.to_string(), "{answer}");
}

/// `ferroserve serve` on the repository `s3://models/repo` of the store at `endpoint`, with
/// `extra` flags, reaching the store as it would reach S3: through the environment.
fn serve_s3(endpoint: &str, cache: &Path, state: &Path, extra: &[&str]) -> Running {
    let env = [
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    let mut args = vec![
        "--model-repository",
        "s3://models/repo",
        "--model-cache-dir",
        cache.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--no-grpc",
    ];
    args.extend_from_slice(extra);
    Running::new(start_server_with_env(&args, &env))
}

/// [`serve_s3`] on `moto`, polling the store every 0.2 s.
fn serve(moto: &Moto, cache: &Path, state: &Path) -> Running {
    let poll = ["--model-control", "poll", "--repository-poll-secs", "0.2"];
    serve_s3(&moto.endpoint, cache, state, &poll)
}

/// Publish by upload, half-uploaded versions, removal, and a restart on the cache.
#[test]
fn an_s3_repository_is_served_from_its_cache() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cache, state) = (dir.path().join("cache"), dir.path().join("state"));
    let model = iris_model();
    // A model file beside the versions, and version 1 with an empty marker.
    moto.put("repo/iris/model.toml", "version_policy = \"all\"\n");
    moto.put("repo/iris/1/model.onnx", model.clone());
    moto.put("repo/iris/1/_SUCCESS", "");
    // Files outside any model are not part of the repository.
    moto.put("repo/README.md", "published by CI");

    let server = serve(&moto, &cache, &state);
    wait_for(&server, "/v2/health/ready", 200);
    infer(&server, 1);

    // Version 2 without its marker is not loaded, however many polls pass ...
    moto.put("repo/iris/2/model.onnx", model.clone());
    std::thread::sleep(Duration::from_millis(1500));
    assert_ne!(get(&server, "/v2/models/iris/versions/2/ready"), 200);
    assert!(!cache.join("models/iris/2").exists());
    // ... and is, within a poll or two, once the marker is there.
    moto.put("repo/iris/2/_SUCCESS", "");
    wait_for(&server, "/v2/models/iris/versions/2/ready", 200);
    infer(&server, 2);

    // A manifest marker uploaded first: the version waits for every file it names.
    moto.put(
        "repo/iris/3/_SUCCESS",
        "# every file of this version\nmodel.onnx\n",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_ne!(get(&server, "/v2/models/iris/versions/3/ready"), 200);
    moto.put("repo/iris/3/model.onnx", model);
    wait_for(&server, "/v2/models/iris/versions/3/ready", 200);
    infer(&server, 3);

    // A version removed from the store is unloaded and leaves the cache.
    moto.delete("repo/iris/1/_SUCCESS");
    moto.delete("repo/iris/1/model.onnx");
    let start = Instant::now();
    while get(&server, "/v2/models/iris/versions/1/ready") == 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "version 1 stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!cache.join("models/iris/1").exists());
    assert!(!cache.join("models/README.md").exists());

    // A restart on the same cache downloads nothing: every file's ETag is unchanged.
    let before = moto.downloads();
    assert_eq!(
        before.iter().filter(|l| l.contains("model.onnx")).count(),
        3,
        "each version's model file was downloaded once: {before:?}"
    );
    assert_eq!(
        before.iter().filter(|l| l.contains("3/_SUCCESS")).count(),
        1,
        "a manifest is read once, not at every poll: {before:?}"
    );
    drop(server);
    let server = serve(&moto, &cache, &state);
    wait_for(&server, "/v2/health/ready", 200);
    infer(&server, 2);
    infer(&server, 3);
    let after = moto.downloads();
    assert_eq!(
        after.len(),
        before.len(),
        "the restart downloaded {:?}",
        &after[before.len()..]
    );
    drop(server);
}

/// The store unreachable at start: the server serves what its cache holds.
#[test]
fn an_unreachable_store_leaves_the_cache_serving() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cache, state) = (dir.path().join("cache"), dir.path().join("state"));
    moto.put("repo/iris/1/model.onnx", iris_model());
    moto.put("repo/iris/1/_SUCCESS", "");
    let server = serve(&moto, &cache, &state);
    wait_for(&server, "/v2/health/ready", 200);
    drop(server);
    let endpoint = moto.endpoint.clone();
    drop(moto);

    // The same environment, with the store gone; give up on it at once rather than retry
    // for the default 30 s.
    let server = serve_s3(
        &endpoint,
        &cache,
        &state,
        &["--model-store-retry-secs", "0.5"],
    );
    wait_for(&server, "/v2/health/ready", 200);
    infer(&server, 1);
}

/// No store and nothing cached: the server is not ready, and keeps trying; once the store
/// answers, it turns ready and serves what is published.
#[test]
fn a_server_waits_for_its_first_copy() {
    if !Moto::installed() {
        return;
    }
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = serve_s3(
        &endpoint,
        &dir.path().join("cache"),
        &dir.path().join("state"),
        &[
            "--model-store-retry-secs",
            "0.2",
            "--model-control",
            "poll",
            "--repository-poll-secs",
            "0.2",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(&server, "/v2/health/ready"), 503);
    let moto = Moto::start_on(Some(port));
    wait_for(&server, "/v2/health/ready", 200);
    // The store answered (empty, or with part of what follows); polls bring in the rest.
    moto.put("repo/iris/1/model.onnx", iris_model());
    moto.put("repo/iris/1/_SUCCESS", "");
    wait_for(&server, "/v2/models/iris/versions/1/ready", 200);
    infer(&server, 1);
}

/// An HTTP(S) tree described by `index.json`, served by a real HTTP server: files are checked
/// against the index's SHA-256, and a file that does not match is refused.
#[test]
fn an_http_tree_with_an_index_is_served_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let model = iris_model();
    for (path, content) in [
        ("iris/1/model.onnx", &model[..]),
        ("iris/1/_SUCCESS", b""),
        ("tampered/1/model.onnx", &model[..]),
        ("tampered/1/_SUCCESS", b""),
    ] {
        let at = tree.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, content).unwrap();
    }
    let out = crate::common::ferroserve_ok(&["index", tree.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 files"));
    // After indexing, one file changes: same size, other bytes.
    let mut changed = model;
    changed.reverse();
    std::fs::write(tree.join("tampered/1/model.onnx"), changed).unwrap();

    // A plain static file server on a free port, in this process.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tree;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.spawn(async move {
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let served = served.clone();
            async move {
                let path = uri.path().trim_start_matches("/models/");
                match std::fs::read(served.join(path)) {
                    Ok(bytes) if !path.contains("..") => Ok(bytes),
                    _ => Err(axum::http::StatusCode::NOT_FOUND),
                }
            }
        });
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });

    let url = format!("http://127.0.0.1:{port}/models/");
    let server = Running::new(start_server_with_env(
        &[
            "--model-repository",
            &url,
            "--model-cache-dir",
            dir.path().join("cache").to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--readiness",
            "started",
            "--no-grpc",
        ],
        &[],
    ));
    wait_for(&server, "/v2/health/ready", 200);
    infer(&server, 1);
    assert_ne!(get(&server, "/v2/models/tampered/ready"), 200);
    assert!(!dir.path().join("cache/models/tampered/1").exists());
}
