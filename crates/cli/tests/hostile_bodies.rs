//! Hostile request bodies against the real `ferroserve serve`, as any client can send them:
//! each gets a clear 4xx naming the limit or the field at fault, the server's peak memory while
//! it decodes stays within a bound set by `--max-request-bytes`, it answers a normal request
//! during and after, and its memory comes back afterwards.
//!
//! The bound: one decode holds the body (at most `--max-request-bytes`) and what it decodes to
//! (at most as much again: the decoded-bytes budget), so the peak resident memory stays under
//! what the server held before + 2 × `--max-request-bytes` per concurrent decode (one here), plus
//! [`SLACK`] for the rest of a request's path. Before the decoders were bounded, the bodies
//! here took the server from about 40 MiB to 260-380 MiB (8 MiB bodies), 1.35 GB (the 48 MiB
//! one), or killed it (the 78 KiB context).
//!
//! Every case goes through [`Watched::watch`], the one "send, read the peak" helper: TF Serving
//! REST, V2 JSON and the binary extension, and gRPC. Many large bodies at once are bounded by
//! `--max-inflight-bytes` instead: past it they get 503 at once. Linux only: skipped, with a
//! message, where `/proc` is absent.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Server, block_on, start_server};

const MIB: usize = 1 << 20;

/// How many times `--max-request-bytes` one decode may hold: the body, and the tensors it
/// decodes to (at most as much again).
const BODIES_HELD: usize = 2;

/// Room above the bound for what is not the body or its tensors: the connection's buffers,
/// the concurrent normal request, allocator bookkeeping.
const SLACK: usize = 16 * MIB;

/// A normal request, answered during and after every hostile one.
const IRIS: &str = "/v1/models/iris_logreg:predict";
const IRIS_BODY: &str = r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#;

/// A field of `/proc/<pid>/status` given in kB (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What the server answered to one body, and its memory meanwhile.
struct Hit {
    status: u16,
    /// The `error` of the answer.
    error: String,
    /// The peak resident memory while it was handled (`VmHWM`, reset before sending).
    peak: usize,
    /// The resident memory before it was sent.
    before: usize,
}

/// `ferroserve serve` with its memory watched.
struct Watched {
    child: Child,
    addr: String,
    /// Its gRPC address, `127.0.0.1:PORT`.
    grpc_addr: String,
    max_request_bytes: usize,
    /// Resident memory once started and warmed by a few normal requests.
    baseline: usize,
    /// Whether `VmHWM` can be reset per body (else it is the peak since start).
    resettable: bool,
    client: reqwest::Client,
}

impl Watched {
    /// Starts the server on the example repository with `--max-request-bytes`; `None` (and a
    /// message) without `/proc`.
    fn start(max_request_bytes: usize) -> Option<Watched> {
        Watched::start_with(max_request_bytes, &[])
    }

