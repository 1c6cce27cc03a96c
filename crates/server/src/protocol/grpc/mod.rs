//! The V2 protocol over gRPC (`inference.GRPCInferenceService`, written from the published
//! specification into `proto/`) and the standard `grpc.health.v1` service, over the same
//! repository, schedulers and V2 request path as HTTP. Answers carry outputs in
//! `raw_output_contents`, which Triton's client needs; errors map to gRPC codes in
//! [`crate::protocol::status`] alone.

pub(crate) mod codec;
mod convert;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::access::Caller;
use crate::budget::Reservation;
use crate::codec::{Expected, ProtocolError};
use crate::error::{InferError, RepositoryError};
use crate::inference::InferRequest;
use crate::protocol::guard::{GrpcGuardLayer, grpc_caller};
use crate::protocol::state::AppState;
use crate::protocol::status::{ApiError, grpc_status};
use crate::protocol::v2::http::metadata_extensions;
use crate::repository::LoadedVersion;
use crate::router::Selector;

/// The generated protocol types and service stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");

    /// `grpc.health.v1`.
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::health::health_server::{Health, HealthServer};

/// Serves both services on `listener` (over TLS when `tls` is set) until `shutdown`
/// completes.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    max_message_bytes: usize,
    limits: crate::transport::ConnectionLimits,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let v2 = GrpcInferenceServiceServer::new(V2Service {
        state: state.clone(),
    })
    .max_decoding_message_size(max_message_bytes)
    .max_encoding_message_size(max_message_bytes);
    let guard = GrpcGuardLayer {
        access: Arc::clone(&state.access),
    };
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.http2_max_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(guard)
        .add_service(v2)
        .add_service(HealthServer::new(HealthService { state }));
    let incoming = crate::transport::grpc_incoming(listener, tls, limits);
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// The V2 inference service.
#[derive(Clone, Debug)]
struct V2Service {
    state: AppState,
}

fn status(error: impl Into<ApiError>) -> Status {
    grpc_status(&error.into())
}

impl V2Service {
    /// The version a request's `name` and `version` (`""` for the latest) name now.
    fn resolve(&self, name: &str, version: &str) -> Result<Arc<LoadedVersion>, InferError> {
        let selector = Selector::version(Some(version));
        self.state.router.resolve(name, selector)
    }

    /// [`V2Service::resolve`] for a method that needs `infer`: refused unless `caller` may use
    /// the model.
    fn resolve_for(
        &self,
        caller: &Caller,
        name: &str,
        version: &str,
    ) -> Result<Arc<LoadedVersion>, Status> {
        caller.permit_model(name).map_err(status)?;
        self.resolve(name, version).map_err(status)
    }

    /// One inference, start to end; the request's `grpc-timeout` bounds it as `timeout` does.
    async fn infer(
        &self,
        request: proto::ModelInferRequest,
        deadline: Option<Duration>,
        metadata: &tonic::metadata::MetadataMap,
        caller: &Caller,
    ) -> Result<proto::ModelInferResponse, Status> {
        let started = Instant::now();
        caller.permit_model(&request.model_name).map_err(status)?;
        let mut request = request;
        let label = convert::label_parameter(&request.parameters)
            .map_err(|e| status(self.state.unrouted(e)))?
            .map(str::to_owned);
        let model = std::mem::take(&mut request.model_name);
        let version = std::mem::take(&mut request.model_version);
        let selector = match &label {
            Some(label) if !version.is_empty() => {
                return Err(status(self.state.unrouted(ProtocolError::Json {
                    message: format!(
                        "model_version '{version}' and parameter label '{label}' both name a version; give one"
                    ),
                })));
            }
            Some(label) => Selector::Label(label),
            None => Selector::version(Some(&version)),
        };
        self.state
            .router
            .infer(
                &model,
                selector,
                started,
                |version| self.decode(version, request, deadline, metadata),
                |version, response, _held| {
                    Ok(convert::encode_response(
                        version,
                        response.id,
                        &response.outputs,
                        &response.parameters,
                    ))
                },
            )
            .await
            .map_err(status)
    }

