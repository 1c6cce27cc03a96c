//! What a request may make the server hold: inputs the model lacks are refused before their
//! data is read, one request's decoded inputs are bounded by `--max-request-bytes`, and all
//! requests in flight together by `--max-inflight-bytes` (503 / `UNAVAILABLE` past it, at once),
//! over HTTP and gRPC.

use std::time::Duration;

use ferroserve_server::ServerConfig;
use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::kit::{TestServer, assert_client_error, examples, into_json, oracle};

const INFER: &str = "/v2/models/iris_logreg/infer";

async fn still_serves(server: &TestServer) {
    let (status, body) = server
        .post(INFER, &oracle("iris_logreg", "request.json"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn inputs_the_model_lacks_are_refused_before_their_data_is_read() {
    let server = TestServer::examples().await;
    // The data is of the wrong type too: an error about it would mean it was decoded.
    let body = json!({"inputs": [{"name": "bogus", "shape": [2], "datatype": "FP32",
                                  "data": ["a", "b"]}]});
    let (status, answer) = server.post(INFER, &body).await;
    assert_client_error(status, &answer, &["unexpected input 'bogus'", "\"input\""]);

    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let request = proto::ModelInferRequest {
        model_name: "iris_logreg".into(),
        inputs: vec![proto::model_infer_request::InferInputTensor {
            name: "bogus".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            ..Default::default()
        }],
        // Too short for its shape: an error about it would mean it was decoded.
        raw_input_contents: vec![vec![0; 3]],
        ..Default::default()
    };
    let status = grpc.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("unexpected input 'bogus'"),
        "{}",
        status.message()
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn inputs_that_decode_past_the_request_limit_get_413() {
    let mut config = ServerConfig::new(examples());
    config.max_request_bytes = 12 * 1024;
    let server = TestServer::start(config).await;
    // 1,024 rows of 4 FP32 zeros: about 8 KiB of JSON, 16 KiB decoded.
    let body = json!({"inputs": [{"name": "input", "shape": [1024, 4], "datatype": "FP32",
                                  "data": vec![0; 4096]}]});
    let (status, answer) = server.post(INFER, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message
            .contains("decode to at least 16384 bytes, over the limit of 12288 bytes per request"),
        "{message}"
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn requests_past_the_inflight_budget_get_503_at_once_and_the_budget_comes_back() {
    let mut config = ServerConfig::new(examples());
    config.max_request_bytes = 1024 * 1024;
    config.max_inflight_bytes = 2 * 1024 * 1024;
    let server = TestServer::start(config).await;

    // Two clients that each declare 700 kB and send a few bytes of it, then stall: their
    // bodies are reserved while they are being read.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut client = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        client
            .write_all(
                format!(
                    "POST {INFER} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 700000\r\n\r\n{{\"inputs\":"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        stalled.push(client);
    }

    let big = vec![b' '; 1024 * 1024 - 16];
    let mut refused = None;
    for _ in 0..200 {
        let (status, answer) = into_json(send_big(&server, &big).await).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("the second large body was never refused");
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("--max-inflight-bytes"), "{message}");
    // Small requests still fit beside the stalled one.
    still_serves(&server).await;

    // The stalled clients go away: their reservations come back, and the large body is read
    // (and refused for what it is: not JSON).
    drop(stalled);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..200 {
        status = send_big(&server, &big).await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // gRPC draws on the same budget: a 3 MiB message does not fit a 2 MiB budget.
    let mut grpc = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let rows = 3 * 1024 * 1024 / 16;
    let request = proto::ModelInferRequest {
        model_name: "iris_logreg".into(),
        inputs: vec![proto::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, 4],
            ..Default::default()
        }],
        raw_input_contents: vec![vec![0; rows * 16]],
        ..Default::default()
    };
    let status = grpc.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("--max-inflight-bytes"),
        "{}",
        status.message()
    );
    still_serves(&server).await;
    server.stop().await;
}

async fn send_big(server: &TestServer, body: &[u8]) -> reqwest::Response {
    server
        .post_raw(
            INFER,
            body.to_vec(),
            &[("Content-Type", "application/json".into())],
        )
        .await
}
