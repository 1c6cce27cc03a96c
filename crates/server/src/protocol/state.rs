//! What every HTTP and gRPC handler shares, [`AppState`], the reading of request bodies
//! within the size limit and the memory budget, and path parameters whose errors answer in
//! the V2 shape ([`Path`]).

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

use crate::access::Access;
use crate::budget::{MemoryBudget, Reservation};
use crate::codec::{ProtocolError, RequestLimits};
use crate::error::InferError;
use crate::metrics::Metrics;
use crate::protocol::status::ApiError;
use crate::repository::Repository;
use crate::router::Router;

/// Settings of the HTTP front-end.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Limits checked while decoding tensors.
    pub limits: RequestLimits,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Whether `POST /v2/repository/models/{m}/{load,unload}` are enabled.
    pub model_control_explicit: bool,
    /// Whether labels may be moved through `POST /v2/repository/models/{m}/labels`.
    pub label_control: bool,
    /// Whether `/v2/health/ready` also needs every model to be ready.
    pub strict_readiness: bool,
    /// A folder served as static files at every path no API route takes (`--static`).
    pub static_dir: Option<PathBuf>,
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The loaded models.
    pub repository: Arc<Repository>,
    /// The request path every inference front-end calls.
    pub router: Router,
    /// Front-end settings.
    pub settings: Arc<HttpSettings>,
    /// What `/metrics` renders; front-ends count the requests no model version saw here.
    pub metrics: Arc<Metrics>,
    /// Traffic over time, for `/dashboard`.
    pub history: Arc<crate::dashboard::history::History>,
    /// Memory held for requests in flight, shared by every front-end.
    pub budget: MemoryBudget,
    /// Who may call what; checked by the guard in front of every front-end.
    pub access: Arc<Access>,
    /// Set when the shutdown signal came: readiness is false from then on.
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Counts an inference request that failed before reaching a model version (its body
    /// too large, no such model) in the metrics, and passes its error on.
    pub(crate) fn unrouted(&self, error: impl Into<ApiError>) -> ApiError {
        self.router.unrouted(error.into())
    }

    /// Whether the server is ready: the start-up load finished and, with strict readiness,
    /// every model loaded. One definition for HTTP, gRPC and gRPC health.
    pub(crate) fn server_ready(&self) -> bool {
        let repository = &self.repository;
        !self
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
            && repository.started()
            && (!self.settings.strict_readiness || repository.all_ready())
    }
}

/// An inference request as its handler takes it: when it arrived, its headers, and its body
/// read within `--max-request-bytes` and reserved in the memory budget
/// ([`read_body_reserved`]); a failure to read it is counted as unrouted.
#[derive(Debug)]
pub(crate) struct InferenceBody {
    /// When the request arrived (before its body was read).
    pub(crate) started: Instant,
    /// The request's headers.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) bytes: Bytes,
    /// The body's bytes in the memory budget; handlers grow it by what they decode. Held
    /// until the request has been answered.
    pub(crate) held: Reservation,
}

impl FromRequest<AppState> for InferenceBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        refuse_content_encoding(&parts.headers).map_err(|e| state.unrouted(e))?;
        let (bytes, held) = read_body_reserved(
            body,
            &parts.headers,
            state.settings.max_request_bytes,
            &state.budget,
        )
        .await
        .map_err(|e| state.unrouted(e))?;
        Ok(InferenceBody {
            started,
            headers: parts.headers,
            bytes,
            held,
        })
    }
}

/// Inference bodies are read as sent: a compressed one (any `Content-Encoding` but
/// `identity`) is refused on every protocol rather than decoded as garbage.
fn refuse_content_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(axum::http::header::CONTENT_ENCODING) {
        Some(encoding) if encoding.as_bytes() != b"identity" => Err(ProtocolError::Header {
            header: "Content-Encoding",
            message: format!("{encoding:?} is not supported; send the request body uncompressed"),
        }
        .into()),
        _ => Ok(()),
    }
}

/// axum's `Path`, its rejection (a parameter that is not valid percent-encoded UTF-8, say)
/// answered as a V2 error, `{"error": ...}` with 400, instead of axum's plain text.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::BadPath {
                message: rejection.body_text(),
            }),
        }
    }
}