    /// The request, checked against `version`, and its memory reservation (held until the
    /// answer is encoded).
    fn decode(
        &self,
        version: &LoadedVersion,
        request: proto::ModelInferRequest,
        deadline: Option<Duration>,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<(InferRequest, Reservation), ApiError> {
        // The message is in memory already (tonic decoded it, up to
        // --grpc-max-message-bytes); its tensors will take as much again.
        let mut held = self
            .state
            .budget
            .reserve(prost::Message::encoded_len(&request))
            .map_err(InferError::from)?;
        let decoded = convert::decode_request(
            request,
            self.state.settings.limits,
            Expected::of(version),
            |bytes| held.grow(bytes).map_err(InferError::from),
        )?;
        let (mut request, _) = decoded.into_request()?;
        request.timeout = match (request.timeout, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Only composites route by metadata; a model's request skips the copy.
        if version.executor.composite().is_some() {
            request.context.headers = metadata
                .iter()
                .filter_map(|kv| match kv {
                    tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                        Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                    }
                    tonic::metadata::KeyAndValueRef::Binary(..) => None,
                })
                .collect();
        }
        Ok((request, held))
    }
}

/// A `ModelInferRequest`'s bytes through the wire walk, prost and the conversion into the
/// router's request, for the fuzz targets: whether they decoded.
#[cfg(feature = "fuzzing")]
pub(super) fn decode_for_fuzzing(
    message: &[u8],
    limits: crate::codec::RequestLimits,
    expected: Expected<'_>,
) -> bool {
    if codec::check_infer_request(message, limits.max_decoded_bytes).is_err() {
        return false;
    }
    let Ok(request) = <proto::ModelInferRequest as prost::Message>::decode(message) else {
        return false;
    };
    convert::decode_request(request, limits, expected, |_| Ok(()))
        .and_then(|decoded| Ok(decoded.into_request()?))
        .is_ok()
}

/// The `grpc-timeout` header (`<digits><unit>`, unit one of `HMSmun`), if present and valid.
fn grpc_timeout<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<proto::ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for V2Service {
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Result<Response<proto::ServerLiveResponse>, Status> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Result<Response<proto::ServerReadyResponse>, Status> {
        Ok(Response::new(proto::ServerReadyResponse {
            ready: self.state.server_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<proto::ModelReadyRequest>,
    ) -> Result<Response<proto::ModelReadyResponse>, Status> {
        let caller = grpc_caller(&request);
        let r = request.into_inner();
        caller.permit_model(&r.name).map_err(status)?;
        let ready = self.resolve(&r.name, &r.version).is_ok();
        Ok(Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<proto::ServerMetadataRequest>,
    ) -> Result<Response<proto::ServerMetadataResponse>, Status> {
        Ok(Response::new(proto::ServerMetadataResponse {
            name: "ferroserve".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: metadata_extensions()
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<proto::ModelMetadataRequest>,
    ) -> Result<Response<proto::ModelMetadataResponse>, Status> {
        let caller = grpc_caller(&request);
        let r = request.into_inner();
        let repository = &self.state.repository;
        let version = self.resolve_for(&caller, &r.name, &r.version)?;
        let versions = repository.ready_version_names(&r.name);
        Ok(Response::new(proto::ModelMetadataResponse {
            name: version.model_name.clone(),
            versions,
            platform: version.platform.to_owned(),
            inputs: version
                .signature
                .inputs
                .iter()
                .map(convert::tensor_metadata)
                .collect(),
            outputs: version
                .signature
                .outputs
                .iter()
                .map(convert::tensor_metadata)
                .collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        let deadline = grpc_timeout(&request);
        let caller = grpc_caller(&request);
        let (metadata, _, request) = request.into_parts();
        self.infer(request, deadline, &metadata, &caller)
            .await
            .map(Response::new)
    }

    type ModelStreamInferStream = ResponseStream;

    /// Each request of the stream in turn; a failure is an `error_message` on the stream, which
    /// stays open.
    async fn model_stream_infer(
        &self,
        request: Request<tonic::Streaming<proto::ModelInferRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let metadata = request.metadata().clone();
        let caller = grpc_caller(&request);
        let mut inbound = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let service = self.clone();
        tokio::spawn(async move {
            while let Some(next) = inbound.next().await {
                let answer = match next {
                    Ok(request) => match service.infer(request, None, &metadata, &caller).await {
                        Ok(response) => proto::ModelStreamInferResponse {
                            error_message: String::new(),
                            infer_response: Some(response),
                        },
                        Err(e) => proto::ModelStreamInferResponse {
                            error_message: e.message().to_owned(),
                            infer_response: None,
                        },
                    },
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                };
                if sender.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn model_config(
        &self,
        request: Request<proto::ModelConfigRequest>,
    ) -> Result<Response<proto::ModelConfigResponse>, Status> {
        let caller = grpc_caller(&request);
        let r = request.into_inner();
        let version = self.resolve_for(&caller, &r.name, &r.version)?;
        Ok(Response::new(proto::ModelConfigResponse {
            config: Some(convert::model_config(&version)),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<proto::ModelStatisticsRequest>,
    ) -> Result<Response<proto::ModelStatisticsResponse>, Status> {
        let r = request.into_inner();
        let repository = &self.state.repository;
        let versions = if r.name.is_empty() {
            repository.ready_versions()
        } else if r.version.is_empty() {
            repository.resolve(&r.name, None).map_err(status)?;
            repository
                .entry(&r.name)
                .map(|e| e.ready_versions())
                .unwrap_or_default()
        } else {
            vec![self.resolve(&r.name, &r.version).map_err(status)?]
        };
        Ok(Response::new(proto::ModelStatisticsResponse {
            model_stats: versions
                .iter()
                .map(|v| convert::model_statistics(v))
                .collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<proto::RepositoryIndexRequest>,
    ) -> Result<Response<proto::RepositoryIndexResponse>, Status> {
        let r = request.into_inner();
        let repository = Arc::clone(&self.state.repository);
        let rows = tokio::task::spawn_blocking(move || repository.index())
            .await
            .map_err(|e| status(RepositoryError::Io(std::io::Error::other(e))))?
            .map_err(status)?;
        let models = rows
            .into_iter()
            .filter(|row| !r.ready || row.state == Some("READY"))
            .map(|row| proto::repository_index_response::ModelIndex {
                name: row.name,
                version: row.version.map(|v| v.to_string()).unwrap_or_default(),
                state: row.state.unwrap_or_default().to_owned(),
                reason: row.reason,
            })
            .collect();
        Ok(Response::new(proto::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<proto::RepositoryModelLoadRequest>,
    ) -> Result<Response<proto::RepositoryModelLoadResponse>, Status> {
        let caller = grpc_caller(&request);
        let r = request.into_inner();
        if let Some(key) = r
            .parameters
            .keys()
            .find(|k| *k == "config" || k.starts_with("file:"))
        {
            return Err(status(ProtocolError::UnsupportedParameter {
                parameter: key.clone(),
                message: "loading a model from a request is not supported; place its files in \
                          the model repository"
                    .into(),
            }));
        }
        let action = format!("RepositoryModelLoad {}", r.model_name);
        self.control(&caller, action, move |repository| {
            repository.load(&r.model_name)
        })
        .await?;
        Ok(Response::new(proto::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<proto::RepositoryModelUnloadRequest>,
    ) -> Result<Response<proto::RepositoryModelUnloadResponse>, Status> {
        let caller = grpc_caller(&request);
        let r = request.into_inner();
        let action = format!("RepositoryModelUnload {}", r.model_name);
        self.control(&caller, action, move |repository| {
            repository.unload(&r.model_name)
        })
        .await?;
        Ok(Response::new(proto::RepositoryModelUnloadResponse {}))
    }
}

impl V2Service {
    /// Runs a load or unload on a blocking thread, when explicit model control is on, and
    /// records it (`action`, by `caller`) in the audit trail with its outcome.
    async fn control(
        &self,
        caller: &Caller,
        action: String,
        f: impl FnOnce(&crate::repository::Repository) -> Result<(), RepositoryError> + Send + 'static,
    ) -> Result<(), Status> {
        let result = if self.state.settings.model_control_explicit {
            let repository = Arc::clone(&self.state.repository);
            tokio::task::spawn_blocking(move || f(&repository))
                .await
                .map_err(|e| status(RepositoryError::Io(std::io::Error::other(e))))
                .and_then(|r| r.map_err(status))
        } else {
            Err(status(RepositoryError::load_control_disabled()))
        };
        let outcome = match &result {
            Ok(()) => "OK".to_owned(),
            Err(e) => format!("{:?}: {}", e.code(), e.message()),
        };
        crate::audit::record(caller.name(), &action, &outcome);
        result
    }
}

/// `grpc.health.v1`: the empty service name is the server's readiness, a model's name that
/// model's.
#[derive(Clone, Debug)]
struct HealthService {
    state: AppState,
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<proto::health::HealthCheckRequest>,
    ) -> Result<Response<proto::health::HealthCheckResponse>, Status> {
        use proto::health::health_check_response::ServingStatus;
        let service = request.into_inner().service;
        let repository = &self.state.repository;
        let serving = if service.is_empty() {
            self.state.server_ready()
        } else {
            match repository.resolve(&service, None) {
                Ok(_) => true,
                Err(crate::error::InferError::ModelNotFound { .. }) => {
                    return Err(Status::not_found(format!("unknown service '{service}'")));
                }
                Err(_) => false,
            }
        };
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(proto::health::HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<proto::health::HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<proto::health::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // The current status, once; clients poll `Check` for changes.
        let current = self.check(request).await?.into_inner();
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(current)))))
    }
}
