//! Access control in front of every front-end: what each HTTP path and gRPC method needs
//! ([`http_requirement`], [`grpc_requirement`]), and the layers that ask
//! [`Access::authorize`](crate::access::Access::authorize) before a handler runs: axum
//! middleware for HTTP, a tower layer for gRPC. A refused request is answered here, in its
//! protocol's error shape, by the status table; a request let in carries its
//! [`Caller`] in its extensions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};
use http::Method;

use super::status::{ApiError, grpc_status};
use crate::access::{Access, Caller, Denied, Peer, Requirement, Scope};
use crate::tls::ClientCertificate;

/// What the HTTP request `method path` needs.
///
/// Liveness and readiness are open (probes carry no keys). Model paths need `infer` on the
/// model they name, except a model's statistics and monitoring report (`read`). Everything
/// else — metrics, the dashboard, the index, static files, unknown paths — needs `read`,
/// and changing the repository or sending feedback needs `admin` (or `feedback`).
pub(crate) fn http_requirement(method: &Method, path: &str) -> Requirement {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    match segments.as_slice() {
        ["v2", "health", ..] => Requirement::OPEN,
        ["v2"] => Requirement::scope(Scope::Infer),
        ["v2", "models", "stats"] => Requirement::scope(Scope::Read),
        ["v2", "models", model, rest @ ..] => {
            // `{model}[/versions/{v}|/labels/{l}]/{endpoint}`
            let endpoint = match rest {
                ["versions" | "labels", _, endpoint @ ..] => endpoint,
                endpoint => endpoint,
            };
            match endpoint {
                ["stats"] | ["monitoring"] => Requirement::scope(Scope::Read),
                ["feedback"] => Requirement::scope(Scope::Feedback),
                _ => Requirement::infer_on(decoded(model)),
            }
        }
        ["v2", "repository", "index"] => Requirement::scope(Scope::Read),
        ["v2", "repository", "models", _, "labels"] if method == Method::GET => {
            Requirement::scope(Scope::Read)
        }
        ["v2", "repository", ..] => Requirement::scope(Scope::Admin),
        ["v1", "models", ..] => {
            // TF Serving: the handler reads the model from the decoded rest of the path.
            let rest = decoded(path.strip_prefix("/v1/models/").unwrap_or(""));
            let model = super::tfserving::model_in_path(&rest).unwrap_or(rest);
            Requirement::infer_on(model)
        }
        _ => Requirement::scope(Scope::Read),
    }
}

/// A path segment percent-decoded as axum decodes it for the handlers, so the model checked
/// is the model served.
fn decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// What the gRPC method at `path` (`/package.Service/Method`) needs. The model of a
/// per-model method is in its message, so the handler checks it with
/// [`Caller::permit_model`].
pub(crate) fn grpc_requirement(path: &str) -> Requirement {
    let method = path.rsplit('/').next().unwrap_or("");
    if path.starts_with("/grpc.health.v1.Health/") {
        return Requirement::OPEN;
    }
    match method {
        "ServerLive" | "ServerReady" => Requirement::OPEN,
        "ServerMetadata" | "ModelMetadata" | "ModelReady" | "ModelInfer" | "ModelStreamInfer"
        | "ModelConfig" => Requirement::scope(Scope::Infer),
        "ModelStatistics" | "RepositoryIndex" => Requirement::scope(Scope::Read),
        _ => Requirement::scope(Scope::Admin),
    }
}

/// Logs a refusal, without the key: at debug when no key was sent (a client not set up) or
/// for a rate limit, else at warn, at most one warn line a second (a client retrying a bad
/// key must not flood the log), the line counting the refusals it stands for.
fn log_refusal(denied: &Denied, protocol: &'static str, path: &str) {
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    if matches!(denied, Denied::NoCredentials | Denied::RateLimited { .. }) {
        tracing::debug!(protocol, path, reason = %denied, "request refused");
        return;
    }
    let refused = SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_SECOND.swap(now, Ordering::Relaxed) != now {
        SINCE.store(0, Ordering::Relaxed);
        tracing::warn!(protocol, path, reason = %denied, refused, "request refused");
    }
}

