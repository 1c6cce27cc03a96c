//! Who may call what: the callers the server knows (API keys from a file of hashes, client
//! certificates named in that file, JWTs signed by a trusted key set), the scopes an endpoint
//! needs, and the check of one request's credentials against both. The protocol front-ends ask
//! [`Access::authorize_peer`] with the request's headers, its connection's [`Peer`] and what its
//! endpoint needs; nothing here knows a path or a protocol.
//!
//! Scopes: `infer` (inference, metadata, readiness of a model), `read` (statistics, metrics,
//! monitoring, the dashboard, the repository index), `admin` (load, unload, labels, feedback)
//! and `feedback` (bandit rewards only). A key may be limited to some models; the limit applies
//! to what needs `infer`. With no key file and no JWT key set the server is open: every request
//! is let in.
//!
//! Credentials, in order: a bearer token that is a JWT (three dot-separated parts) when a key
//! set is configured ([`jwt`]); else `Authorization: Bearer` or `x-api-key` looked up in the key
//! file; else, on a mutual-TLS connection, the client certificate's subject looked up there.
//!
//! Rates ([`rate`]): each key draws on its own token bucket (its `rate` in the key file, else
//! the server's default); on an open server with a default rate, each client address does.

pub mod jwt;
pub mod keys;
pub mod rate;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use keys::{KeyFileError, KeySet};
use rate::{Client, Rate, RateLimits};

use crate::tls::ClientCertificate;

/// What an endpoint class allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Inference, model metadata and readiness.
    Infer,
    /// Statistics, metrics, monitoring reports, the dashboard, the repository index.
    Read,
    /// Loading, unloading, moving labels, and feedback.
    Admin,
    /// Bandit feedback only.
    Feedback,
}

impl Scope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Scope; 4] = [Scope::Infer, Scope::Read, Scope::Admin, Scope::Feedback];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Its name in key files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Infer => "infer",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Feedback => "feedback",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.name() == s)
            .ok_or_else(|| format!("unknown scope '{s}' (expected infer, read, admin or feedback)"))
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set allows what `needed` allows: `admin` covers `feedback`.
    pub fn allows(self, needed: Scope) -> bool {
        self.contains(needed) || (needed == Scope::Feedback && self.contains(Scope::Admin))
    }
}

/// Who a request comes from, once let in: its key's name, and the models it may use.
#[derive(Clone, Debug)]
pub struct Caller {
    name: Arc<str>,
    models: Option<Arc<[String]>>,
}

impl Caller {
    /// The caller of a server without access control: every scope, every model.
    pub fn anyone() -> Caller {
        static ANONYMOUS: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("anonymous"));
        Caller {
            name: Arc::clone(&ANONYMOUS),
            models: None,
        }
    }

    /// The key's name (`anonymous` when access is open), for logs and audit lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Refuses unless the caller may run inference on `model`.
    pub fn permit_model(&self, model: &str) -> Result<(), Denied> {
        match &self.models {
            Some(models) if !models.iter().any(|m| m == model) => Err(Denied::Model {
                key: self.name.to_string(),
                model: model.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// What one request needs: a scope (none for health probes), and, for what needs `infer`,
/// the model it is about when the path names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The scope; `None`: open to anyone (liveness and readiness).
    pub scope: Option<Scope>,
    /// The model the request is about, checked against the key's model list.
    pub model: Option<String>,
}

impl Requirement {
    /// Open to anyone.
    pub const OPEN: Requirement = Requirement {
        scope: None,
        model: None,
    };

    /// Needs `scope`, about no model in particular.
    pub fn scope(scope: Scope) -> Requirement {
        Requirement {
            scope: Some(scope),
            model: None,
        }
    }

    /// Needs `infer` on `model`.
    pub fn infer_on(model: impl Into<String>) -> Requirement {
        Requirement {
            scope: Some(Scope::Infer),
            model: Some(model.into()),
        }
    }
}

/// Why a request was refused. Messages never hold the key.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The request carries no credentials.
    #[error(
        "this endpoint needs an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
    )]
    NoCredentials,
    /// The `Authorization` header is not a bearer token.
    #[error("the Authorization header must be 'Bearer <key>'")]
    Malformed,
    /// No key of the server's matches.
    #[error("the API key is not valid")]
    UnknownKey,
    /// A JWT that does not verify, or has expired.
    #[error("the bearer token is not valid: {0}")]
    InvalidToken(String),
    /// A verified client certificate that no key file entry names.
    #[error("client certificate '{subject}' is not in the key file")]
    UnknownCertificate {
        /// The certificate's subject.
        subject: String,
    },
    /// The key lacks the scope the endpoint needs.
    #[error("key '{key}' lacks the '{scope}' scope this endpoint needs")]
    Scope {
        /// The key's name.
        key: String,
        /// The scope needed.
        scope: Scope,
    },
    /// The key may not use this model.
    #[error("key '{key}' may not use model '{model}'")]
    Model {
        /// The key's name.
        key: String,
        /// The model asked for.
        model: String,
    },
    /// A browser-reachable management or dashboard call on a server without keys came with a
    /// `Host` or `Origin` that is not this server's: DNS rebinding or a cross-site page.
    #[error(
        "{header} '{value}' is not allowed for this endpoint on a server without API keys; \
             add it with --allowed-hosts, or use --api-keys"
    )]
    CrossSite {
        /// `Host` or `Origin`.
        header: &'static str,
        /// Its value.
        value: String,
    },
    /// The key, or the client address, is over its rate limit.
    #[error("{client} is over its rate limit; retry in {:.3} s", retry_after.as_secs_f64())]
    RateLimited {
        /// `key '<name>'` or `client <address>`.
        client: String,
        /// The key's name; `None` for a client address.
        key: Option<String>,
        /// How long until the next request would be let in.
        retry_after: Duration,
    },
}

