//! A Lambda invocation's event as a request to the server's routes, and the answer as the
//! event's source expects it back.
//!
//! Three kinds of event arrive:
//! - API Gateway HTTP APIs and Lambda function URLs (payload format 2.0: `rawPath`,
//!   `requestContext.http`),
//! - API Gateway REST APIs and Application Load Balancers (format 1.0: `httpMethod`, `path`),
//! - direct invocations (`aws lambda invoke`, Step Functions, SDKs): the event is an
//!   inference body itself, KServe V2 (`{"inputs": [{"name", "datatype", ...}]}`) or TF
//!   Serving (`{"instances": ...}` or `{"inputs": ...}`), sent to the event's `model_name`
//!   (and `model_version`), or to the function's default model.
//!
//! HTTP events are answered in their proxy-response shape (`statusCode`, `headers`, `body`,
//! base64 when the body is not text); a direct invocation is answered with the response body,
//! or, when the server refuses the request, with the runtime API's error report.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

/// Why an event cannot become a request.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("the event is not a JSON object: {0}")]
    NotJson(String),
    /// An HTTP event lacks a field or has one of the wrong type.
    #[error("{kind} event: {field} {problem}")]
    Field {
        /// The event's kind, as named in [`Source`].
        kind: &'static str,
        /// The field, dotted from the event's top.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A direct invocation names no model and the function has no single default.
    #[error(
        "a direct invocation must name its model (\"model_name\" in the event, or \
         `--model` for the function); the repository has: {known}"
    )]
    NoModel {
        /// The repository's models, comma-separated.
        known: String,
    },
}

/// Where an event came from, which decides the answer's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Payload format 2.0: HTTP APIs, function URLs.
    HttpV2,
    /// Payload format 1.0: REST APIs.
    HttpV1,
    /// An Application Load Balancer (format 1.0 with `statusDescription` in the answer).
    LoadBalancer,
    /// A direct invocation: the body is the answer.
    Direct,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::HttpV2 => "HTTP API (payload 2.0)",
            Source::HttpV1 => "REST API (payload 1.0)",
            Source::LoadBalancer => "load balancer",
            Source::Direct => "direct",
        }
    }
}

/// An event turned into a request for the server's router.
#[derive(Debug)]
pub struct Invocation {
    /// What the event came from.
    pub source: Source,
    /// The request, as if it had arrived over HTTP.
    pub request: Request<Body>,
}

/// The request `event` stands for. `models` lists the repository's models, for a direct
/// invocation that names none: with one model, or a `default_model`, the event goes there.
pub fn parse(
    event: &[u8],
    default_model: Option<&str>,
    models: &[String],
) -> Result<Invocation, EventError> {
    let value: Value =
        serde_json::from_slice(event).map_err(|e| EventError::NotJson(e.to_string()))?;
    let Value::Object(mut event) = value else {
        return Err(EventError::NotJson("expected an object".into()));
    };
    let context = event.get("requestContext").and_then(Value::as_object);
    let source = if context.is_some_and(|c| c.contains_key("http")) && event.contains_key("rawPath")
    {
        Source::HttpV2
    } else if event.contains_key("httpMethod") {
        match context.is_some_and(|c| c.contains_key("elb")) {
            true => Source::LoadBalancer,
            false => Source::HttpV1,
        }
    } else {
        Source::Direct
    };
    let request = match source {
        Source::HttpV2 => http_v2(&event)?,
        Source::HttpV1 | Source::LoadBalancer => http_v1(&event, source)?,
        Source::Direct => direct(&mut event, default_model, models)?,
    };
    Ok(Invocation { source, request })
}

/// The answer to an HTTP event: the proxy-response object, serialized.
pub fn http_answer(
    source: Source,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let text = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/"));
    let (body, encoded) = match (text, std::str::from_utf8(body)) {
        (true, Ok(text)) => (text.to_owned(), false),
        _ => (BASE64.encode(body), true),
    };
    let mut single = Map::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        single.insert(name.as_str().to_owned(), Value::from(values.join(",")));
    }
    let mut answer = json!({
        "statusCode": status.as_u16(),
        "headers": single,
        "body": body,
        "isBase64Encoded": encoded,
    });
    if source == Source::LoadBalancer {
        answer["statusDescription"] = Value::from(format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    serde_json::to_vec(&answer).expect("a JSON value serializes")
}

/// A refused direct invocation as the runtime API's error report: the error's type (from the
/// status) and the server's message.
pub fn direct_error(status: StatusCode, body: &[u8]) -> (String, String) {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let kind = status
        .canonical_reason()
        .unwrap_or("Error")
        .replace([' ', '-'], "");
    (format!("ferroserve.{kind}"), message)
}

fn field<'a>(
    event: &'a Map<String, Value>,
    source: Source,
    name: &'static str,
) -> Result<&'a str, EventError> {
    event
        .get(name)
        .and_then(Value::as_str)
        .ok_or(EventError::Field {
            kind: source.name(),
            field: name,
            problem: "is missing or not a string",
        })
}