/// Who a refused management call came from, for the audit trail: the key's name when it was
/// valid but lacked the scope.
fn refused_who(denied: &Denied) -> &str {
    match denied {
        Denied::Scope { key, .. } | Denied::Model { key, .. } => key,
        _ => "unauthenticated",
    }
}

/// The HTTP middleware, on every route whether or not the server has keys: refuses what the
/// caller may not do, else runs the handler with the [`Caller`] in the request's extensions;
/// a management call (one that needs `admin` or `feedback`) is recorded in the audit trail
/// with its outcome.
pub(crate) async fn http(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    let needed = http_requirement(request.method(), request.uri().path());
    let audited = matches!(needed.scope, Some(Scope::Admin | Scope::Feedback));
    let action = audited.then(|| format!("{} {}", request.method(), request.uri().path()));
    let peer = Peer {
        address: request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip()),
        certificate: request.extensions().get::<ClientCertificate>(),
    };
    let browser_reachable = audited || request.uri().path() == "/dashboard";
    let checked = match browser_reachable {
        true => browser_checks(&access, &request),
        false => Ok(()),
    };
    let authorized = checked.and_then(|()| {
        access
            .authorize_peer(request.headers(), &needed, &peer)
            .map_err(ApiError::Denied)
    });
    match authorized {
        Ok(caller) => {
            let audit = action.map(|action| (caller.clone(), action));
            request.extensions_mut().insert(caller);
            let response = next.run(request).await;
            if let Some((caller, action)) = audit {
                crate::audit::record(caller.name(), &action, &response.status().to_string());
            }
            response
        }
        Err(error) => {
            if let ApiError::Denied(denied) = &error {
                log_refusal(denied, "http", request.uri().path());
            }
            if let Some(action) = action {
                let who = match &error {
                    ApiError::Denied(denied) => refused_who(denied),
                    _ => "unauthenticated",
                };
                crate::audit::record(who, &action, &format!("refused: {error}"));
            }
            error.into_response()
        }
    }
}

/// What guards the calls a browser can be made to send (management, the dashboard) against
/// cross-site pages and DNS rebinding: a management `POST` may not have a content type a
/// plain HTML form or `fetch` sends without asking first (`text/plain`, form encodings), and
/// on a server without keys, `Host` and `Origin` must be this server's
/// ([`Access::check_browser_origin`]).
fn browser_checks(access: &Access, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    if request.method() == Method::POST
        && let Some(content_type) = headers.get(http::header::CONTENT_TYPE)
    {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            essence.as_str(),
            "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
        ) {
            return Err(crate::codec::ProtocolError::Header {
                header: "Content-Type",
                message: format!(
                    "{essence} is refused on management endpoints; send application/json"
                ),
            }
            .into());
        }
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let origin = headers
        .get(http::header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("(not UTF-8)"));
    access
        .check_browser_origin(host, origin)
        .map_err(ApiError::Denied)
}

/// The gRPC layer: wraps the whole tonic server.
#[derive(Clone, Debug)]
pub(crate) struct GrpcGuardLayer {
    /// Who may call what.
    pub(crate) access: Arc<Access>,
}

impl<S> tower::Layer<S> for GrpcGuardLayer {
    type Service = GrpcGuard<S>;

    fn layer(&self, inner: S) -> GrpcGuard<S> {
        GrpcGuard {
            inner,
            access: Arc::clone(&self.access),
        }
    }
}