impl Denied {
    /// Whether the caller is unknown (401) rather than known and not allowed (403).
    pub fn unauthenticated(&self) -> bool {
        matches!(
            self,
            Denied::NoCredentials
                | Denied::Malformed
                | Denied::UnknownKey
                | Denied::InvalidToken(_)
                | Denied::UnknownCertificate { .. }
        )
    }
}

/// What a request's connection says about its client.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer<'a> {
    /// The client's address, which an open server's rate limit counts by.
    pub address: Option<IpAddr>,
    /// The client certificate a mutual-TLS connection presented.
    pub certificate: Option<&'a ClientCertificate>,
}

/// What a credential allows: its name, scopes, models and rate.
struct Grant {
    name: Arc<str>,
    scopes: ScopeSet,
    models: Option<Arc<[String]>>,
    rate: Option<Rate>,
}

impl Grant {
    fn of(entry: &keys::KeyEntry) -> Grant {
        Grant {
            name: Arc::clone(&entry.name),
            scopes: entry.scopes,
            models: entry.models.clone(),
            rate: entry.rate,
        }
    }
}

/// The server's access control: open, or the keys of a key file, reread when it changes; and
/// the rate limits.
#[derive(Debug)]
pub struct Access {
    keys: Option<KeyFile>,
    /// JWTs, verified against a key set.
    jwt: Option<Arc<jwt::Jwt>>,
    /// The rate of a key without its own, and of each client address on an open server.
    default_rate: Option<Rate>,
    limits: RateLimits,
    refusals: Refusals,
    /// Host names (besides IP literals and `localhost`) a browser may use to reach management
    /// and the dashboard of a server without keys; `*` allows any.
    allowed_hosts: Vec<String>,
}

