//! The test kit: a server on a free local port over a chosen repository, oracle files, and a
//! small `test` runtime whose models can be made slow or to panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{
    DataType, LoadError, Model, ModelError, Runtime, RuntimeRegistry, Signature, Tensor,
    TensorData, TensorSpec,
};
use ferroserve_server::{Listeners, ServerConfig, runtime_registry, serve_listeners};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

/// The bundled example repository.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

/// The oracle directory of an example model.
pub fn oracle_dir(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/oracles")
        .join(model)
}

/// Reads a JSON oracle file.
pub fn oracle(model: &str, file: &str) -> Value {
    let path = oracle_dir(model).join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A copy of the example repository in a temporary directory, to add or break models in.
pub fn temp_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples(), dir.path());
    dir
}

/// [`temp_repository`] with iris_logreg served as versions 1 and 2 (the same file), its
/// `model.toml` set to `version_policy = "all"` followed by `more_toml`.
pub fn temp_repository_two_iris(more_toml: &str) -> tempfile::TempDir {
    let repo = temp_repository();
    let iris = repo.path().join("iris_logreg");
    std::fs::create_dir_all(iris.join("2")).unwrap();
    std::fs::copy(iris.join("1/model.onnx"), iris.join("2/model.onnx")).unwrap();
    let toml = format!("version_policy = \"all\"\n{more_toml}");
    std::fs::write(iris.join("model.toml"), toml).unwrap();
    repo
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Writes a `test`-runtime model version: `y = 2x` over `x: FP32 [-1, 2]`, sleeping
/// `delay_ms` per call, panicking on any negative input.
pub fn write_test_model(repository: &Path, name: &str, version: u64, delay_ms: u64) {
    let dir = repository.join(name).join(version.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test.model"), delay_ms.to_string()).unwrap();
}

/// Writes `contents` as `<model_dir>/<version>/<file>` in one rename, as a deployment tool
/// would publish a version.
pub fn publish(model_dir: &Path, version: u64, file: &str, contents: &[u8]) {
    let staging = model_dir.join(format!(".staging-{version}"));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join(file), contents).unwrap();
    std::fs::rename(&staging, model_dir.join(version.to_string())).unwrap();
}

/// Replaces (or adds) one file of a version directory in one rename.
pub fn replace_file(model_dir: &Path, version: u64, file: &str, contents: &[u8]) {
    let tmp = model_dir.join(".replacing.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, model_dir.join(version.to_string()).join(file)).unwrap();
}

/// The contents of a `test`-runtime model file computing `y = factor·x` with no delay, so an
/// answer tells which version gave it. The closing newline is part of the format: a file cut
/// short anywhere fails to load, as a truncated upload of a real model does.
pub fn scaling_model(factor: u64) -> String {
    format!("0 {factor}\n")
}

/// The runtime of `write_test_model`'s files.
#[derive(Debug)]
struct TestRuntime;

#[derive(Debug)]
struct ScalingModel {
    signature: Signature,
    delay: Duration,
    factor: f32,
}

impl Runtime for TestRuntime {
    fn name(&self) -> &'static str {
        "test"
    }
    fn platform(&self) -> &'static str {
        "test"
    }
    fn model_files(&self) -> &'static [&'static str] {
        &["test.model"]
    }
    fn load(&self, dir: &Path, _: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let path = dir.join("test.model");
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let invalid = |message: &str| LoadError::Engine {
            path: path.clone(),
            message: message.into(),
        };
        // `DELAY_MS`, or `DELAY_MS FACTOR\n` (the newline marks a complete file).
        let (delay, factor) = match text.split_whitespace().collect::<Vec<_>>()[..] {
            [delay] => (delay, "2"),
            [delay, factor] if text.ends_with('\n') => (delay, factor),
            _ => return Err(invalid("not 'DELAY_MS [FACTOR]\\n' (cut short?)")),
        };
        let delay_ms: u64 = delay
            .parse()
            .map_err(|_| invalid("not a delay in milliseconds"))?;
        let factor: f32 = factor.parse().map_err(|_| invalid("not a factor"))?;
        Ok(Arc::new(ScalingModel {
            signature: Signature {
                inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
                outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 2])],
            },
            delay: Duration::from_millis(delay_ms),
            factor,
        }))
    }
}

