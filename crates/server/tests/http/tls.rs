//! TLS over the wire: HTTPS and gRPC over TLS with a test CA's certificate (HTTP/2 by ALPN,
//! plain TCP refused), mutual TLS with a mapped, an unmapped, a foreign and no client
//! certificate, and a certificate rotated under load with no failed request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferroserve_server::access::Scope;
use ferroserve_server::access::keys::{KeyEntry, entry_toml, generate_key};
use ferroserve_server::protocol::grpc::proto;
use ferroserve_server::protocol::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferroserve_server::tls::TlsFiles;
use ferroserve_server::{ModelControl, ServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

use crate::grpc::iris_request;
use crate::kit::{TestServer, examples, oracle};

/// A test certificate authority and what it signs.
pub(crate) struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
pub(crate) struct Issued {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Issued {
    /// The certificate and key together, as reqwest's identity wants them.
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert, self.key).as_bytes()).unwrap()
    }

    fn write(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &self.cert).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, names: &[&str], cn: &str, purpose: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ferroserve tests");
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub(crate) fn server(&self, cn: &str) -> Issued {
        self.issue(
            &["127.0.0.1", "localhost"],
            cn,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose common name is `cn`.
    fn client(&self, cn: &str) -> Issued {
        self.issue(&[], cn, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A reqwest client trusting `ca`, presenting `identity` when given; one connection per
/// request when `fresh` (each request makes a new handshake).
fn https_client(ca: &TestCa, identity: Option<&Issued>, fresh: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    if let Some(identity) = identity {
        builder = builder.identity(identity.identity());
    }
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

#[allow(deprecated)] // ring's provider, as the server uses
fn client_config(ca: &TestCa, identity: Option<&Issued>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(issued.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A TLS handshake with `addr`: the protocol ALPN chose and the server's leaf certificate.
async fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await?;
    let (_, connection) = tls.get_ref();
    let leaf = connection.peer_certificates().unwrap()[0].to_vec();
    Ok((connection.alpn_protocol().map(<[u8]>::to_vec), leaf))
}

/// A gRPC client over TLS to `addr`.
async fn grpc_tls(
    addr: SocketAddr,
    ca: &TestCa,
    identity: Option<&Issued>,
) -> Result<GrpcInferenceServiceClient<Channel>, tonic::transport::Error> {
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(ca, identity, &[b"h2"])));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(GrpcInferenceServiceClient::new(channel))
}

fn iris_body() -> Value {
    oracle("iris_logreg", "request.json")
}

fn tls_config(dir: &Path, server: &Issued, client_ca: Option<&TestCa>) -> ServerConfig {
    let (cert, key) = server.write(dir, "server");
    let client_ca = client_ca.map(|ca| {
        let path = dir.join("client-ca.crt");
        std::fs::write(&path, ca.pem()).unwrap();
        path
    });
    ServerConfig {
        tls: Some(TlsFiles {
            cert,
            key,
            client_ca,
        }),
        ..ServerConfig::new(examples())
    }
}

#[tokio::test]
async fn https_and_grpc_over_tls_serve_and_plain_tcp_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let config = tls_config(dir.path(), &ca.server("server"), None);
    let server = TestServer::start_with_client(config, https_client(&ca, None, false)).await;

    let (status, body) = server
        .post("/v2/models/iris_logreg/infer", &iris_body())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    crate::kit::assert_outputs_match(&body, &oracle("iris_logreg", "expected.json"));

    // ALPN: HTTP/2 offered first on the HTTP listener, HTTP/1.1 still served; gRPC is h2.
    let (alpn, _) = handshake(server.addr, client_config(&ca, None, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (alpn, _) = handshake(server.addr, client_config(&ca, None, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (alpn, _) = handshake(server.grpc_addr, client_config(&ca, None, &[b"h2"]))
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    // The metrics listener has TLS too.
    let metrics = server
        .client
        .get(format!("https://{}/metrics", server.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);

    let mut grpc = grpc_tls(server.grpc_addr, &ca, None).await.unwrap();
    let answer = grpc.model_infer(iris_request(false)).await.unwrap();
    assert_eq!(answer.get_ref().model_name, "iris_logreg");

    // Plain HTTP on the TLS port gets no answer; a client not trusting the CA refuses it.
    let plain = reqwest::get(format!("http://{}/v2/health/live", server.addr)).await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let stranger = https_client(&TestCa::new("another CA"), None, false)
        .get(server.url("/v2/health/live"))
        .send()
        .await;
    assert!(stranger.is_err());
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_maps_a_certificate_subject_to_a_key_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let keys_file = dir.path().join("keys.toml");
    let (admin_key, hash) = generate_key();
    let iris_only = ["iris_logreg".to_owned()];
    let text = [
        KeyEntry::for_certificate("fraud-service", "svc-a", &[Scope::Infer])
            .with_models(&iris_only),
        KeyEntry::new("operator", hash, &[Scope::Admin, Scope::Read]),
    ]
    .iter()
    .map(entry_toml)
    .collect::<String>();
    std::fs::write(&keys_file, text).unwrap();
    let svc_a = ca.client("svc-a");
    let config = ServerConfig {
        api_keys: Some(keys_file),
        model_control: ModelControl::Explicit,
        ..tls_config(dir.path(), &ca.server("server"), Some(&ca))
    };
    let server =
        TestServer::start_with_client(config, https_client(&ca, Some(&svc_a), false)).await;

    // The mapped certificate: its entry's scope and models.
    let (status, body) = server
        .post("/v2/models/iris_logreg/infer", &iris_body())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.get("/v2/models/digits_mlp").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("'fraud-service' may not use model 'digits_mlp'")
    );
    let (status, _) = server.get("/v2/models/stats").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A key sent over the same connection speaks for itself.
    let stats = server
        .get_with(
            "/v2/models/stats",
            &[("authorization", &format!("Bearer {admin_key}"))],
        )
        .await;
    assert_eq!(stats.status(), StatusCode::OK);

    // Same CA, no entry: 401 naming the subject.
    let svc_b = https_client(&ca, Some(&ca.client("svc-b")), false);
    let refused = svc_b
        .get(server.url("/v2/models/iris_logreg"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let message = refused.text().await.unwrap();
    assert!(
        message.contains("CN=svc-b") && message.contains("not in the key file"),
        "{message}"
    );
    // No certificate, or one from another CA: no handshake.
    for client in [
        https_client(&ca, None, false),
        https_client(&ca, Some(&TestCa::new("another CA").client("svc-a")), false),
    ] {
        let outcome = client.get(server.url("/v2/health/live")).send().await;
        assert!(outcome.is_err(), "{outcome:?}");
    }

    // gRPC: the same mapping.
    let mut grpc = grpc_tls(server.grpc_addr, &ca, Some(&svc_a)).await.unwrap();
    assert!(grpc.model_infer(iris_request(false)).await.is_ok());
    let mut digits = proto::ModelInferRequest {
        model_name: "digits_mlp".into(),
        ..iris_request(false)
    };
    digits.inputs.clear();
    let denied = grpc.model_infer(digits).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let mut unmapped = grpc_tls(server.grpc_addr, &ca, Some(&ca.client("svc-b")))
        .await
        .unwrap();
    let denied = unmapped.model_infer(iris_request(false)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{denied:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart_or_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let config = tls_config(dir.path(), &ca.server("first"), None);
    let server =
        Arc::new(TestServer::start_with_client(config, https_client(&ca, None, true)).await);
    let (_, first_leaf) = handshake(server.addr, client_config(&ca, None, &[b"h2"]))
        .await
        .unwrap();

    // Load: two clients, a new connection (and handshake) per request, for a bounded time.
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop_at = Instant::now() + Duration::from_secs(5);
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (server, done, failed) =
                (Arc::clone(&server), Arc::clone(&done), Arc::clone(&failed));
            tokio::spawn(async move {
                while Instant::now() < stop_at {
                    let (status, _) = server
                        .post("/v2/models/iris_logreg/infer", &iris_body())
                        .await;
                    match status {
                        StatusCode::OK => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // Rotate: the new pair written beside the old and renamed over it, key first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = ca.server("second");
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let (cert, key) = second.write(&staging, "server");
    std::fs::rename(key, dir.path().join("server.key")).unwrap();
    std::fs::rename(cert, dir.path().join("server.crt")).unwrap();
    let expected = CertificateDer::from_pem_slice(second.cert.as_bytes())
        .unwrap()
        .to_vec();
    let mut rotated = false;
    for _ in 0..50 {
        let (_, leaf) = handshake(server.addr, client_config(&ca, None, &[b"h2"]))
            .await
            .unwrap();
        if leaf == expected {
            rotated = true;
            break;
        }
        assert_eq!(leaf, first_leaf);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in load {
        task.await.unwrap();
    }
    assert!(rotated, "the new certificate was not served within 5 s");
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(done > 10, "only {done} requests");
    assert_eq!(failed, 0, "{failed} of {} requests failed", done + failed);
    Arc::into_inner(server).unwrap().stop().await;
}
