//! JWT bearer tokens: signatures (RS256, ES256, EdDSA) checked against a JSON Web Key Set read
//! from a file or fetched from a URL, then the issuer, audience, expiry and not-before; the
//! caller's name is the `sub` claim, its scopes a claim (`scope` by default: OAuth's
//! space-separated string, or an array), its models another (`models`, optional).
//!
//! A verified token is kept until it expires (at most [`CACHE_ENTRIES`] of them), so a client
//! sending the same token costs one map lookup, not one signature check, per request. A change
//! of keys empties the cache. A token naming a key id the set lacks makes a URL set be fetched
//! again, at most once per [`REFETCH_AFTER_MISS`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Scope, ScopeSet};

/// Verified tokens kept at most; past it the cache starts again empty.
pub const CACHE_ENTRIES: usize = 10_000;
/// How soon after fetching a URL set a token with an unknown key id may fetch it again, by
/// default.
pub const REFETCH_AFTER_MISS: Duration = Duration::from_secs(30);
/// How often a URL set is fetched again regardless (key rotation).
pub const REFETCH_EVERY: Duration = Duration::from_secs(300);
/// How far a token's expiry and not-before may be off the server's clock.
pub const LEEWAY_SECONDS: u64 = 30;

/// Where the keys come from and what a token must say.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// A JWKS file, or an `http://` / `https://` URL serving one.
    pub jwks: String,
    /// The `iss` a token must have; `None`: any.
    pub issuer: Option<String>,
    /// A value the token's `aud` must have; `None`: a token with an audience is refused, as
    /// it was meant for someone.
    pub audience: Option<String>,
    /// The claim holding the scopes.
    pub scope_claim: String,
    /// The claim limiting the models a token may run inference on; absent from a token:
    /// every model.
    pub models_claim: String,
    /// For a URL: how soon after a fetch a token naming an unknown key id may make the set
    /// be fetched again.
    pub refetch_after_miss: Duration,
}

impl JwtSettings {
    /// Tokens verified against `jwks`, scopes in `scope`, models in `models`.
    pub fn new(jwks: impl Into<String>) -> JwtSettings {
        JwtSettings {
            jwks: jwks.into(),
            issuer: None,
            audience: None,
            scope_claim: "scope".into(),
            models_claim: "models".into(),
            refetch_after_miss: REFETCH_AFTER_MISS,
        }
    }

    fn url(&self) -> Option<&str> {
        (self.jwks.starts_with("http://") || self.jwks.starts_with("https://"))
            .then_some(self.jwks.as_str())
    }
}