/// Refused requests by key name (empty when no valid key was sent, or for a client address)
/// and reason: `unauthenticated`, `forbidden`, `rate_limited`, `cross_site`. Exposed on
/// `/metrics`.
pub type Refusals = Family<Vec<(&'static str, String)>, Counter>;

/// A key file and the keys last read from it.
#[derive(Debug)]
struct KeyFile {
    path: PathBuf,
    keys: RwLock<Arc<KeySet>>,
    /// Modification time and length when last read.
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl Access {
    /// No access control: every request is let in as [`Caller::anyone`].
    pub fn open() -> Access {
        Access {
            keys: None,
            jwt: None,
            default_rate: None,
            limits: RateLimits::default(),
            refusals: Refusals::default(),
            allowed_hosts: Vec::new(),
        }
    }

    /// Host names a browser may use for management and the dashboard without keys (see
    /// [`Access::check_browser_origin`]).
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Access {
        self.allowed_hosts = hosts;
        self
    }

    /// On a server without keys, refuses a management or dashboard call whose `Host` is a
    /// name other than `localhost` or an allowed host (DNS rebinding: an attacker's name
    /// resolving to this server), or whose `Origin` is another site than the `Host` (a
    /// cross-site page posting a form). IP literals need no allowing: a rebinding attack needs
    /// a name. With keys nothing is checked: a bearer key is never sent by a browser on its
    /// own, so these attacks have nothing to ride on.
    pub fn check_browser_origin(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<(), Denied> {
        if self.closed() || self.allowed_hosts.iter().any(|h| h == "*") {
            return Ok(());
        }
        self.browser_origin(host, origin)
            .inspect_err(|denied| self.count_refusal(denied))
    }

    fn browser_origin(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Denied> {
        let refuse = |header, value: &str| {
            let value: String = value.chars().take(200).collect();
            Denied::CrossSite { header, value }
        };
        if let Some(host) = host
            && !self.host_allowed(host_name(host))
        {
            return Err(refuse("Host", host));
        }
        if let Some(origin) = origin {
            let authority = origin
                .split_once("://")
                .map(|(_, rest)| rest.trim_end_matches('/'));
            let same_site = match (authority, host) {
                (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
                _ => false,
            };
            let allowed = authority.is_some_and(|a| {
                let name = host_name(a);
                self.allowed_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(name))
            });
            if !same_site && !allowed {
                return Err(refuse("Origin", origin));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        name.parse::<IpAddr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
            || name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Limits keys without a rate of their own, and client addresses on an open server, to
    /// `rate`.
    pub fn with_default_rate(mut self, rate: Option<Rate>) -> Access {
        self.default_rate = rate;
        self
    }

    /// Keys from the file at `path`, which must be readable and valid now; later changes are
    /// picked up by [`Access::reload_if_changed`].
    pub fn with_key_file(path: impl Into<PathBuf>) -> Result<Access, KeyFileError> {
        let path = path.into();
        let stamp = crate::file_stamp(&path);
        let keys = KeySet::read(&path)?;
        Ok(Access {
            keys: Some(KeyFile {
                path,
                keys: RwLock::new(Arc::new(keys)),
                stamp: Mutex::new(stamp),
            }),
            ..Access::open()
        })
    }

    /// Also lets in JWTs that `jwt` verifies.
    pub fn with_jwt(mut self, jwt: Arc<jwt::Jwt>) -> Access {
        self.jwt = Some(jwt);
        self
    }

    /// Whether requests need credentials (a key file or a JWT key set is configured).
    pub fn closed(&self) -> bool {
        self.keys.is_some() || self.jwt.is_some()
    }

    /// The refusal counters, for `/metrics`.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// The caller `headers` identify, if it may do what `needed` says and is within its rate.
    /// `peer` is the client's address, which an open server's rate limit counts by. Refusals
    /// are counted in [`Access::refusals`].
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        needed: &Requirement,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Denied> {
        let peer = Peer {
            address: peer,
            certificate: None,
        };
        self.authorize_peer(headers, needed, &peer)
    }

    /// [`Access::authorize`] for a connection that may have presented a client certificate.
    pub fn authorize_peer(
        &self,
        headers: &HeaderMap,
        needed: &Requirement,
        peer: &Peer<'_>,
    ) -> Result<Caller, Denied> {
        self.check(headers, needed, peer)
            .inspect_err(|denied| self.count_refusal(denied))
    }

    /// Counts `denied` in [`Access::refusals`].
    fn count_refusal(&self, denied: &Denied) {
        let (key, reason) = match denied {
            Denied::NoCredentials
            | Denied::Malformed
            | Denied::UnknownKey
            | Denied::InvalidToken(_)
            | Denied::UnknownCertificate { .. } => (String::new(), "unauthenticated"),
            Denied::Scope { key, .. } | Denied::Model { key, .. } => (key.clone(), "forbidden"),
            Denied::CrossSite { .. } => (String::new(), "cross_site"),
            Denied::RateLimited { key, .. } => (key.clone().unwrap_or_default(), "rate_limited"),
        };
        let labels = vec![("key", key), ("reason", reason.to_owned())];
        self.refusals.get_or_create(&labels).inc();
    }

    fn check(
        &self,
        headers: &HeaderMap,
        needed: &Requirement,
        peer: &Peer<'_>,
    ) -> Result<Caller, Denied> {
        let Some(scope) = needed.scope else {
            return Ok(Caller::anyone());
        };
        if !self.closed() {
            if let (Some(rate), Some(address)) = (self.default_rate, peer.address) {
                self.limits
                    .take(Client::Address(address), rate)
                    .map_err(|retry_after| Denied::RateLimited {
                        client: format!("client {address}"),
                        key: None,
                        retry_after,
                    })?;
            }
            return Ok(Caller::anyone());
        }
        let grant = self.identify(headers, peer)?;
        if !grant.scopes.allows(scope) {
            return Err(Denied::Scope {
                key: grant.name.to_string(),
                scope,
            });
        }
        let caller = Caller {
            name: grant.name,
            models: grant.models,
        };
        if scope == Scope::Infer
            && let Some(model) = &needed.model
        {
            caller.permit_model(model)?;
        }
        if let Some(rate) = grant.rate.or(self.default_rate) {
            self.limits
                .take(Client::Key(Arc::clone(&caller.name)), rate)
                .map_err(|retry_after| Denied::RateLimited {
                    client: format!("key '{}'", caller.name),
                    key: Some(caller.name.to_string()),
                    retry_after,
                })?;
        }
        Ok(caller)
    }

    /// Who the request's credentials say it is, and what that allows.
    fn identify(&self, headers: &HeaderMap, peer: &Peer<'_>) -> Result<Grant, Denied> {
        let keys = || {
            self.keys
                .as_ref()
                .map(|file| Arc::clone(&file.keys.read().unwrap_or_else(|e| e.into_inner())))
        };
        match credentials(headers) {
            Ok(presented) => {
                if let Some(jwt) = &self.jwt
                    && presented.bytes().filter(|&b| b == b'.').count() == 2
                {
                    let verified = jwt.verify(presented).map_err(Denied::InvalidToken)?;
                    return Ok(Grant {
                        name: verified.name,
                        scopes: verified.scopes,
                        models: verified.models,
                        rate: None,
                    });
                }
                let keys = keys().ok_or(Denied::UnknownKey)?;
                keys.find(presented)
                    .map(Grant::of)
                    .ok_or(Denied::UnknownKey)
            }
            Err(Denied::NoCredentials) if peer.certificate.is_some() => {
                let certificate = peer.certificate.expect("checked");
                keys()
                    .and_then(|keys| keys.find_certificate(certificate).map(Grant::of))
                    .ok_or_else(|| Denied::UnknownCertificate {
                        subject: certificate.subject.chars().take(200).collect(),
                    })
            }
            Err(denied) => Err(denied),
        }
    }

    /// Rereads the key file if its time or size changed since the last read. A file that no
    /// longer reads or parses is logged and the keys read before stay in force.
    pub fn reload_if_changed(&self) {
        let Some(file) = &self.keys else { return };
        let stamp = crate::file_stamp(&file.path);
        let mut seen = file.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if stamp == *seen {
            return;
        }
        *seen = stamp;
        let action = format!("key file {} changed", file.path.display());
        match KeySet::read(&file.path) {
            Ok(keys) => {
                let mut current = file.keys.write().unwrap_or_else(|e| e.into_inner());
                let outcome = key_changes(&current, &keys);
                *current = Arc::new(keys);
                crate::audit::record("key file", &action, &outcome);
            }
            Err(error) => {
                tracing::error!(%error, "API key file changed but cannot be used; the keys read before stay in force");
                crate::audit::record("key file", &action, &format!("refused: {error}"));
            }
        }
    }

    /// Calls [`Access::reload_if_changed`] every `interval`, until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        if self.keys.is_some() {
            crate::every(interval, self, Access::reload_if_changed).await;
        }
    }
}

/// Which keys a reload added and removed, by name, for the audit trail.
fn key_changes(before: &KeySet, after: &KeySet) -> String {
    let names = |set: &KeySet| -> Vec<Arc<str>> {
        set.entries().iter().map(|k| Arc::clone(&k.name)).collect()
    };
    let (old, new) = (names(before), names(after));
    let added: Vec<&str> = new
        .iter()
        .filter(|n| !old.contains(n))
        .map(|n| &**n)
        .collect();
    let removed: Vec<&str> = old
        .iter()
        .filter(|n| !new.contains(n))
        .map(|n| &**n)
        .collect();
    format!(
        "{} keys; added [{}]; removed [{}]",
        new.len(),
        added.join(", "),
        removed.join(", ")
    )
}

/// The host of a `Host` header or an origin's authority, without its port.
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        // [v6]:port
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The key a request presents: `Authorization: Bearer <key>`, else `x-api-key: <key>`.
fn credentials(headers: &HeaderMap) -> Result<&str, Denied> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Denied::Malformed)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(Denied::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Denied::Malformed);
        }
        return Ok(token.trim());
    }
    match headers.get("x-api-key") {
        Some(value) => value.to_str().map(str::trim).map_err(|_| Denied::Malformed),
        None => Err(Denied::NoCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_with(
        entries: &[(&str, &[Scope], &[&str])],
    ) -> (Access, Vec<String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut text = String::new();
        let mut plain = Vec::new();
        for (name, scopes, models) in entries {
            let (key, hash) = keys::generate_key();
            let mut entry = keys::KeyEntry::new(name, hash, scopes);
            if !models.is_empty() {
                let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
                entry = entry.with_models(&models);
            }
            text.push_str(&keys::entry_toml(&entry));
            plain.push(key);
        }
        std::fs::write(&path, text).unwrap();
        (Access::with_key_file(&path).unwrap(), plain, dir)
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {key}").parse().unwrap());
        h
    }

    #[test]
    fn scopes_and_models_decide() {
        let (access, keys, _dir) = access_with(&[
            ("reader", &[Scope::Read], &[]),
            ("tenant", &[Scope::Infer], &["a"]),
            ("ops", &[Scope::Admin], &[]),
        ]);
        let infer_a = Requirement::infer_on("a");
        let infer_b = Requirement::infer_on("b");
        assert!(access.authorize(&bearer(&keys[1]), &infer_a, None).is_ok());
        assert!(matches!(
            access.authorize(&bearer(&keys[1]), &infer_b, None),
            Err(Denied::Model { .. })
        ));
        assert!(matches!(
            access.authorize(&bearer(&keys[0]), &infer_a, None),
            Err(Denied::Scope {
                scope: Scope::Infer,
                ..
            })
        ));
        // admin covers feedback, not read.
        let feedback = Requirement::scope(Scope::Feedback);
        assert!(access.authorize(&bearer(&keys[2]), &feedback, None).is_ok());
        assert!(
            access
                .authorize(&bearer(&keys[2]), &Requirement::scope(Scope::Read), None)
                .is_err()
        );
        // Open endpoints need nothing; the rest need a valid key.
        assert!(
            access
                .authorize(&HeaderMap::new(), &Requirement::OPEN, None)
                .is_ok()
        );
        assert!(matches!(
            access.authorize(&HeaderMap::new(), &infer_a, None),
            Err(Denied::NoCredentials)
        ));
        assert!(matches!(
            access.authorize(&bearer("fsk_nope"), &infer_a, None),
            Err(Denied::UnknownKey)
        ));
        let mut basic = HeaderMap::new();
        basic.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert!(matches!(
            access.authorize(&basic, &infer_a, None),
            Err(Denied::Malformed)
        ));
        let mut x_api_key = HeaderMap::new();
        x_api_key.insert("x-api-key", keys[1].parse().unwrap());
        assert_eq!(
            access.authorize(&x_api_key, &infer_a, None).unwrap().name(),
            "tenant"
        );
    }

    #[test]
    fn browsers_reach_management_only_from_this_server_without_keys() {
        let access = Access::open().with_allowed_hosts(vec!["models.internal".into()]);
        let ok = |host, origin| access.check_browser_origin(host, origin).is_ok();
        for host in [
            "localhost:8000",
            "127.0.0.1:8000",
            "[::1]:8000",
            "10.0.0.7",
            "models.internal:80",
            "app.localhost",
        ] {
            assert!(ok(Some(host), None), "{host}");
        }
        assert!(!ok(Some("attacker.example:8000"), None));
        assert!(ok(Some("localhost:8000"), Some("http://localhost:8000")));
        assert!(ok(Some("10.0.0.7:8000"), Some("http://models.internal")));
        assert!(!ok(Some("localhost:8000"), Some("http://evil.example")));
        assert!(!ok(Some("localhost:8000"), Some("null")));
        assert!(!ok(Some("localhost:8000"), Some("http://localhost:9999")));
        // With keys, or `*`, nothing is checked.
        let any = Access::open().with_allowed_hosts(vec!["*".into()]);
        assert!(
            any.check_browser_origin(Some("attacker.example"), Some("http://evil.example"))
                .is_ok()
        );
    }

    #[test]
    fn a_changed_file_is_reread_and_a_broken_one_ignored() {
        let (access, keys, dir) = access_with(&[("first", &[Scope::Read], &[])]);
        let read = Requirement::scope(Scope::Read);
        let path = dir.path().join("keys.toml");
        let (second, hash) = keys::generate_key();
        std::fs::write(
            &path,
            keys::entry_toml(&keys::KeyEntry::new("second", hash, &[Scope::Read])),
        )
        .unwrap();
        access.reload_if_changed();
        assert!(access.authorize(&bearer(&second), &read, None).is_ok());
        assert!(access.authorize(&bearer(&keys[0]), &read, None).is_err());
        std::fs::write(&path, "[[key]]\nname = 1\n").unwrap();
        access.reload_if_changed();
        assert!(access.authorize(&bearer(&second), &read, None).is_ok());
    }
}