fn http_v2(event: &Map<String, Value>) -> Result<Request<Body>, EventError> {
    let source = Source::HttpV2;
    let method = event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .and_then(|h| h.get("method"))
        .and_then(Value::as_str)
        .ok_or(EventError::Field {
            kind: source.name(),
            field: "requestContext.http.method",
            problem: "is missing or not a string",
        })?;
    let path = field(event, source, "rawPath")?;
    let query = event
        .get("rawQueryString")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut builder = Request::builder()
        .method(method_of(method, source)?)
        .uri(uri(path, query, source)?);
    for (name, value) in event
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(value) = value.as_str() {
            builder = add_header(builder, name, value);
        }
    }
    let source_ip = event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .and_then(|h| h.get("sourceIp"))
        .and_then(Value::as_str);
    finish(builder, body_of(event, source)?, source_ip)
}

fn http_v1(event: &Map<String, Value>, source: Source) -> Result<Request<Body>, EventError> {
    let method = field(event, source, "httpMethod")?;
    let path = field(event, source, "path")?;
    let mut pairs = Vec::new();
    if let Some(multi) = event
        .get("multiValueQueryStringParameters")
        .and_then(Value::as_object)
    {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                pairs.push((name.as_str(), value.as_str().unwrap_or("")));
            }
        }
    } else if let Some(single) = event
        .get("queryStringParameters")
        .and_then(Value::as_object)
    {
        for (name, value) in single {
            pairs.push((name.as_str(), value.as_str().unwrap_or("")));
        }
    }
    let query = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut builder = Request::builder()
        .method(method_of(method, source)?)
        .uri(uri(path, &query, source)?);
    if let Some(multi) = event.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    builder = add_header(builder, name, value);
                }
            }
        }
    } else if let Some(single) = event.get("headers").and_then(Value::as_object) {
        for (name, value) in single {
            if let Some(value) = value.as_str() {
                builder = add_header(builder, name, value);
            }
        }
    }
    let source_ip = event
        .get("requestContext")
        .and_then(|c| c.get("identity"))
        .and_then(|i| i.get("sourceIp"))
        .and_then(Value::as_str);
    finish(builder, body_of(event, source)?, source_ip)
}

/// A direct invocation: the event is the body; `model_name` and `model_version`, when
/// present, pick the model and are taken out of it.
fn direct(
    event: &mut Map<String, Value>,
    default_model: Option<&str>,
    models: &[String],
) -> Result<Request<Body>, EventError> {
    let named = |event: &mut Map<String, Value>, key: &str| match event.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let model = named(event, "model_name");
    let version = named(event, "model_version");
    let model = match (model, default_model, models) {
        (Some(model), _, _) => model,
        (None, Some(model), _) => model.to_owned(),
        (None, None, [only]) => only.clone(),
        (None, None, _) => {
            return Err(EventError::NoModel {
                known: models.join(", "),
            });
        }
    };
    let model = encode(&model);
    let v2 = event
        .get("inputs")
        .and_then(Value::as_array)
        .and_then(|inputs| inputs.first())
        .is_some_and(|first| first.get("datatype").is_some());
    let path = match (v2, version) {
        (true, Some(version)) => format!("/v2/models/{model}/versions/{}/infer", encode(&version)),
        (true, None) => format!("/v2/models/{model}/infer"),
        (false, Some(version)) => {
            format!("/v1/models/{model}/versions/{}:predict", encode(&version))
        }
        (false, None) => format!("/v1/models/{model}:predict"),
    };
    let body =
        serde_json::to_vec(&Value::Object(std::mem::take(event))).expect("a JSON value serializes");
    let builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json");
    finish(builder, body, None)
}

fn method_of(method: &str, source: Source) -> Result<Method, EventError> {
    Method::from_bytes(method.as_bytes()).map_err(|_| EventError::Field {
        kind: source.name(),
        field: "method",
        problem: "is not an HTTP method",
    })
}

fn uri(path: &str, query: &str, source: Source) -> Result<axum::http::Uri, EventError> {
    let text = match query {
        "" => path.to_owned(),
        query => format!("{path}?{query}"),
    };
    text.parse().map_err(|_| EventError::Field {
        kind: source.name(),
        field: "path",
        problem: "is not a valid request path",
    })
}

