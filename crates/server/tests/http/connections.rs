//! The HTTP listener's connections under clients that stall or hoard them, over raw TCP:
//! slow headers and idle keep-alive connections are closed after the header timeout while
//! normal requests go on; the connection cap makes new connections wait; an oversized
//! `Content-Length` is refused before its body; a half-sent request cannot hold shutdown past
//! its deadline. Every loop here is bounded in count and time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferroserve_server::ServerConfig;
use ferroserve_server::transport::ConnectionLimits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kit::{TestServer, examples, oracle};

fn config(limits: ConnectionLimits) -> ServerConfig {
    let mut config = ServerConfig::new(examples());
    config.connections = limits;
    config
}

/// Whether the server closed `stream` (a read returns EOF or an error) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or similar before closing: keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn infer_ok(server: &TestServer) {
    let (status, body) = server
        .post(
            "/v2/models/iris_logreg/infer",
            &oracle("iris_logreg", "request.json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// 200 slowloris connections (a header byte every 300 ms), 50 idle keep-alive ones and 40
/// that never send a byte: all are closed soon after the 1 s header timeout, and normal
/// requests are answered meanwhile.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_while_requests_go_on() {
    let server = TestServer::start(config(ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }))
    .await;
    let addr = server.addr;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /v2/health/live HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";
        stream.write_all(request).await.unwrap();
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
    }
    // The slow clients keep trickling while normal requests are served.
    let trickle = tokio::spawn(async move {
        for _ in 0..10 {
            for stream in &mut slow {
                let _ = stream.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        slow
    });
    for _ in 0..10 {
        infer_ok(&server).await;
    }
    let mut slow = trickle.await.unwrap();
    let mut open = 0;
    for stream in slow
        .iter_mut()
        .chain(idle.iter_mut())
        .chain(silent.iter_mut())
    {
        if !closed_within(stream, Duration::from_secs(3)).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "connections still open past the header timeout");
    infer_ok(&server).await;
    server.stop().await;
}

/// Past `max_connections` a new connection waits (it is not served) until one closes.
#[tokio::test]
async fn the_connection_cap_holds_new_connections_until_one_closes() {
    let server = TestServer::start(config(ConnectionLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    }))
    .await;
    // Open keep-alive connections, each answered, until one is not: the cap is reached (the
    // test client's pooled connection may count as one).
    let addr: SocketAddr = server.addr;
    let request = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut held = Vec::new();
    let mut buffer = [0u8; 512];
    let mut waiting = loop {
        assert!(held.len() <= 4, "more than 4 connections served at once");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
            Ok(Ok(n)) if buffer[..n].starts_with(b"HTTP/1.1 200") => held.push(stream),
            Ok(other) => panic!("unexpected answer: {other:?}"),
            Err(_) => break stream,
        }
    };
    assert!(held.len() >= 3, "only {} connections served", held.len());
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buffer))
        .await
        .expect("not answered after a connection closed")
        .unwrap();
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buffer[..n])
    );
    drop(held);
    server.stop().await;
}

/// A declared body past `--max-request-bytes` is 413 at once, on an inference route and on a
/// management route, without sending a byte of it.
#[tokio::test]
async fn an_oversized_content_length_is_refused_before_the_body() {
    let server = TestServer::examples().await;
    for path in [
        "/v2/models/iris_logreg/infer",
        "/v2/repository/models/iris_logreg/labels",
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 1000000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within 2 s"))
            .unwrap();
        let text = String::from_utf8_lossy(&buffer[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
        assert!(text.contains("--max-request-bytes"), "{path}: {text}");
    }
    server.stop().await;
}

/// After the shutdown signal a half-sent request holds the server for at most the exit
/// timeout, and readiness is false meanwhile for a client already connected.
#[tokio::test]
async fn a_half_sent_request_cannot_hold_shutdown_past_its_deadline() {
    let mut config = config(ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    });
    config.exit_timeout = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v2/models/iris_logreg/infer HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\"";
    half.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
    assert!(stopped.is_ok(), "the server did not stop within 10 s");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(closed_within(&mut half, Duration::from_secs(1)).await);
}

/// The gRPC listener has the same cap and first-bytes timeout: connections that send nothing
/// are closed after the header timeout, and while the cap is taken by them a new client waits
/// (not served) until they are gone, then is answered.
#[tokio::test]
async fn grpc_connections_are_capped_and_silent_ones_closed() {
    let server = TestServer::start(config(ConnectionLimits {
        max_connections: 3,
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }))
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.grpc_addr).await.unwrap());
    }
    // The cap is taken: a real client's call does not get through in 400 ms.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .timeout(Duration::from_millis(400));
    let channel = endpoint.connect_lazy();
    let mut client =
        ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    let waited = client
        .server_live(ferroserve_server::protocol::grpc::proto::ServerLiveRequest {})
        .await;
    assert!(waited.is_err(), "served past the cap: {waited:?}");
    // The silent ones are closed after the 1 s timeout...
    for stream in &mut silent {
        assert!(closed_within(stream, Duration::from_secs(5)).await);
    }
    // ...and then a client is served.
    let mut answered = false;
    for _ in 0..20 {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
                .unwrap()
                .timeout(Duration::from_secs(2))
                .connect_lazy();
        let mut client =
            ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
        let live = client
            .server_live(ferroserve_server::protocol::grpc::proto::ServerLiveRequest {})
            .await;
        if live.is_ok_and(|r| r.into_inner().live) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "no gRPC answer after the silent connections closed"
    );
    server.stop().await;
}
