//! The one place where errors become status codes, and the `{"error": "..."}` body every V2
//! client reads (tritonclient takes the message from that key).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferroserve_core::ModelError;

use crate::access::Denied;
use crate::codec::ProtocolError;
use crate::composite::bandit::FeedbackError;
use crate::error::{InferError, RepositoryError};
use crate::stats::{Failure, FailureReason};

/// Any error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's bytes are malformed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Inference failed.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// A repository operation failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// A bandit's feedback was refused.
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
    /// The caller is unknown, or may not do this.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A path parameter does not decode (invalid percent-encoding or UTF-8).
    #[error("malformed path: {message}")]
    BadPath {
        /// What axum's path extractor said.
        message: String,
    },
    /// No endpoint at this path.
    #[error("no endpoint {method} {path}")]
    NoRoute {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
}

/// The HTTP status of an error.
pub fn http_status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::Protocol(
            ProtocolError::BodyTooLarge { .. } | ProtocolError::DecodedTooLarge { .. },
        ) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::Protocol(ProtocolError::OverBudget(_)) => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Protocol(ProtocolError::BodyTimeout { .. }) => StatusCode::REQUEST_TIMEOUT,
        ApiError::Protocol(_) => StatusCode::BAD_REQUEST,
        ApiError::Infer(e) => infer_status(e),
        ApiError::Repository(e) => match e {
            RepositoryError::ControlDisabled { .. } => StatusCode::FORBIDDEN,
            RepositoryError::NotInRepository { .. } => StatusCode::NOT_FOUND,
            RepositoryError::LoadFailed { .. } | RepositoryError::LabelTarget { .. } => {
                StatusCode::BAD_REQUEST
            }
            RepositoryError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // The store is unreachable or refused: the cached copy keeps serving; retry later.
            RepositoryError::Remote(_) => StatusCode::SERVICE_UNAVAILABLE,
        },
        ApiError::Feedback(e) => match e {
            FeedbackError::Spent { .. } => StatusCode::CONFLICT,
            FeedbackError::NotABandit { .. }
            | FeedbackError::BadReward { .. }
            | FeedbackError::BadId { .. }
            | FeedbackError::OtherChoice { .. } => StatusCode::BAD_REQUEST,
        },
        ApiError::BadPath { .. } => StatusCode::BAD_REQUEST,
        ApiError::Denied(Denied::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Denied(e) if e.unauthenticated() => StatusCode::UNAUTHORIZED,
        ApiError::Denied(_) => StatusCode::FORBIDDEN,
        ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
    }
}