impl Model for ScalingModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        std::thread::sleep(self.delay);
        let TensorData::F32(x) = inputs[0].data() else {
            unreachable!()
        };
        assert!(x.iter().all(|v| *v >= 0.0), "negative input");
        let y = x.iter().map(|v| v * self.factor).collect();
        Ok(vec![
            Tensor::new("y", inputs[0].shape.clone(), TensorData::F32(y)).unwrap(),
        ])
    }
}

/// A running server and a client for it.
pub struct TestServer {
    /// Where it listens for HTTP.
    pub addr: SocketAddr,
    /// Where it listens for gRPC.
    pub grpc_addr: SocketAddr,
    /// Where it serves `/metrics` alone.
    pub metrics_addr: SocketAddr,
    /// A client with keep-alive.
    pub client: reqwest::Client,
    /// `http`, or `https` when the server has TLS.
    scheme: &'static str,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves the example repository with default settings.
    pub async fn examples() -> TestServer {
        TestServer::start(ServerConfig::new(examples())).await
    }

    /// Serves `config`, with the ONNX and test runtimes, and waits until ready.
    pub async fn start(config: ServerConfig) -> TestServer {
        TestServer::start_with_client(config, reqwest::Client::new()).await
    }

    /// [`TestServer::start`] with `client` for the requests (one trusting the server's
    /// certificate, when `config` has TLS).
    pub async fn start_with_client(config: ServerConfig, client: reqwest::Client) -> TestServer {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut runtimes: RuntimeRegistry = runtime_registry();
        runtimes.register(Arc::new(TestRuntime));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = Listeners {
            http: listener,
            grpc: Some(grpc),
            metrics: Some(metrics),
        };
        let handle = tokio::spawn(serve_listeners(config, runtimes, listeners, async {
            let _ = rx.await;
        }));
        let server = TestServer {
            addr,
            grpc_addr,
            metrics_addr,
            client,
            scheme,
            shutdown: Some(tx),
            handle,
        };
        for _ in 0..600 {
            if let Ok(r) = server
                .client
                .get(server.url("/v2/health/ready"))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server not ready after 30 s");
    }

    /// `http://addr/path` (`https` with TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// GET, returning status and JSON body (`Null` when empty).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        into_json(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// GET, returning the body as text (`/metrics`, `/dashboard`); panics unless 200.
    pub async fn text(&self, path: &str) -> String {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.unwrap()
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        into_json(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// GET with extra headers, the response as it came.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// POST raw bytes with extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).body(body);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send().await.unwrap()
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.handle.await.unwrap().unwrap();
    }
}

/// Status and JSON body of a response.
pub async fn into_json(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, body)
}

/// Splits a binary-extension response (200 expected) into its JSON header and binary part.
pub async fn split_binary(r: reqwest::Response) -> (Value, Vec<u8>) {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let length: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    (
        serde_json::from_slice(&bytes[..length]).unwrap(),
        bytes[length..].to_vec(),
    )
}

/// Asserts a 4xx whose `error` message contains every one of `needles`.
pub fn assert_client_error(status: StatusCode, body: &Value, needles: &[&str]) {
    assert!(
        status.is_client_error(),
        "expected 4xx, got {status}: {body}"
    );
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"));
    for needle in needles {
        assert!(
            message.contains(needle),
            "error {message:?} does not mention {needle:?}"
        );
    }
}

/// Asserts that V2 `outputs` match the oracle's: same shapes and datatypes, integers exact,
/// floats within the conformance manifest's `onnx_network` tolerance (the example networks').
pub fn assert_outputs_match(got: &Value, expected: &Value) {
    let expected = expected["outputs"].as_array().unwrap();
    let tolerance = ferroserve_conformance::Tolerance::named("onnx_network");
    for e in expected {
        let g = got["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == e["name"])
            .unwrap_or_else(|| panic!("output {} missing in {got}", e["name"]));
        assert_eq!(g["shape"], e["shape"]);
        assert_eq!(g["datatype"], e["datatype"]);
        let (g, e) = (g["data"].as_array().unwrap(), e["data"].as_array().unwrap());
        assert_eq!(g.len(), e.len());
        for (a, b) in g.iter().zip(e) {
            if b.is_i64() || b.is_u64() {
                assert_eq!(a, b);
            } else {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert!(tolerance.close(a, b), "{a} vs {b}");
            }
        }
    }
}
