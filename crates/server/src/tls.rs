//! TLS for the listeners: the server's certificate chain and key (and, for mutual TLS, the CA
//! that client certificates must chain to) read from PEM files, reread when they change, and
//! the identity a verified client certificate gives its connection.
//!
//! rustls with ring as its one crypto provider; TLS 1.2 and 1.3 only (rustls has nothing
//! older). The HTTP listener offers `h2` and `http/1.1` by ALPN, the gRPC listener `h2`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The PEM files TLS is configured from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates a client's certificate must chain to; when set, every connection must
    /// present one (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or held no usable PEM block.
    #[error("TLS {what} {path}: {message}")]
    File {
        /// Which file: `certificate`, `key` or `client CA`.
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client CA could not make a verifier.
    #[error("TLS client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// Which listener a configuration is for: what it offers by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// HTTP/2 or HTTP/1.1.
    Http,
    /// gRPC: HTTP/2 only.
    Grpc,
}

/// The server's TLS configuration, reread from its files when they change.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    configs: RwLock<Configs>,
    /// Each file's modification time and length when last read.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

#[derive(Debug)]
struct Configs {
    http: Arc<ServerConfig>,
    grpc: Arc<ServerConfig>,
}

impl Tls {
    /// Reads `files`, which must be valid now.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let stamps = stamps(&files);
        let configs = configs(&files)?;
        Ok(Tls {
            files,
            configs: RwLock::new(configs),
            stamps: Mutex::new(stamps),
        })
    }

    /// Whether connections must present a client certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// An acceptor with the configuration in force now, for one new connection.
    pub fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(Arc::clone(match listener {
            Listener::Http => &configs.http,
            Listener::Grpc => &configs.grpc,
        }))
    }

    /// Rereads the files if any changed since the last read. Files that no longer make a
    /// valid configuration are logged and the configuration read before stays in force (a
    /// certificate and key are often written one after the other: the next check picks up
    /// the pair).
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        let mut seen = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        if now == *seen {
            return;
        }
        match configs(&self.files) {
            Ok(configs) => {
                *seen = now;
                *self.configs.write().unwrap_or_else(|e| e.into_inner()) = configs;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                *seen = now;
                tracing::error!(%error, "TLS files changed but cannot be used; the certificate read before stays in force");
            }
        }
    }

    /// Calls [`Tls::reload_if_changed`] every `interval`, until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        crate::every(interval, self, Tls::reload_if_changed).await;
    }
}

/// The identity a verified client certificate gave its connection: put in each request's
/// extensions, where the access check maps it to a key file entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The whole subject, as RFC 4514 writes it (`CN=app, O=Acme`).
    pub subject: Arc<str>,
    /// The subject's common name, when it has one.
    pub common_name: Option<Arc<str>>,
}

impl ClientCertificate {
    /// The identity of the leaf certificate of `chain`; `None` without one, or when it does
    /// not parse (rustls verified it, so it does).
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Option<ClientCertificate> {
        let leaf = chain?.first()?;
        let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let subject = certificate.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(Arc::from);
        Some(ClientCertificate {
            subject: Arc::from(subject.to_string()),
            common_name,
        })
    }

    /// Whether `subject` (from a key file entry) names this certificate: its whole subject,
    /// or its common name alone.
    pub fn matches(&self, subject: &str) -> bool {
        *self.subject == *subject || self.common_name.as_deref() == Some(subject)
    }
}

/// The configurations of both listeners, from `files`.
fn configs(files: &TlsFiles) -> Result<Configs, TlsError> {
    let chain = certificates(&files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "key",
        path: files.key.display().to_string(),
        message: e.to_string(),
    })?;
    // ring, as JWT verification and the JWKS client use it: one crypto library in the
    // binary, built without CMake. rustls marks it deprecated because it lacks the
    // post-quantum key exchange aws-lc-rs has; the classical suites are what TLS 1.2/1.3
    // clients (tritonclient, grpcio, curl) negotiate today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(path, "client CA")? {
                roots.add(ca).map_err(|e| TlsError::File {
                    what: "client CA",
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut http = builder.with_single_cert(chain, key)?;
    let mut grpc = http.clone();
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Configs {
        http: Arc::new(http),
        grpc: Arc::new(grpc),
    })
}

/// Every certificate of the PEM file at `path`; at least one.
fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |message: String| TlsError::File {
        what,
        path: path.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

/// The modification time and length of each file of `files`.
fn stamps(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| crate::file_stamp(path))
    .collect()
}
