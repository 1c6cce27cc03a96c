//! JWT bearer tokens over the wire: RS256, ES256 and EdDSA tokens verified against a JWKS
//! file (issuer, audience, expiry, scopes and models from claims); expired, wrong-audience,
//! wrong-issuer, wrong-signature and unknown-key tokens refused with 401 and the reason; the
//! file rotated; a JWKS URL fetched again when a token names a new key id, never more than
//! once per interval.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ferroserve_server::ServerConfig;
use ferroserve_server::access::jwt::JwtSettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

use crate::grpc::{client, iris_request};
use crate::kit::{TestServer, examples, oracle};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "ferroserve";

/// A signing key and its public JWK.
struct Signer {
    kid: &'static str,
    algorithm: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    fn es256(kid: &'static str) -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        Signer {
            kid,
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        }
    }

    fn eddsa(kid: &'static str) -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Signer {
            kid,
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                        "x": b64(pair.public_key_raw())}),
        }
    }

    fn rs256() -> Signer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
        let pem = std::fs::read(dir.join("rs256-test-private.pem")).unwrap();
        let jwk = std::fs::read(dir.join("rs256-test-public.jwk.json")).unwrap();
        Signer {
            kid: "rsa-1",
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(&pem).unwrap(),
            jwk: serde_json::from_slice(&jwk).unwrap(),
        }
    }

    /// A token with the usual claims, `extra` added over them.
    fn token(&self, extra: Value) -> String {
        self.token_as(self.algorithm, self.kid, extra)
    }

    fn token_as(&self, algorithm: Algorithm, kid: &str, extra: Value) -> String {
        let mut claims = json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE,
                                "exp": now() + 600, "scope": "infer read"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let header = Header {
            kid: Some(kid.to_owned()),
            ..Header::new(algorithm)
        };
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwks(signers: &[&Signer]) -> String {
    json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn settings(jwks: String) -> JwtSettings {
    JwtSettings {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..JwtSettings::new(jwks)
    }
}

async fn infer(server: &TestServer, model: &str, token: &str) -> reqwest::Response {
    let body = oracle(model, "request.json");
    server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `GET /v2/models/stats` (needs `read`) with `token`.
async fn stats_with(server: &TestServer, token: &str) -> reqwest::Response {
    let bearer = format!("Bearer {token}");
    server
        .get_with("/v2/models/stats", &[("authorization", &bearer)])
        .await
}

/// The status, the `WWW-Authenticate` challenge and the error of a refused request.
async fn refusal(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    (
        status,
        challenge,
        body["error"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn tokens_verify_against_a_jwks_file_and_bad_ones_get_401_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (es, ed, rsa) = (
        Signer::es256("es-1"),
        Signer::eddsa("ed-1"),
        Signer::rs256(),
    );
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&es, &ed, &rsa])).unwrap();
    let config = ServerConfig {
        jwt: Some(settings(jwks_file.display().to_string())),
        ..ServerConfig::new(examples())
    };
    let server = TestServer::start(config).await;

    // Each algorithm; scopes from a string or an array; models from a claim.
    for signer in [&es, &ed, &rsa] {
        let response = infer(&server, "iris_logreg", &signer.token(json!({}))).await;
        assert_eq!(response.status(), StatusCode::OK, "{:?}", signer.algorithm);
    }
    let reader = es.token(json!({}));
    let stats = stats_with(&server, &reader).await;
    assert_eq!(stats.status(), StatusCode::OK);
    let iris_only = ed.token(json!({"scope": ["infer"], "models": ["iris_logreg"], "sub": "bob"}));
    assert_eq!(
        infer(&server, "iris_logreg", &iris_only).await.status(),
        StatusCode::OK
    );
    let (status, _, error) = refusal(infer(&server, "digits_mlp", &iris_only).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        error.contains("'bob' may not use model 'digits_mlp'"),
        "{error}"
    );
    let stats = stats_with(&server, &iris_only).await;
    assert_eq!(stats.status(), StatusCode::FORBIDDEN);

    // Refused, each with its reason.
    let other_key = Signer::es256("es-1");
    let cases = [
        (es.token(json!({"exp": now() - 120})), "expired"),
        (es.token(json!({"aud": "someone-else"})), "another audience"),
        (
            es.token(json!({"iss": "https://evil.test"})),
            "another issuer",
        ),
        (other_key.token(json!({})), "signature does not verify"),
        (
            es.token_as(Algorithm::ES256, "es-9", json!({})),
            "no key with id 'es-9'",
        ),
        (
            rsa.token_as(Algorithm::RS256, "es-1", json!({})),
            "signed with RS256",
        ),
        (es.token(json!({"nbf": now() + 600})), "not valid yet"),
        ("a.b.c".to_owned(), "does not decode"),
    ];
    for (token, reason) in cases {
        let (status, challenge, error) = refusal(infer(&server, "iris_logreg", &token).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: {error}");
        assert!(error.contains(reason), "{reason}: {error}");
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(reason),
            "{challenge}"
        );
    }
    // No token at all.
    let (status, _) = server.get("/v2/models/iris_logreg").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // gRPC: the token in `authorization` metadata.
    let mut grpc = client(&server).await;
    let mut request = tonic::Request::new(iris_request(false));
    let bearer = format!("Bearer {reader}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    assert!(grpc.model_infer(request).await.is_ok());
    let mut request = tonic::Request::new(iris_request(false));
    let expired = format!("Bearer {}", es.token(json!({"exp": now() - 120})));
    request
        .metadata_mut()
        .insert("authorization", expired.parse().unwrap());
    let status = grpc.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());

    // The key set rotated: es-1 removed; its token (verified and cached before) is refused.
    std::fs::write(&jwks_file, jwks(&[&ed, &rsa])).unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if infer(&server, "iris_logreg", &reader).await.status() == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "a token of a removed key was still let in after 5 s"
    );
    assert_eq!(
        infer(&server, "iris_logreg", &ed.token(json!({})))
            .await
            .status(),
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn a_jwks_url_is_fetched_and_fetched_again_for_a_new_key_id_at_most_once_per_interval() {
    // The identity provider: a real HTTP server whose key set the test changes.
    let (first, second) = (Signer::es256("es-1"), Signer::eddsa("ed-2"));
    let served = Arc::new(Mutex::new(jwks(&[&first])));
    let fetches = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (served, fetches) = (Arc::clone(&served), Arc::clone(&fetches));
        axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                fetches.fetch_add(1, Ordering::Relaxed);
                let body = served.lock().unwrap().clone();
                async move { body }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let idp = tokio::spawn(async move { axum::serve(listener, provider).await });

    let config = ServerConfig {
        jwt: Some(JwtSettings {
            refetch_after_miss: Duration::from_millis(500),
            ..settings(url)
        }),
        ..ServerConfig::new(examples())
    };
    let server = TestServer::start(config).await;
    let accepted = |token: String| {
        let server = &server;
        async move {
            for _ in 0..50 {
                if infer(server, "iris_logreg", &token).await.status() == StatusCode::OK {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        accepted(first.token(json!({}))).await,
        "the URL's key was never used"
    );

    // A new key at the provider: a token naming it makes the set be fetched again.
    *served.lock().unwrap() = jwks(&[&first, &second]);
    let before = fetches.load(Ordering::Relaxed);
    assert!(
        accepted(second.token(json!({}))).await,
        "the new key id was never fetched"
    );
    assert!(fetches.load(Ordering::Relaxed) > before);

    // Tokens naming unknown ids, fast: the provider is not hammered.
    let before = fetches.load(Ordering::Relaxed);
    for _ in 0..40 {
        let token = first.token_as(Algorithm::ES256, "nobody", json!({}));
        assert_eq!(
            infer(&server, "iris_logreg", &token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let during = fetches.load(Ordering::Relaxed) - before;
    assert!(during <= 3, "{during} fetches for 40 unknown-key tokens");
    server.stop().await;
    idp.abort();
}