    /// [`Watched::start`] with more flags.
    fn start_with(max_request_bytes: usize, extra: &[&str]) -> Option<Watched> {
        if status_bytes(std::process::id(), "VmHWM:").is_none() {
            eprintln!("skipped: no /proc/<pid>/status to read memory from");
            return None;
        }
        let mut args = vec![
            "--max-request-bytes".to_owned(),
            max_request_bytes.to_string(),
        ];
        args.extend(extra.iter().map(|&a| a.to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Server {
            child,
            addr,
            mut log,
        } = start_server(&args);
        let grpc_addr = log
            .by_ref()
            .take(20)
            .map_while(Result::ok)
            .find_map(|l| {
                let at = l.find("listening on grpc://")? + "listening on grpc://".len();
                Some(l[at..].split_whitespace().next()?.to_owned())
            })
            .expect("no 'listening on grpc://' line");
        // Keep reading the log, so that the server never blocks on a full pipe.
        std::thread::spawn(move || log.map_while(Result::ok).for_each(drop));
        let mut watched = Watched {
            child,
            addr,
            grpc_addr,
            max_request_bytes,
            baseline: 0,
            resettable: false,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        block_on(watched.ready());
        for _ in 0..5 {
            watched.assert_answers("warming up");
        }
        watched.baseline = watched.rss();
        watched.resettable = watched.reset_peak();
        if !watched.resettable {
            eprintln!("VmHWM cannot be reset: each peak is the peak since start");
        }
        Some(watched)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss(&self) -> usize {
        status_bytes(self.pid(), "VmRSS:").expect("the server is running")
    }

    /// Resets `VmHWM` to the current resident memory.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// The largest peak the bound allows for a request sent when the server held `before`.
    fn bound(&self, before: usize) -> usize {
        before.max(self.baseline) + BODIES_HELD * self.max_request_bytes + SLACK
    }

    /// Waits for the models to load (the server listens before).
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}/v2/health/ready", self.addr);
        while !self
            .client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "the models did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The normal request, which must be answered.
    async fn normal(&self, when: &str) {
        let answer = self
            .client
            .post(format!("http://{}{IRIS}", self.addr))
            .body(IRIS_BODY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{when}: the normal request failed: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{when}: {text}");
    }

    fn assert_answers(&self, when: &str) {
        block_on(self.normal(when));
    }

    /// Sends `body` to `path` (with `headers`) while a normal request is answered alongside;
    /// the answer and the server's peak memory meanwhile.
    fn send_with(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Hit {
        let size = body.len();
        self.watch(&format!("{path} ({size} bytes)"), async {
            let mut request = self
                .client
                .post(format!("http://{}{path}", self.addr))
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in headers {
                request = request.header(*k, v);
            }
            let answer = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path} ({size} bytes): {e}"));
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, body["error"].as_str().unwrap_or("").to_owned())
        })
    }

    /// Runs `hostile` (which answers a status and an error message) while a normal request
    /// is answered alongside; the answer and the server's peak memory meanwhile.
    fn watch(&self, what: &str, hostile: impl std::future::Future<Output = (u16, String)>) -> Hit {
        let path = what;
        let before = self.rss();
        self.reset_peak();
        let started = Instant::now();
        let (status, error) = block_on(async {
            let alongside = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.normal(&format!("during {path}")).await;
            };
            let (answer, ()) = tokio::join!(hostile, alongside);
            answer
        });
        let peak = status_bytes(self.pid(), "VmHWM:").expect("the server is running");
        eprintln!(
            "{path} -> {status} in {:?}; peak {} MiB from {} MiB (baseline {} MiB, bound {} MiB): \
             {error}",
            started.elapsed(),
            peak / MIB,
            before / MIB,
            self.baseline / MIB,
            self.bound(before) / MIB,
        );
        self.assert_answers(&format!("after {path}"));
        Hit {
            status,
            error,
            peak,
            before,
        }
    }

    /// Sends `body` and checks the answer is `status` with an error containing every one of
    /// `needles`, and the peak within the bound.
    fn refused(&self, path: &str, body: Vec<u8>, status: u16, needles: &[&str]) {
        self.refused_with(path, body, &[], status, needles);
    }

    /// [`Watched::refused`] with extra headers.
    fn refused_with(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
        status: u16,
        needles: &[&str],
    ) {
        let hit = self.send_with(path, body, headers);
        assert_eq!(hit.status, status, "{path}: {}", hit.error);
        for needle in needles {
            assert!(hit.error.contains(needle), "{path}: {:?}", hit.error);
        }
        assert!(
            hit.peak <= self.bound(hit.before),
            "{path}: peak {} MiB over the bound {} MiB",
            hit.peak / MIB,
            self.bound(hit.before) / MIB
        );
    }

    /// Checks that the resident memory came back to within `allowance` of the baseline.
    fn assert_memory_returned(&self, allowance: usize) {
        let slack = allowance;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rss = self.rss();
            if rss <= self.baseline + slack {
                eprintln!(
                    "resident memory after: {} MiB (baseline {} MiB)",
                    rss / MIB,
                    self.baseline / MIB
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "resident memory stays at {} MiB, baseline {} MiB",
                rss / MIB,
                self.baseline / MIB
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[0,0,0,0],` `rows` times, as the rows of a list.
fn zero_rows(rows: usize, width: usize) -> String {
    let row = format!("[{}0]", "0,".repeat(width - 1));
    let mut out = String::with_capacity(rows * (row.len() + 1) + 2);
    out.push('[');
    for i in 0..rows {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&row);
    }
    out.push(']');
    out
}

/// 10,000 context values shared by 20,000 empty examples: 78 KiB that once made the server
/// copy the context into every example, gigabytes before any check.
fn context_bomb() -> Vec<u8> {
    format!(
        "{{\"context\": {{\"input\": [{}0]}}, \"examples\": [{}{{}}]}}",
        "0,".repeat(9_999),
        "{},".repeat(19_999)
    )
    .into_bytes()
}

#[test]
fn tf_serving_bodies_within_the_body_limit_are_refused_within_the_memory_bound() {
    let limit = 8 * MIB;
    let Some(server) = Watched::start(limit) else {
        return;
    };
    let body = context_bomb();
    assert!(body.len() < 80 * 1024);
    for verb in ["classify", "regress"] {
        server.refused(
            &format!("/v1/models/iris_logreg:{verb}"),
            body.clone(),
            400,
            &["batch size 20000", "max_batch_size 1024"],
        );
    }

    // Rows: as many `[0,0,0,0]` as fit the limit (about 800,000); refused at row 1025.
    let rows = (limit - 64) / 10;
    let instances = format!("{{\"instances\": {}}}", zero_rows(rows, 4)).into_bytes();
    assert!(instances.len() <= limit);
    server.refused(IRIS, instances, 400, &["max_batch_size 1024"]);
    let inputs = format!("{{\"inputs\": {}}}", zero_rows(rows, 4)).into_bytes();
    server.refused(IRIS, inputs, 400, &["max_batch_size 1024"]);

    // Columns: 1,000 rows of 4,096 zeros, 8 MB of JSON that would decode to 16 MB of FP32.
    let wide = format!("{{\"inputs\": {}}}", zero_rows(1000, 4096)).into_bytes();
    assert!(wide.len() <= limit);
    server.refused(
        "/v1/models/digits_mlp:predict",
        wide,
        413,
        &["--max-request-bytes"],
    );

    // A name the model lacks, with 8 MB of data: refused at the name.
    let unknown = format!(
        "{{\"inputs\": {{\"bogus\": [{}0]}}}}",
        "0,".repeat((limit - 64) / 2 - 1)
    )
    .into_bytes();
    server.refused(IRIS, unknown, 400, &["no input 'bogus'", "[\"input\"]"]);

    // Nothing is kept, but glibc keeps freed blocks below its mmap threshold (which it raises
    // up to the largest block freed, here a body) for reuse rather than returning them: at
    // most about one request's worth stays resident, and the next request reuses it.
    server.assert_memory_returned(BODIES_HELD * limit + SLACK);
}

/// The 48 MiB body of 5,000,000 rows that once took 1.3 GB: with the default limit (64 MiB)
/// it is decoded, and refused at row 1025.
#[test]
fn five_million_instances_are_refused_at_the_batch_limit() {
    let limit = 64 * MIB;
    let Some(server) = Watched::start(limit) else {
        return;
    };
    let instances = format!("{{\"instances\": {}}}", zero_rows(5_000_000, 4)).into_bytes();
    assert!(instances.len() > 47 * MIB && instances.len() <= limit);
    server.refused(
        IRIS,
        instances,
        400,
        &["batch size 5000000", "max_batch_size 1024"],
    );
    // Blocks this large are mapped and unmapped whole: all of it goes back.
    server.assert_memory_returned(SLACK);
}

/// `n` empty strings as a JSON list: 3 bytes each.
fn empty_strings(n: usize) -> String {
    let mut out = String::with_capacity(3 * n + 2);
    out.push('[');
    for i in 0..n {
        out.push_str(if i == 0 { "\"\"" } else { ",\"\"" });
    }
    out.push(']');
    out
}

/// V2 bodies the model cannot take: inputs it lacks, with megabytes of data behind them, and
/// a shape of more elements than a tensor may have. Each is refused from its header, before
/// its data is read.
#[test]
fn v2_bodies_are_refused_from_their_headers_within_the_memory_bound() {
    let limit = 8 * MIB;
    let Some(server) = Watched::start(limit) else {
        return;
    };
    let infer = "/v2/models/iris_logreg/infer";
    // Two BYTES inputs the model lacks, 1.3 million empty strings each: 8 MB of JSON that a
    // Vec per element would have made 60 MB.
    let n = (limit - 256) / 6;
    let strings = empty_strings(n);
    let body = format!(
        r#"{{"inputs": [{{"name": "a", "shape": [{n}], "datatype": "BYTES", "data": {strings}}},
                        {{"name": "b", "shape": [{n}], "datatype": "BYTES", "data": {strings}}}]}}"#
    );
    assert!(body.len() <= limit);
    server.refused(infer, body.into_bytes(), 400, &["unexpected input 'a'"]);

    // The same through the binary extension: the header names the input, the data follows.
    let header = format!(
        r#"{{"inputs": [{{"name": "bogus", "shape": [1, 4], "datatype": "FP32", "parameters": {{"binary_data_size": {}}}}}]}}"#,
        limit - 512
    );
    let mut body = header.clone().into_bytes();
    body.resize(header.len() + limit - 512, 0);
    server.refused_with(
        infer,
        body,
        &[("inference-header-content-length", header.len().to_string())],
        400,
        &["unexpected input 'bogus'"],
    );

    // More elements than a tensor may have (16 Mi), declared in a few bytes.
    let body = r#"{"inputs": [{"name": "input", "shape": [1000000000, 4], "datatype": "FP32", "data": [0]}]}"#;
    server.refused(
        infer,
        body.as_bytes().to_vec(),
        400,
        &["elements exceed the limit"],
    );

    // gRPC: an input the model lacks with 8 MB of raw contents.
    use ferroserve_server::protocol::grpc::proto;
    use proto::grpc_inference_service_client::GrpcInferenceServiceClient;
    let url = format!("http://{}", server.grpc_addr);
    let request = proto::ModelInferRequest {
        model_name: "iris_logreg".into(),
        inputs: vec![proto::model_infer_request::InferInputTensor {
            name: "bogus".into(),
            datatype: "FP32".into(),
            shape: vec![(limit / 16) as i64, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![vec![0; limit]],
        ..Default::default()
    };
    let hit = server.watch("gRPC ModelInfer (8 MiB)", async {
        let mut client = GrpcInferenceServiceClient::connect(url).await.unwrap();
        match client.model_infer(request).await {
            Ok(_) => (200, String::new()),
            Err(status) => (400, format!("{:?}: {}", status.code(), status.message())),
        }
    });
    assert!(
        hit.error.starts_with("InvalidArgument") && hit.error.contains("unexpected input 'bogus'"),
        "{}",
        hit.error
    );
    assert!(
        hit.peak <= server.bound(hit.before),
        "gRPC: peak {} MiB",
        hit.peak / MIB
    );

    // gRPC typed contents: 1.3 million empty strings in each of two inputs, about 5 MB sent,
    // which prost would make 62 MB of Vecs. Refused from the wire bytes, before decoding.
    let strings = |name: &str| proto::model_infer_request::InferInputTensor {
        name: name.into(),
        datatype: "BYTES".into(),
        shape: vec![n as i64],
        contents: Some(proto::InferTensorContents {
            bytes_contents: vec![Vec::new(); n],
            ..Default::default()
        }),
        ..Default::default()
    };
    let request = proto::ModelInferRequest {
        model_name: "iris_logreg".into(),
        inputs: vec![strings("a"), strings("b")],
        ..Default::default()
    };
    let url = format!("http://{}", server.grpc_addr);
    let hit = server.watch("gRPC ModelInfer, 2.6 million typed strings", async {
        let mut client = GrpcInferenceServiceClient::connect(url).await.unwrap();
        match client.model_infer(request).await {
            Ok(_) => (200, String::new()),
            Err(status) => (400, format!("{:?}: {}", status.code(), status.message())),
        }
    });
    assert!(
        hit.error.starts_with("InvalidArgument") && hit.error.contains("bytes decoded"),
        "{}",
        hit.error
    );
    assert!(
        hit.peak <= server.bound(hit.before),
        "gRPC strings: peak {} MiB",
        hit.peak / MIB
    );
    server.assert_memory_returned(BODIES_HELD * limit + SLACK);
}

/// Twelve 8 MiB bodies at once against a 36 MiB budget for requests in flight: those past the
/// budget get 503 at once, and the server's peak stays within the budget (plus the slack),
/// not twelve bodies' worth.
#[test]
fn many_large_bodies_at_once_stay_within_the_inflight_budget() {
    let limit = 8 * MIB;
    let budget = 36 * MIB;
    let Some(server) = Watched::start_with(limit, &["--max-inflight-bytes", &budget.to_string()])
    else {
        return;
    };
    let n = (limit - 256) / 6;
    let strings = empty_strings(n);
    let body = format!(
        r#"{{"inputs": [{{"name": "a", "shape": [{n}], "datatype": "BYTES", "data": {strings}}},
                        {{"name": "b", "shape": [{n}], "datatype": "BYTES", "data": {strings}}}]}}"#
    )
    .into_bytes();
    let url = format!("http://{}/v2/models/iris_logreg/infer", server.addr);
    let client = &server.client;
    let hit = server.watch("12 concurrent 8 MiB bodies", async {
        let sends = (0..12).map(|_| async {
            let answer = client.post(&url).body(body.clone()).send().await;
            answer.map_or(0, |a| a.status().as_u16())
        });
        let statuses = futures::future::join_all(sends).await;
        let refused = statuses.iter().filter(|&&s| s == 503).count();
        let rejected = statuses.iter().filter(|&&s| s == 400).count();
        assert_eq!(refused + rejected, 12, "{statuses:?}");
        (if refused > 0 { 503 } else { 400 }, format!("{statuses:?}"))
    });
    // Each request holds its body (8 MiB) while it is read and checked; the budget admits
    // four at a time, and leaves room for the normal requests alongside. Twelve connections'
    // buffers and the allocator's per-thread arenas take more than one request's slack;
    // without the budget the bodies alone would be 96 MiB.
    let bound = hit.before.max(server.baseline) + budget + 24 * MIB;
    assert!(
        hit.peak <= bound,
        "peak {} MiB over {} MiB ({})",
        hit.peak / MIB,
        bound / MIB,
        hit.error
    );
    server.assert_memory_returned(budget + 24 * MIB);
}
