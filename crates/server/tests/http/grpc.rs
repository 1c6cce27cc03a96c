//! The V2 protocol over gRPC, with the generated client over a real socket: the same answers as
//! HTTP, typed and raw contents, errors as gRPC codes, the streaming RPC, config, statistics and
//! `grpc.health.v1`.

use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::protocol::grpc::proto::health::health_client::HealthClient;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use crate::kit::{TestServer, oracle};

pub(crate) async fn client(server: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap()
}

/// The iris oracle request as a gRPC request; rows as raw bytes or typed contents.
pub(crate) fn iris_request(raw: bool) -> proto::ModelInferRequest {
    let request = oracle("iris_logreg", "request.json");
    let x: Vec<f32> = request["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let mut input = proto::model_infer_request::InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![16, 4],
        ..Default::default()
    };
    let mut raw_contents = Vec::new();
    if raw {
        raw_contents.push(x.iter().flat_map(|v| v.to_le_bytes()).collect());
    } else {
        input.contents = Some(proto::InferTensorContents {
            fp32_contents: x,
            ..Default::default()
        });
    }
    proto::ModelInferRequest {
        model_name: "iris_logreg".into(),
        id: "r-1".into(),
        inputs: vec![input],
        raw_input_contents: raw_contents,
        ..Default::default()
    }
}