/// [`GrpcGuardLayer`]'s service: a refused call is answered at once with the status
/// (`UNAUTHENTICATED` or `PERMISSION_DENIED`), trailers only, as gRPC clients expect.
#[derive(Clone, Debug)]
pub(crate) struct GrpcGuard<S> {
    inner: S,
    access: Arc<Access>,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let needed = grpc_requirement(request.uri().path());
        // Every gRPC connection comes from `transport::grpc_incoming`, which says who it is.
        let grpc_peer = request.extensions().get::<crate::transport::GrpcPeer>();
        let peer = Peer {
            address: grpc_peer.map(|p| p.address.ip()),
            certificate: grpc_peer.and_then(|p| p.certificate.as_ref()),
        };
        match self
            .access
            .authorize_peer(request.headers(), &needed, &peer)
        {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Left(self.inner.call(request))
            }
            Err(denied) => {
                log_refusal(&denied, "grpc", request.uri().path());
                if needed.scope == Some(Scope::Admin) {
                    let action = request.uri().path().rsplit('/').next().unwrap_or("");
                    crate::audit::record(
                        refused_who(&denied),
                        action,
                        &format!("refused: {denied}"),
                    );
                }
                let status = grpc_status(&ApiError::Denied(denied));
                Either::Right(ready(Ok(status.into_http())))
            }
        }
    }
}

/// The caller a gRPC request was let in as; [`Caller::anyone`] when no guard ran.
pub(crate) fn grpc_caller<T>(request: &tonic::Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(Caller::anyone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_paths_need_their_scope() {
        // method path scope [model]; `-`: open.
        let table = "
            GET /v2/health/live -
            GET /v2/health/ready -
            GET /v2 infer
            POST /v2/models/m/infer infer m
            POST /v2/models/m/versions/2/infer infer m
            POST /v2/models/m/labels/stable/infer infer m
            GET /v2/models/m infer m
            GET /v2/models/m/ready infer m
            GET /v2/models/m/config infer m
            GET /v2/models/a%5Fb/ready infer a_b
            GET /v2/models/m/stats read
            GET /v2/models/m/versions/1/stats read
            GET /v2/models/m/monitoring read
            GET /v2/models/stats read
            POST /v2/models/m/feedback feedback
            POST /v2/repository/index read
            GET /v2/repository/models/m/labels read
            POST /v2/repository/models/m/labels admin
            POST /v2/repository/models/m/load admin
            POST /v2/repository/models/m/unload admin
            POST /v1/models/m:predict infer m
            POST /v1/models/m/versions/1:predict infer m
            GET /v1/models/m/labels/stable/metadata infer m
            GET /v1/models/m infer m
            GET /v1/models/a:b/metadata infer a:b
            POST /v1/models/m%3Apredict infer m
            POST /v1/models/m%2Fversions%2F1:predict infer m
            GET /metrics read
            GET /dashboard read
            GET /index.html read
            GET //v2/models/m/infer read
        ";
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let fields: Vec<&str> = line.split(' ').collect();
            let method: Method = fields[0].parse().unwrap();
            let needed = http_requirement(&method, fields[1]);
            let scope = match fields[2] {
                "-" => None,
                scope => Some(scope.parse::<Scope>().unwrap()),
            };
            assert_eq!(needed.scope, scope, "{line}");
            assert_eq!(needed.model.as_deref(), fields.get(3).copied(), "{line}");
        }
    }

    #[test]
    fn grpc_methods_need_their_scope() {
        let service = "/inference.GRPCInferenceService/";
        // method scope; `-`: open.
        let table = "ServerLive - ServerReady - ModelReady infer ModelInfer infer \
                     ModelStreamInfer infer ModelMetadata infer ModelConfig infer \
                     ModelStatistics read RepositoryIndex read RepositoryModelLoad admin \
                     RepositoryModelUnload admin SomethingNew admin";
        let fields: Vec<&str> = table.split_whitespace().collect();
        for pair in fields.chunks(2) {
            let scope = match pair[1] {
                "-" => None,
                scope => Some(scope.parse::<Scope>().unwrap()),
            };
            let needed = grpc_requirement(&format!("{service}{}", pair[0]));
            assert_eq!(needed.scope, scope, "{}", pair[0]);
        }
        assert_eq!(grpc_requirement("/grpc.health.v1.Health/Check").scope, None);
    }
}