fn add_header(
    builder: axum::http::request::Builder,
    name: &str,
    value: &str,
) -> axum::http::request::Builder {
    // The body's length is set from the decoded body; a header the HTTP library refuses is
    // dropped, as a proxy would.
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return builder;
    }
    match (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        (Ok(name), Ok(value)) => builder.header(name, value),
        _ => builder,
    }
}

fn body_of(event: &Map<String, Value>, source: Source) -> Result<Vec<u8>, EventError> {
    let body = match event.get("body") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(body)) => body,
        Some(_) => {
            return Err(EventError::Field {
                kind: source.name(),
                field: "body",
                problem: "is not a string",
            });
        }
    };
    match event.get("isBase64Encoded").and_then(Value::as_bool) {
        Some(true) => BASE64.decode(body).map_err(|_| EventError::Field {
            kind: source.name(),
            field: "body",
            problem: "is marked base64 but does not decode",
        }),
        _ => Ok(body.clone().into_bytes()),
    }
}

fn finish(
    builder: axum::http::request::Builder,
    body: Vec<u8>,
    source_ip: Option<&str>,
) -> Result<Request<Body>, EventError> {
    let mut builder = builder.header(axum::http::header::CONTENT_LENGTH, body.len());
    if let Some(ip) = source_ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()) {
        builder = builder.extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(ip, 0)));
    }
    builder
        .body(Body::from(body))
        .map_err(|_| EventError::Field {
            kind: "HTTP",
            field: "headers",
            problem: "do not form a valid request",
        })
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(event: &Value) -> Invocation {
        parse(event.to_string().as_bytes(), None, &["m".to_owned()]).unwrap()
    }

    #[test]
    fn rest_api_events_keep_repeated_query_parameters_and_headers() {
        let invocation = parsed(&json!({
            "httpMethod": "GET", "path": "/v2/models/m",
            "multiValueQueryStringParameters": {"a": ["1", "x y"]},
            "multiValueHeaders": {"x-k": ["1", "2"], "content-length": ["999"]},
            "requestContext": {"identity": {"sourceIp": "198.51.100.4"}},
        }));
        assert_eq!(invocation.source, Source::HttpV1);
        let request = invocation.request;
        assert_eq!(request.uri(), "/v2/models/m?a=1&a=x%20y");
        assert_eq!(request.headers().get_all("x-k").iter().count(), 2);
        // The declared length is the decoded body's, not the event's.
        assert_eq!(request.headers()["content-length"], "0");
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .unwrap();
        assert_eq!(peer.0.ip().to_string(), "198.51.100.4");
    }

    #[test]
    fn load_balancer_events_are_told_apart_and_answered_with_a_status_line() {
        let invocation = parsed(&json!({
            "httpMethod": "GET", "path": "/", "requestContext": {"elb": {}},
        }));
        assert_eq!(invocation.source, Source::LoadBalancer);
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let answer: Value = serde_json::from_slice(&http_answer(
            Source::LoadBalancer,
            StatusCode::NOT_FOUND,
            &headers,
            &[0xff, 0x00],
        ))
        .unwrap();
        assert_eq!(answer["statusDescription"], "404 Not Found");
        assert_eq!(answer["isBase64Encoded"], true);
        assert_eq!(answer["body"], "/wA=");
    }

    #[test]
    fn bad_http_events_name_the_field() {
        let error = parse(
            json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}, "body": "%%", "isBase64Encoded": true}).to_string().as_bytes(),
            None,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "HTTP API (payload 2.0) event: body is marked base64 but does not decode"
        );
        let error = parse(
            json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {}}})
                .to_string()
                .as_bytes(),
            None,
            &[],
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("requestContext.http.method"),
            "{error}"
        );
    }

    #[test]
    fn direct_invocations_pick_the_protocol_by_the_body() {
        let v2 = parsed(
            &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}),
        );
        assert_eq!(v2.request.uri(), "/v2/models/m/infer");
        let tf = parsed(&json!({"inputs": {"x": [1.0]}, "model_version": 3}));
        assert_eq!(tf.request.uri(), "/v1/models/m/versions/3:predict");
        let named = parse(
            json!({"model_name": "a b", "instances": [1]})
                .to_string()
                .as_bytes(),
            Some("default"),
            &[],
        )
        .unwrap();
        assert_eq!(named.request.uri(), "/v1/models/a%20b:predict");
        let error = parse(b"{\"instances\": [1]}", None, &["a".into(), "b".into()]).unwrap_err();
        assert!(
            error.to_string().ends_with("the repository has: a, b"),
            "{error}"
        );
    }
}