/// The HTTP status of an inference error.
fn infer_status(error: &InferError) -> StatusCode {
    match error {
        InferError::ModelNotFound { .. }
        | InferError::VersionNotFound { .. }
        | InferError::LabelNotFound { .. }
        | InferError::NotMonitored { .. } => StatusCode::NOT_FOUND,
        InferError::Validation(_) | InferError::Parameter { .. } => StatusCode::BAD_REQUEST,
        InferError::Model(ModelError::UnsupportedDatatype { .. })
        | InferError::Execution {
            source: ModelError::UnsupportedDatatype { .. },
            ..
        } => StatusCode::BAD_REQUEST,
        InferError::Model(_) | InferError::Execution { .. } | InferError::Composite { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        InferError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
        InferError::ModelNotReady { .. }
        | InferError::Overloaded { .. }
        | InferError::OverBudget(_)
        | InferError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The gRPC status of an error: the code that corresponds to [`http_status`], and the same
/// message.
pub fn grpc_status(error: &ApiError) -> tonic::Status {
    use tonic::Code;
    let code = match http_status(error) {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        // A quota, not overload: clients should slow down, not fail over.
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        // A full queue too: clients retry UNAVAILABLE, as they retry HTTP 503.
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    tonic::Status::new(code, error.to_string())
}

/// The class of a failed request, for the failure counters: derived from its status, so a
/// new error is counted as its status says.
fn reason_for(status: StatusCode, overloaded: bool) -> FailureReason {
    if overloaded {
        return FailureReason::Overloaded;
    }
    match status {
        StatusCode::NOT_FOUND => FailureReason::NotFound,
        StatusCode::SERVICE_UNAVAILABLE => FailureReason::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => FailureReason::Timeout,
        status if status.is_server_error() => FailureReason::ModelError,
        _ => FailureReason::InvalidRequest,
    }
}

impl Failure for InferError {
    fn failure_reason(&self) -> FailureReason {
        reason_for(
            infer_status(self),
            matches!(self, InferError::Overloaded { .. }),
        )
    }
}

impl Failure for ApiError {
    fn failure_reason(&self) -> FailureReason {
        match self {
            ApiError::Infer(e) => e.failure_reason(),
            other => reason_for(http_status(other), false),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http_status(&self);
        // ERROR is for the server's own faults. A request past its own deadline (504) or
        // turned away for load (503) is the client's or the moment's: debug, so that a
        // client's retries cannot flood the log.
        match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                tracing::debug!(error = %self, "request failed")
            }
            status if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        match access_header(&self) {
            Some(header) => (status, [header], body).into_response(),
            None => (status, body).into_response(),
        }
    }
}

/// The header a refused request's answer carries: `Retry-After` (whole seconds, at least 1)
/// over a rate limit, else its `WWW-Authenticate` challenge.
fn access_header(error: &ApiError) -> Option<(header::HeaderName, String)> {
    match error {
        ApiError::Denied(Denied::RateLimited { retry_after, .. }) => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            Some((header::RETRY_AFTER, seconds.to_string()))
        }
        _ => challenge(error).map(|c| (header::WWW_AUTHENTICATE, c)),
    }
}

/// The `WWW-Authenticate` challenge of a refused request (RFC 6750's bearer scheme): which
/// scheme to use, and why the credentials sent did not do.
fn challenge(error: &ApiError) -> Option<String> {
    let ApiError::Denied(denied) = error else {
        return None;
    };
    let realm = "Bearer realm=\"ferroserve\"";
    Some(match denied {
        Denied::NoCredentials => realm.to_owned(),
        Denied::Malformed => format!("{realm}, error=\"invalid_request\""),
        Denied::UnknownKey | Denied::UnknownCertificate { .. } => {
            format!("{realm}, error=\"invalid_token\"")
        }
        // RFC 6750: the description is a quoted string; the reason is the server's own words.
        Denied::InvalidToken(reason) => format!(
            "{realm}, error=\"invalid_token\", error_description=\"{}\"",
            reason.replace(['"', '\\'], "'")
        ),
        Denied::Scope { scope, .. } => {
            format!("{realm}, error=\"insufficient_scope\", scope=\"{scope}\"")
        }
        Denied::Model { .. } => format!("{realm}, error=\"insufficient_scope\""),
        Denied::RateLimited { .. } | Denied::CrossSite { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::{DataType, ValidationError};

    /// ERROR is for the server's own faults: a model failure logs one, a request past its own
    /// deadline or turned away for load does not.
    #[test]
    fn only_the_servers_own_faults_log_errors() {
        use std::io::Write;
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _ = ApiError::from(InferError::DeadlineExceeded {
                model: "m".into(),
                timeout: std::time::Duration::from_micros(1),
            })
            .into_response();
            let _ = ApiError::from(InferError::Overloaded {
                model: "m".into(),
                capacity: 1,
            })
            .into_response();
        });
        assert!(
            buffer.0.lock().unwrap().is_empty(),
            "client-caused failures logged"
        );
        tracing::subscriber::with_default(
            tracing_subscriber::fmt()
                .with_writer({
                    let writer = buffer.clone();
                    move || writer.clone()
                })
                .finish(),
            || {
                let _ = ApiError::from(InferError::Composite {
                    model: "m".into(),
                    message: "broken".into(),
                })
                .into_response();
            },
        );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("ERROR") && text.contains("broken"), "{text}");
    }

    /// Every variant, so that a new one cannot ship without a deliberate status.
    #[test]
    fn every_error_has_its_status() {
        let cases: Vec<(ApiError, StatusCode)> = vec![
            (
                ProtocolError::Json {
                    message: "x".into(),
                }
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                ProtocolError::BodyTooLarge { limit: 1 }.into(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ProtocolError::DecodedTooLarge { bytes: 2, limit: 1 }.into(),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ProtocolError::Header {
                    header: "h",
                    message: "x".into(),
                }
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                InferError::ModelNotFound { model: "m".into() }.into(),
                StatusCode::NOT_FOUND,
            ),
            (
                InferError::NotMonitored {
                    model: "m".into(),
                    version: 1,
                }
                .into(),
                StatusCode::NOT_FOUND,
            ),
            (
                InferError::VersionNotFound {
                    model: "m".into(),
                    version: "9".into(),
                    available: vec![],
                }
                .into(),
                StatusCode::NOT_FOUND,
            ),
            (
                InferError::ModelNotReady {
                    model: "m".into(),
                    reason: "r".into(),
                }
                .into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                InferError::Validation(ValidationError::DuplicateInput { tensor: "x".into() })
                    .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                InferError::Model(ModelError::Execution {
                    message: "x".into(),
                })
                .into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                InferError::Model(ModelError::UnsupportedDatatype {
                    tensor: "x".into(),
                    datatype: DataType::Bf16,
                    runtime: "onnx",
                })
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                InferError::Overloaded {
                    model: "m".into(),
                    capacity: 1,
                }
                .into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                InferError::Unavailable { model: "m".into() }.into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                InferError::Composite {
                    model: "e".into(),
                    message: "x".into(),
                }
                .into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                InferError::Execution {
                    model: "m".into(),
                    source: ModelError::Panicked {
                        message: "boom".into(),
                    },
                }
                .into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                InferError::Parameter {
                    parameter: "priority".into(),
                    message: "x".into(),
                }
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                InferError::DeadlineExceeded {
                    model: "m".into(),
                    timeout: std::time::Duration::from_millis(1),
                }
                .into(),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                RepositoryError::ControlDisabled {
                    operation: "explicit model load and unload",
                    needs: "explicit",
                }
                .into(),
                StatusCode::FORBIDDEN,
            ),
            (
                RepositoryError::NotInRepository { model: "m".into() }.into(),
                StatusCode::NOT_FOUND,
            ),
            (
                RepositoryError::LoadFailed {
                    model: "m".into(),
                    reason: "r".into(),
                }
                .into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                RepositoryError::Io(std::io::Error::other("x")).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ApiError::NoRoute {
                    method: "GET".into(),
                    path: "/x".into(),
                },
                StatusCode::NOT_FOUND,
            ),
            (
                ApiError::BadPath {
                    message: "x".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
            (
                ProtocolError::BodyTimeout { seconds: 60 }.into(),
                StatusCode::REQUEST_TIMEOUT,
            ),
            (Denied::NoCredentials.into(), StatusCode::UNAUTHORIZED),
            (
                Denied::CrossSite {
                    header: "Origin",
                    value: "x".into(),
                }
                .into(),
                StatusCode::FORBIDDEN,
            ),
            (
                Denied::RateLimited {
                    client: "key 'k'".into(),
                    key: Some("k".into()),
                    retry_after: std::time::Duration::from_millis(1),
                }
                .into(),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (Denied::Malformed.into(), StatusCode::UNAUTHORIZED),
            (Denied::UnknownKey.into(), StatusCode::UNAUTHORIZED),
            (
                Denied::Scope {
                    key: "k".into(),
                    scope: crate::access::Scope::Admin,
                }
                .into(),
                StatusCode::FORBIDDEN,
            ),
            (
                Denied::Model {
                    key: "k".into(),
                    model: "m".into(),
                }
                .into(),
                StatusCode::FORBIDDEN,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(http_status(&error), status, "{error:?}");
            // gRPC follows the HTTP status, keeping the message.
            let grpc = grpc_status(&error);
            let code = match status {
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                    tonic::Code::InvalidArgument
                }
                StatusCode::NOT_FOUND => tonic::Code::NotFound,
                StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
                StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
                StatusCode::TOO_MANY_REQUESTS => tonic::Code::ResourceExhausted,
                StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
                StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => {
                    tonic::Code::DeadlineExceeded
                }
                _ => tonic::Code::Internal,
            };
            assert_eq!(grpc.code(), code, "{error:?}");
            assert_eq!(grpc.message(), error.to_string());
        }
    }
}
