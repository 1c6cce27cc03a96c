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
//! Every case goes through [`Watched::send`], the one "send a body, read the peak" helper, so
//! more decoders (V2 JSON and binary, gRPC) can be added as cases. Linux only: skipped, with a
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
        if status_bytes(std::process::id(), "VmHWM:").is_none() {
            eprintln!("skipped: no /proc/<pid>/status to read memory from");
            return None;
        }
        let Server { child, addr, log } = start_server(&[
            "--max-request-bytes",
            &max_request_bytes.to_string(),
            "--no-grpc",
        ]);
        // Keep reading the log, so that the server never blocks on a full pipe.
        std::thread::spawn(move || log.map_while(Result::ok).for_each(drop));
        let mut watched = Watched {
            child,
            addr,
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

    /// Sends `body` to `path` while a normal request is answered alongside; the answer and
    /// the server's peak memory meanwhile.
    fn send(&self, path: &str, body: Vec<u8>) -> Hit {
        let before = self.rss();
        self.reset_peak();
        let size = body.len();
        let started = Instant::now();
        let (status, error) = block_on(async {
            let hostile = async {
                let answer = self
                    .client
                    .post(format!("http://{}{path}", self.addr))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{path} ({size} bytes): {e}"));
                let status = answer.status().as_u16();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                (status, body["error"].as_str().unwrap_or("").to_owned())
            };
            let alongside = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.normal(&format!("during {path}")).await;
            };
            let (answer, ()) = tokio::join!(hostile, alongside);
            answer
        });
        let peak = status_bytes(self.pid(), "VmHWM:").expect("the server is running");
        eprintln!(
            "{path}: {size} bytes -> {status} in {:?}; peak {} MiB from {} MiB (baseline {} MiB, \
             bound {} MiB): {error}",
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
        let hit = self.send(path, body);
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