/// Why a JWKS cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file or URL could not be read.
    #[error("JWKS {source_name}: {message}")]
    Read {
        /// The file or URL.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// It is not a key set, or holds no usable key.
    #[error("JWKS {source_name}: {message}")]
    Invalid {
        /// The file or URL.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// What a verified token lets its bearer do.
#[derive(Clone, Debug)]
pub struct Verified {
    /// `sub`, for logs, metrics and rate limits.
    pub name: Arc<str>,
    /// Its scopes (names the server does not know are ignored: tokens carry other scopes).
    pub scopes: ScopeSet,
    /// The models it may use; `None`: every model.
    pub models: Option<Arc<[String]>>,
    /// `exp`, in seconds since the epoch.
    expires: u64,
}

/// One usable key of the set.
struct Key {
    decoding: DecodingKey,
    algorithm: Algorithm,
}

/// The keys of one set, by key id (a key without one is found under "").
#[derive(Default)]
struct Keys {
    by_id: HashMap<String, Key>,
}

/// The JWT verifier: the key set in force, and the tokens verified with it.
pub struct Jwt {
    settings: JwtSettings,
    keys: RwLock<Arc<Keys>>,
    cache: RwLock<HashMap<Box<str>, Verified>>,
    /// For a file: its modification time and length when last read.
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// For a URL: asks the refresh task to fetch now (a token named an unknown key).
    fetch_now: tokio::sync::Notify,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Jwt {
    /// A verifier for `settings`. A file is read now and must be valid; a URL is fetched by
    /// [`Jwt::refresh`], and until then every token is refused.
    pub fn new(settings: JwtSettings) -> Result<Jwt, JwksError> {
        let jwt = Jwt {
            settings,
            keys: RwLock::default(),
            cache: RwLock::default(),
            stamp: Mutex::new(None),
            fetch_now: tokio::sync::Notify::new(),
        };
        if jwt.settings.url().is_none() {
            let path = PathBuf::from(&jwt.settings.jwks);
            *jwt.stamp.lock().unwrap_or_else(|e| e.into_inner()) = crate::file_stamp(&path);
            jwt.install(read_file(&path, &jwt.settings.jwks)?);
        }
        Ok(jwt)
    }

    /// Where the keys come from, for logs.
    pub fn source(&self) -> &str {
        &self.settings.jwks
    }

    /// Checks `token` and says what it allows; a token seen before and not yet expired is
    /// answered from the cache.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        let now = unix_now();
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
        {
            if now <= hit.expires + LEEWAY_SECONDS {
                return Ok(hit.clone());
            }
            return Err("the token has expired".into());
        }
        let verified = self.verify_signed(token)?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(Box::from(token), verified.clone());
        Ok(verified)
    }

    fn verify_signed(&self, token: &str) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| format!("the token does not decode: {e}"))?;
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()));
        let kid = header.kid.as_deref().unwrap_or("");
        let key = match keys.by_id.get(kid) {
            Some(key) => key,
            // A token without a key id, and a set of one key: that key.
            None if header.kid.is_none() && keys.by_id.len() == 1 => {
                keys.by_id.values().next().expect("one key")
            }
            None => {
                self.fetch_now.notify_one();
                return Err(match keys.by_id.is_empty() {
                    true => "no signing keys are loaded yet".into(),
                    false => format!("no key with id '{}' in the key set", trimmed(kid)),
                });
            }
        };
        if header.alg != key.algorithm {
            return Err(format!(
                "the token is signed with {:?}, its key is for {:?}",
                header.alg, key.algorithm
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &self.settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .map_err(|e| rejection(&e))?;
        let claims = data.claims;
        if self.settings.audience.is_none() && claims.contains_key("aud") {
            return Err("the token has an audience, and the server is configured with none (--jwt-audience)".into());
        }
        let mut scopes = ScopeSet::default();
        for name in words(claims.get(&self.settings.scope_claim)) {
            if let Ok(scope) = name.parse::<Scope>() {
                scopes.insert(scope);
            }
        }
        let models = claims
            .get(&self.settings.models_claim)
            .map(|v| Arc::from(words(Some(v))));
        let name = claims
            .get("sub")
            .and_then(Value::as_str)
            .map_or_else(|| "jwt".to_owned(), |s| trimmed(s).to_owned());
        Ok(Verified {
            name: Arc::from(name),
            scopes,
            models,
            expires: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// Puts `keys` in force and forgets the tokens verified with the keys before.
    fn install(&self, keys: Keys) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Keeps the key set current until the task is dropped: a file is reread when it
    /// changes (checked every `interval`); a URL is fetched now, every [`REFETCH_EVERY`], and
    /// when a token names a key id the set lacks (at most once per
    /// [`JwtSettings::refetch_after_miss`]).
    /// A set that no longer reads is logged, and the keys before stay in force.
    pub async fn refresh(self: Arc<Self>, interval: Duration) {
        match self.settings.url().map(str::to_owned) {
            Some(url) => self.refresh_url(&url).await,
            None => crate::every(interval, self, Jwt::reread_file).await,
        }
    }

    fn reread_file(&self) {
        let path = PathBuf::from(&self.settings.jwks);
        let stamp = crate::file_stamp(&path);
        let mut seen = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if stamp == *seen {
            return;
        }
        *seen = stamp;
        match read_file(&path, &self.settings.jwks) {
            Ok(keys) => {
                let count = keys.by_id.len();
                self.install(keys);
                tracing::info!(jwks = %self.settings.jwks, keys = count, "JWKS reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "JWKS changed but cannot be used; the keys before stay in force");
            }
        }
    }

    async fn refresh_url(&self, url: &str) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot make an HTTP client to fetch the JWKS");
                return;
            }
        };
        loop {
            match fetch(&client, url).await {
                Ok(keys) => {
                    tracing::debug!(jwks = url, keys = keys.by_id.len(), "JWKS fetched");
                    self.install(keys);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot fetch the JWKS; the keys before stay in force")
                }
            }
            // Wait for the next regular fetch, or a miss, but never fetch again sooner than
            // refetch_after_miss.
            let fetched = tokio::time::Instant::now();
            tokio::select! {
                () = tokio::time::sleep(REFETCH_EVERY) => {}
                () = self.fetch_now.notified() => {
                    let earliest = fetched + self.settings.refetch_after_miss;
                    tokio::time::sleep_until(earliest).await;
                }
            }
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Keys, JwksError> {
    let read = |message: String| JwksError::Read {
        source_name: url.to_owned(),
        message,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| read(e.to_string()))?;
    if !response.status().is_success() {
        return Err(read(format!("answered {}", response.status())));
    }
    let body = response.bytes().await.map_err(|e| read(e.to_string()))?;
    parse(&body, url)
}

fn read_file(path: &std::path::Path, name: &str) -> Result<Keys, JwksError> {
    let bytes = std::fs::read(path).map_err(|e| JwksError::Read {
        source_name: name.to_owned(),
        message: e.to_string(),
    })?;
    parse(&bytes, name)
}

/// The usable keys of a JWKS document: RSA (RS256), P-256 (ES256) and Ed25519 (EdDSA), for
/// signing. Other keys are skipped; a set with none is an error.
fn parse(bytes: &[u8], name: &str) -> Result<Keys, JwksError> {
    let invalid = |message: String| JwksError::Invalid {
        source_name: name.to_owned(),
        message,
    };
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let mut keys = Keys::default();
    for jwk in &set.keys {
        let Some(algorithm) = algorithm(jwk) else {
            continue;
        };
        let decoding = DecodingKey::from_jwk(jwk).map_err(|e| {
            invalid(format!(
                "key '{}': {e}",
                jwk.common.key_id.as_deref().unwrap_or("")
            ))
        })?;
        let id = jwk.common.key_id.clone().unwrap_or_default();
        keys.by_id.insert(
            id,
            Key {
                decoding,
                algorithm,
            },
        );
    }
    if keys.by_id.is_empty() {
        return Err(invalid(
            "no RSA, P-256 or Ed25519 signing key (RS256, ES256, EdDSA)".into(),
        ));
    }
    Ok(keys)
}

/// The one algorithm a key verifies: what its type and curve allow, or nothing for keys
/// of other types, curves, or uses.
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    // A key that names another algorithm (RS512, say) is not one of ours.
    match jwk.common.key_algorithm {
        None => Some(algorithm),
        Some(named) => (format!("{named:?}") == format!("{algorithm:?}")).then_some(algorithm),
    }
}

/// Why `jsonwebtoken` refused a token, in words for the 401.
fn rejection(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no '{claim}' claim"),
        _ => format!("the token is not valid: {error}"),
    }
}

/// A claim's words: a space-separated string, or an array of strings.
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// At most 100 characters of a caller-chosen string, for messages and labels.
fn trimmed(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
