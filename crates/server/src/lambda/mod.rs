//! AWS Lambda: `ferroserve lambda` runs the runtime API's loop
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>) instead of listening.
//!
//! Start-up (Lambda's init phase) loads the repository; a model that fails to load is reported
//! to `/runtime/init/error` and the process exits, so the function's first invocation fails
//! with the reason instead of a timeout. Then, one invocation at a time (Lambda sends one
//! per execution environment): `GET /runtime/invocation/next`, the event turned into a request
//! to the same routes the HTTP server answers ([`event`]), the answer posted to
//! `/runtime/invocation/{id}/response`, or a refused direct invocation to `.../error`.
//!
//! The runtime API is plain HTTP on the address in `AWS_LAMBDA_RUNTIME_API`; reqwest is its
//! client. Written here rather than with the `lambda_runtime` crate: that crate brings its own
//! service stack around handlers, while an invocation here is one call into the router the
//! server already has.

pub mod event;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use bytes::Bytes;
use tower::ServiceExt as _;

use crate::repository::Repository;

/// How `ferroserve lambda` reaches the runtime API and routes direct invocations.
#[derive(Clone, Debug)]
pub struct LambdaSettings {
    /// The runtime API's `host:port` (`AWS_LAMBDA_RUNTIME_API`).
    pub runtime_api: String,
    /// Where a direct invocation that names no model goes; `None`: the repository's only model.
    pub default_model: Option<String>,
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// Building the server failed (a key file, the compute pool).
    #[error("{0}")]
    Start(#[from] std::io::Error),
    /// A model failed to load; reported to the runtime API as an init error.
    #[error("models failed to load: {0}")]
    Init(String),
    /// The runtime API could not be reached or answered out of protocol.
    #[error("runtime API {url}: {reason}")]
    RuntimeApi {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// Answers invocations from the runtime API with `app` (the server's HTTP routes) until
/// `shutdown` completes (Lambda ends the process itself; tests end the loop). `repository`
/// has finished its start-up load: a model without a ready version is reported as an init
/// error instead.
pub(crate) async fn run(
    app: Router,
    repository: Arc<Repository>,
    settings: LambdaSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LambdaError> {
    let api = RuntimeApi::new(&settings.runtime_api);
    let failed: Vec<String> = repository
        .entries()
        .iter()
        .filter(|entry| entry.ready_versions().is_empty())
        .map(|entry| match &entry.error {
            Some(error) => format!("{}: {error}", entry.name),
            None => format!("{}: no version loaded", entry.name),
        })
        .collect();
    if !failed.is_empty() {
        let message = failed.join("; ");
        api.init_error("ferroserve.ModelLoad", &message).await?;
        return Err(LambdaError::Init(message));
    }
    tracing::info!(api = %settings.runtime_api, "models loaded; waiting for invocations");
    let models = || {
        let mut names: Vec<String> = repository
            .entries()
            .iter()
            .map(|e| e.name.clone())
            .collect();
        names.sort();
        names
    };
    let invocations = async {
        loop {
            let (id, event) = api.next().await?;
            match invoke(&app, &event, settings.default_model.as_deref(), &models()).await {
                Ok(answer) => api.respond(&id, answer).await?,
                Err((kind, message)) => {
                    tracing::info!(request_id = %id, %kind, %message, "invocation refused");
                    api.error(&id, &kind, &message).await?;
                }
            }
        }
    };
    tokio::select! {
        result = invocations => result,
        () = shutdown => Ok(()),
    }
}

/// One invocation: the answer's bytes, or the error report (type, message) of a refused
/// direct invocation or an event that is no request.
async fn invoke(
    app: &Router,
    event: &[u8],
    default_model: Option<&str>,
    models: &[String],
) -> Result<Bytes, (String, String)> {
    let invocation = event::parse(event, default_model, models)
        .map_err(|e| ("ferroserve.InvalidEvent".to_owned(), e.to_string()))?;
    let response = app
        .clone()
        .oneshot(invocation.request)
        .await
        .unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ("ferroserve.Internal".to_owned(), e.to_string()))?;
    match invocation.source {
        event::Source::Direct if parts.status.is_success() => Ok(body),
        event::Source::Direct => Err(event::direct_error(parts.status, &body)),
        source => Ok(Bytes::from(event::http_answer(
            source,
            parts.status,
            &parts.headers,
            &body,
        ))),
    }
}

/// The runtime API's client.
struct RuntimeApi {
    base: String,
    client: reqwest::Client,
}

impl RuntimeApi {
    fn new(address: &str) -> RuntimeApi {
        RuntimeApi {
            base: format!("http://{address}/2018-06-01/runtime"),
            // No overall timeout: `next` waits, frozen, until an invocation arrives.
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn failed(url: &str, reason: impl std::fmt::Display) -> LambdaError {
        LambdaError::RuntimeApi {
            url: url.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The next invocation: its request id and event.
    async fn next(&self) -> Result<(String, Bytes), LambdaError> {
        let url = format!("{}/invocation/next", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| Self::failed(&url, e))?;
        if !response.status().is_success() {
            return Err(Self::failed(&url, response.status()));
        }
        let id = response
            .headers()
            .get("lambda-runtime-aws-request-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Self::failed(&url, "no Lambda-Runtime-Aws-Request-Id header"))?
            .to_owned();
        let event = response.bytes().await.map_err(|e| Self::failed(&url, e))?;
        Ok((id, event))
    }

    async fn respond(&self, id: &str, answer: Bytes) -> Result<(), LambdaError> {
        let url = format!("{}/invocation/{id}/response", self.base);
        self.post(&url, answer, None).await
    }

    async fn error(&self, id: &str, kind: &str, message: &str) -> Result<(), LambdaError> {
        let url = format!("{}/invocation/{id}/error", self.base);
        self.post(&url, report(kind, message), Some(kind)).await
    }

    async fn init_error(&self, kind: &str, message: &str) -> Result<(), LambdaError> {
        let url = format!("{}/init/error", self.base);
        self.post(&url, report(kind, message), Some(kind)).await
    }

    async fn post(
        &self,
        url: &str,
        body: Bytes,
        error_type: Option<&str>,
    ) -> Result<(), LambdaError> {
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(kind) = error_type {
            request = request.header("Lambda-Runtime-Function-Error-Type", kind);
        }
        let response = request.send().await.map_err(|e| Self::failed(url, e))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            // 413: the answer is past Lambda's payload limit; the runtime API has already
            // failed the invocation, and the next one is unaffected.
            StatusCode::PAYLOAD_TOO_LARGE => {
                tracing::warn!(%url, "answer past the runtime API's payload limit");
                Ok(())
            }
            status => Err(Self::failed(url, status)),
        }
    }
}

/// The runtime API's error document.
fn report(kind: &str, message: &str) -> Bytes {
    let document = serde_json::json!({
        "errorType": kind,
        "errorMessage": message,
        "stackTrace": [],
    });
    Bytes::from(serde_json::to_vec(&document).expect("a JSON value serializes"))
}