/// Reads an inference request's body, at most `limit` bytes, reserving its bytes in `budget`
/// before they are buffered: all at once when `Content-Length` declares them, else chunk by
/// chunk. Too large is 413; the budget spent is 503 at once. The reservation is held until the
/// caller drops it (when the request has been answered).
async fn read_body_reserved(
    body: axum::body::Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
    budget: &MemoryBudget,
) -> Result<(Bytes, Reservation), ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProtocolError::BodyTooLarge { limit }.into());
    }
    let mut body = body.into_data_stream();
    let mut reservation = match budget.reserve(declared.unwrap_or(0)) {
        Ok(reservation) => reservation,
        Err(over) => return Err(discard(&mut body, limit, over).await),
    };
    let mut buffer = bytes::BytesMut::with_capacity(declared.unwrap_or(0));
    loop {
        let next = tokio::time::timeout(BODY_READ_TIMEOUT, futures::StreamExt::next(&mut body));
        let Some(chunk) = next.await.map_err(|_| ProtocolError::BodyTimeout {
            seconds: BODY_READ_TIMEOUT.as_secs(),
        })?
        else {
            break;
        };
        let chunk = chunk.map_err(|e| ProtocolError::Json {
            message: format!("the body could not be read: {e}"),
        })?;
        let length = buffer.len() + chunk.len();
        if length > limit {
            return Err(ProtocolError::BodyTooLarge { limit }.into());
        }
        if length > reservation.bytes()
            && let Err(over) = reservation.grow(length - reservation.bytes())
        {
            drop((buffer, reservation));
            return Err(discard(&mut body, limit, over).await);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok((buffer.freeze(), reservation))
}

/// How long a body may go without a byte arriving (nginx's `client_body_timeout`).
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads and drops the rest of a body refused for the budget (at most `limit` bytes, holding
/// none of it), so the client gets its 503 cleanly instead of a connection reset mid-upload.
async fn discard(
    body: &mut axum::body::BodyDataStream,
    limit: usize,
    over: crate::budget::OverBudget,
) -> ApiError {
    let mut read = 0usize;
    while read <= limit {
        match futures::StreamExt::next(body).await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    InferError::from(over).into()
}

/// The body, or the error of reading it (too large, or the connection broke).
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ProtocolError::BodyTooLarge { limit }.into()
        } else {
            ProtocolError::Json {
                message: rejection.body_text(),
            }
            .into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use axum::http::header::CONTENT_LENGTH;

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit_and_the_budget() {
        let declared = |n: usize| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_LENGTH, n.into());
            h
        };
        let budget = MemoryBudget::new(8 * 1024);
        let read = |h: HeaderMap, text: Vec<u8>, limit: usize| {
            let budget = budget.clone();
            async move { read_body_reserved(axum::body::Body::from(text), &h, limit, &budget).await }
        };
        let (body, held) = read(declared(4), b"abcd".to_vec(), 4).await.unwrap();
        assert_eq!((&body[..], held.bytes()), (&b"abcd"[..], 1024));
        drop(held);
        let (body, _) = read(HeaderMap::new(), b"abc".to_vec(), 4).await.unwrap();
        assert_eq!(&body[..], b"abc");
        // Declared over the limit: refused before reading; sent over it: refused on reading.
        for (h, text) in [(declared(5), b"abcde"), (HeaderMap::new(), b"abcde")] {
            let err = read(h, text.to_vec(), 4).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ApiError::Protocol(ProtocolError::BodyTooLarge { limit: 4 })
                ),
                "{err}"
            );
        }
        // Past the budget, declared or not: 503 at once.
        let big = vec![b' '; 9 * 1024];
        for h in [declared(big.len()), HeaderMap::new()] {
            let err = read(h, big.clone(), 1 << 20).await.unwrap_err();
            assert!(
                matches!(err, ApiError::Infer(InferError::OverBudget(_))),
                "{err}"
            );
        }
        assert_eq!(budget.held(), 0, "refused bodies hold nothing");
    }
}