fn expected_labels() -> Vec<i64> {
    let expected: Value = oracle("iris_logreg", "expected.json");
    expected["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

fn labels(response: &proto::ModelInferResponse) -> Vec<i64> {
    assert_eq!(response.outputs[0].name, "label");
    assert_eq!(response.outputs[0].datatype, "INT64");
    response.raw_output_contents[0]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn inference_over_grpc_matches_the_oracle_in_raw_outputs() {
    let server = TestServer::examples().await;
    let mut c = client(&server).await;
    for raw in [true, false] {
        let response = c.model_infer(iris_request(raw)).await.unwrap().into_inner();
        assert_eq!(response.model_name, "iris_logreg");
        assert_eq!(response.model_version, "1");
        assert_eq!(response.id, "r-1");
        assert_eq!(labels(&response), expected_labels());
        assert_eq!(response.outputs[1].shape, [16, 3]);
        assert_eq!(response.raw_output_contents[1].len(), 16 * 3 * 4);
    }
    let mut one = iris_request(true);
    one.outputs = vec![proto::model_infer_request::InferRequestedOutputTensor {
        name: "probabilities".into(),
        ..Default::default()
    }];
    let response = c.model_infer(one).await.unwrap().into_inner();
    assert_eq!(response.outputs.len(), 1);
    assert_eq!(response.outputs[0].name, "probabilities");
    server.stop().await;
}

#[tokio::test]
async fn errors_are_grpc_codes_naming_the_problem() {
    let server = TestServer::examples().await;
    let mut c = client(&server).await;
    let mut unknown = iris_request(true);
    unknown.model_name = "nope".into();
    let mut bad_shape = iris_request(true);
    bad_shape.inputs[0].shape = vec![16, 5];
    let mut short = iris_request(true);
    short.raw_input_contents[0].truncate(10);
    let mut bad_priority = iris_request(true);
    bad_priority.parameters.insert(
        "priority".into(),
        proto::InferParameter {
            parameter_choice: Some(proto::infer_parameter::ParameterChoice::Int64Param(9)),
        },
    );
    for (request, code, needle) in [
        (unknown, Code::NotFound, "nope"),
        (bad_shape, Code::InvalidArgument, "input"),
        (short, Code::InvalidArgument, "input"),
        (bad_priority, Code::InvalidArgument, "priority"),
    ] {
        let status = c.model_infer(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(needle), "{status:?}");
    }
    // Still serving.
    assert!(c.model_infer(iris_request(true)).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn metadata_config_statistics_index_and_health() {
    let server = TestServer::examples().await;
    let mut c = client(&server).await;
    assert!(
        c.server_live(proto::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(proto::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = |name: &str| proto::ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    assert!(
        c.model_ready(ready("digits_mlp"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("nope"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(proto::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "ferroserve");
    assert!(meta.extensions.iter().any(|e| e == "model_configuration"));

    let model = c
        .model_metadata(proto::ModelMetadataRequest {
            name: "digits_mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(model.inputs[0].name, "input");
    assert_eq!(model.inputs[0].shape, [-1, 64]);
    let config = c
        .model_config(proto::ModelConfigRequest {
            name: "digits_mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 1024);
    assert_eq!(config.input[0].dims, [64]);
    assert_eq!(config.input[0].data_type, proto::DataType::TypeFp32 as i32);
    assert!(config.scheduling_choice.is_some(), "dynamic batching is on");

    c.model_infer(iris_request(true)).await.unwrap();
    let stats = c
        .model_statistics(proto::ModelStatisticsRequest {
            name: "iris_logreg".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.model_stats[0].inference_count, 16);
    assert_eq!(
        stats.model_stats[0]
            .inference_stats
            .as_ref()
            .unwrap()
            .success
            .unwrap()
            .count,
        1
    );
    let index = c
        .repository_index(proto::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(index.models.len(), 3);
    let load = c
        .repository_model_load(proto::RepositoryModelLoadRequest {
            model_name: "cnn".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(load.code(), Code::PermissionDenied);

    let mut health = HealthClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let check = |service: &str| proto::health::HealthCheckRequest {
        service: service.into(),
    };
    let serving = proto::health::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status,
        serving
    );
    assert_eq!(
        health
            .check(check("cnn"))
            .await
            .unwrap()
            .into_inner()
            .status,
        serving
    );
    assert_eq!(
        health.check(check("nope")).await.unwrap_err().code(),
        Code::NotFound
    );
    server.stop().await;
}

#[tokio::test]
async fn the_stream_answers_every_request_in_order_and_survives_errors() {
    let server = TestServer::examples().await;
    let mut c = client(&server).await;
    let mut bad = iris_request(true);
    bad.inputs[0].shape = vec![1, 4];
    let requests = vec![iris_request(true), bad, iris_request(false)];
    let mut answers = c
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        got.push(answer);
    }
    assert_eq!(got.len(), 3);
    assert_eq!(
        labels(got[0].infer_response.as_ref().unwrap()),
        expected_labels()
    );
    assert!(
        got[1].error_message.contains("input"),
        "{:?}",
        got[1].error_message
    );
    assert_eq!(
        labels(got[2].infer_response.as_ref().unwrap()),
        expected_labels()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_label_parameter_names_a_version() {
    let repo = crate::kit::temp_repository_two_iris("labels = { stable = 1 }\n");
    let server = TestServer::start(ferroserve_server::ServerConfig::new(repo.path())).await;
    let mut c = client(&server).await;
    let string = |s: &str| proto::InferParameter {
        parameter_choice: Some(proto::infer_parameter::ParameterChoice::StringParam(
            s.into(),
        )),
    };
    let mut request = iris_request(true);
    request.parameters.insert("label".into(), string("stable"));
    let response = c.model_infer(request.clone()).await.unwrap().into_inner();
    assert_eq!(response.model_version, "1");
    assert_eq!(labels(&response), expected_labels());

    request.parameters.insert("label".into(), string("nope"));
    let error = c.model_infer(request.clone()).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        error.message().contains("no label 'nope'"),
        "{}",
        error.message()
    );

    request.parameters.insert("label".into(), string("stable"));
    request.model_version = "2".into();
    let error = c.model_infer(request.clone()).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("give one"), "{}", error.message());

    request.model_version.clear();
    request.parameters.insert(
        "label".into(),
        proto::InferParameter {
            parameter_choice: Some(proto::infer_parameter::ParameterChoice::Int64Param(1)),
        },
    );
    let error = c.model_infer(request).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("label must be a string"),
        "{}",
        error.message()
    );
    server.stop().await;
}

/// Bytes sent as the request message, unchanged: what a broken or hostile client sends.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A message that is not protobuf is the client's fault: INVALID_ARGUMENT saying so (tonic's
/// own answer is INTERNAL), on inference and on every other method.
#[tokio::test]
async fn bytes_that_are_not_protobuf_are_invalid_argument() {
    let server = TestServer::examples().await;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for method in ["ModelInfer", "ModelMetadata", "RepositoryIndex"] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/inference.GRPCInferenceService/{method}");
        // Field 1 as a varint whose bytes never end.
        let garbage = vec![
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let status = grpc
            .unary(
                tonic::Request::new(garbage),
                path.parse::<http::uri::PathAndQuery>().unwrap(),
                RawBytes,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{method}: {status:?}");
        assert!(
            status.message().contains("not valid protobuf"),
            "{method}: {status:?}"
        );
    }
    let mut c = client(&server).await;
    assert!(c.model_infer(iris_request(true)).await.is_ok());
    server.stop().await;
}
