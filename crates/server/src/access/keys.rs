//! The API key file: each key stored as the SHA-256 of the key, never the key itself, with a
//! name, its scopes and, optionally, the models it may use.
//!
//! ```toml
//! [[key]]
//! name = "batch-jobs"
//! sha256 = "3f1c…"                # 64 hex digits
//! scopes = ["infer", "read"]
//! models = ["iris_logreg"]         # optional: inference on these models only
//! rate = 50.0                      # optional: requests per second (default: --rate-limit)
//! burst = 100                      # optional: requests at once after an idle spell
//!
//! [[key]]
//! name = "fraud-service"
//! subject = "CN=fraud-service"     # a client certificate (mutual TLS) instead of a key:
//! scopes = ["infer"]               # its whole subject, or its common name
//! ```
//!
//! A key is 32 random bytes, so one SHA-256 is enough to keep it (as code hosts keep their
//! tokens): unlike a password there is nothing to guess, and a slow hash would only cost every
//! request time. `ferroserve keys add` writes an entry and prints the key once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rand::RngExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::rate::Rate;
use super::{Scope, ScopeSet};
use crate::tls::ClientCertificate;

/// What the text of a key starts with, so a leaked one is recognisable (secret scanners).
pub const KEY_PREFIX: &str = "fsk_";

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("API key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid key list.
    #[error("API key file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
}

/// One key of the file.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// Its name: what logs, metrics and audit lines say instead of the key.
    pub name: Arc<str>,
    /// How a request proves it is this entry: a key, or a client certificate.
    pub credential: Credential,
    /// What it may do.
    pub scopes: ScopeSet,
    /// The models it may run inference on; `None`: every model. (Shared, like the name, with
    /// each request's caller, so that letting a request in allocates nothing.)
    pub models: Option<Arc<[String]>>,
    /// Its own rate limit; `None`: the server's default.
    pub rate: Option<Rate>,
}

/// How a request proves it is a key file entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An API key, whose SHA-256 this is.
    Key {
        /// SHA-256 of the key's text.
        sha256: [u8; 32],
    },
    /// A client certificate (mutual TLS) with this subject: the whole subject as RFC 4514
    /// writes it (`CN=app, O=Acme`), or its common name alone.
    Certificate {
        /// The subject, or its common name.
        subject: String,
    },
}

impl KeyEntry {
    /// An entry for the key whose SHA-256 is `sha256`, allowed every model at the default
    /// rate.
    pub fn new(name: &str, sha256: [u8; 32], scopes: &[Scope]) -> KeyEntry {
        KeyEntry::with_credential(name, Credential::Key { sha256 }, scopes)
    }

    /// An entry for the client certificates whose subject (or common name) is `subject`.
    pub fn for_certificate(name: &str, subject: &str, scopes: &[Scope]) -> KeyEntry {
        let subject = subject.to_owned();
        KeyEntry::with_credential(name, Credential::Certificate { subject }, scopes)
    }

    fn with_credential(name: &str, credential: Credential, scopes: &[Scope]) -> KeyEntry {
        let mut set = ScopeSet::default();
        scopes.iter().for_each(|s| set.insert(*s));
        KeyEntry {
            name: Arc::from(name),
            credential,
            scopes: set,
            models: None,
            rate: None,
        }
    }

    /// Limits the key to `models`.
    pub fn with_models(mut self, models: &[String]) -> KeyEntry {
        self.models = Some(Arc::from(models));
        self
    }

    /// Gives the key its own rate limit.
    pub fn with_rate(mut self, rate: Rate) -> KeyEntry {
        self.rate = Some(rate);
        self
    }
}

/// The keys of one file.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<KeyEntry>,
    /// Each key's index, by its hash.
    by_hash: HashMap<[u8; 32], usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    key: Vec<EntryToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryToml {
    name: String,
    /// Exactly one of `sha256` (an API key) and `subject` (a client certificate).
    sha256: Option<String>,
    subject: Option<String>,
    scopes: Vec<String>,
    models: Option<Vec<String>>,
    rate: Option<f64>,
    burst: Option<f64>,
}

impl KeySet {
    /// Reads and checks the key file at `path`.
    pub fn read(path: &Path) -> Result<KeySet, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        KeySet::parse(&text).map_err(|message| KeyFileError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses a key file's text; the error names the entry and field at fault.
    pub fn parse(text: &str) -> Result<KeySet, String> {
        let file: FileToml = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(file.key.len());
        for (i, entry) in file.key.into_iter().enumerate() {
            let at = format!("key {} ('{}')", i + 1, entry.name);
            if entry.name.is_empty() {
                return Err(format!("key {}: name is empty", i + 1));
            }
            if keys.iter().any(|k| *k.name == *entry.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            let credential = match (entry.sha256, entry.subject) {
                (Some(sha256), None) => Credential::Key {
                    sha256: parse_hex32(&sha256)
                        .ok_or_else(|| format!("{at}: sha256 must be 64 hexadecimal digits"))?,
                },
                (None, Some(subject)) if !subject.trim().is_empty() => {
                    Credential::Certificate { subject }
                }
                (None, Some(_)) => return Err(format!("{at}: subject is empty")),
                _ => {
                    return Err(format!(
                        "{at}: needs exactly one of sha256 (an API key) and subject (a client certificate)"
                    ));
                }
            };
            if let Some(same) = keys.iter().find(|k| k.credential == credential) {
                return Err(format!("{at}: the same credential as '{}'", same.name));
            }
            let mut scopes = ScopeSet::default();
            for scope in &entry.scopes {
                scopes.insert(scope.parse().map_err(|e| format!("{at}: {e}"))?);
            }
            let rate = match (entry.rate, entry.burst) {
                (Some(rate), burst) => {
                    Some(Rate::new(rate, burst).map_err(|e| format!("{at}: {e}"))?)
                }
                (None, Some(_)) => return Err(format!("{at}: burst needs a rate")),
                (None, None) => None,
            };
            keys.push(KeyEntry {
                name: Arc::from(entry.name),
                credential,
                scopes,
                models: entry.models.map(Arc::from),
                rate,
            });
        }
        let by_hash = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| match k.credential {
                Credential::Key { sha256 } => Some((sha256, i)),
                Credential::Certificate { .. } => None,
            })
            .collect();
        Ok(KeySet { keys, by_hash })
    }

    /// The entry whose key is `presented`: looked up by the key's SHA-256, the match then
    /// confirmed in constant time. What the lookup's timing can depend on is the hash of what
    /// was presented, never the key text, and learning a stored hash does not give its key:
    /// the timing says nothing usable, however many keys there are.
    pub fn find(&self, presented: &str) -> Option<&KeyEntry> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let entry = &self.keys[*self.by_hash.get(&hash)?];
        let Credential::Key { sha256 } = &entry.credential else {
            return None;
        };
        bool::from(sha256.ct_eq(&hash)).then_some(entry)
    }

    /// The entry for a client certificate: the first whose subject is the certificate's
    /// whole subject or its common name.
    pub fn find_certificate(&self, certificate: &ClientCertificate) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| match &k.credential {
            Credential::Certificate { subject } => certificate.matches(subject),
            Credential::Key { .. } => false,
        })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.keys
    }
}

/// A new random key and the SHA-256 to store for it.
pub fn generate_key() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = Sha256::digest(key.as_bytes()).into();
    (key, hash)
}

/// The TOML text of `entry`, to append to a key file.
pub fn entry_toml(entry: &KeyEntry) -> String {
    let quoted = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| toml::Value::String(s).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let scopes = Scope::ALL.into_iter().filter(|s| entry.scopes.contains(*s));
    let mut text = String::from("\n[[key]]\n");
    let _ = writeln!(
        text,
        "name = {}",
        toml::Value::String(entry.name.to_string())
    );
    match &entry.credential {
        Credential::Key { sha256 } => {
            let _ = writeln!(text, "sha256 = \"{}\"", hex(sha256));
        }
        Credential::Certificate { subject } => {
            let _ = writeln!(text, "subject = {}", toml::Value::String(subject.clone()));
        }
    }
    let _ = writeln!(
        text,
        "scopes = [{}]",
        quoted(&mut scopes.map(|s| s.to_string()))
    );
    if let Some(models) = &entry.models {
        let _ = writeln!(text, "models = [{}]", quoted(&mut models.iter().cloned()));
    }
    if let Some(rate) = entry.rate {
        let _ = writeln!(
            text,
            "rate = {:?}\nburst = {:?}",
            rate.per_second, rate.burst
        );
    }
    text
}

/// `bytes` as lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// 64 hexadecimal digits as 32 bytes.
pub(crate) fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_found_by_its_entry_and_no_other_key_is() {
        let (key, hash) = generate_key();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 43);
        let entry = KeyEntry::new("ci", hash, &[Scope::Infer, Scope::Read])
            .with_models(&["m".to_owned()])
            .with_rate(Rate::new(5.0, Some(7.0)).unwrap());
        let text = entry_toml(&entry);
        let set = KeySet::parse(&text).unwrap();
        let entry = set.find(&key).unwrap();
        assert_eq!(&*entry.name, "ci");
        assert!(entry.scopes.contains(Scope::Infer) && entry.scopes.contains(Scope::Read));
        assert!(!entry.scopes.contains(Scope::Admin));
        assert_eq!(entry.models.as_deref(), Some(&["m".to_owned()][..]));
        assert_eq!(entry.rate, Some(Rate::new(5.0, Some(7.0)).unwrap()));
        assert!(set.find(&format!("{key}x")).is_none());
        assert!(set.find("").is_none());
        // The file holds the hash, never the key.
        assert!(!text.contains(&key[KEY_PREFIX.len()..]));
    }

    #[test]
    fn a_certificate_entry_is_found_by_subject_or_common_name_and_never_by_key() {
        let entry = KeyEntry::for_certificate("svc", "svc-a", &[Scope::Infer]);
        let set = KeySet::parse(&entry_toml(&entry)).unwrap();
        let certificate = |subject: &str, cn: Option<&str>| ClientCertificate {
            subject: Arc::from(subject),
            common_name: cn.map(Arc::from),
        };
        let found = set.find_certificate(&certificate("CN=svc-a, O=Acme", Some("svc-a")));
        assert_eq!(found.map(|e| &*e.name), Some("svc"));
        assert!(
            set.find_certificate(&certificate("CN=svc-b", Some("svc-b")))
                .is_none()
        );
        assert!(set.find("svc-a").is_none());
        let whole = KeySet::parse(&entry_toml(&KeyEntry::for_certificate(
            "svc",
            "CN=svc-a, O=Acme",
            &[],
        )))
        .unwrap();
        assert!(
            whole
                .find_certificate(&certificate("CN=svc-a, O=Acme", Some("svc-a")))
                .is_some()
        );
        assert!(
            whole
                .find_certificate(&certificate("CN=svc-a, O=Other", Some("svc-a")))
                .is_none()
        );
    }

    #[test]
    fn a_bad_file_names_the_entry_and_field() {
        let hash = "ab".repeat(32);
        let cases = [
            (
                format!("[[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = [\"fly\"]\n"),
                "key 1 ('a'): unknown scope 'fly'",
            ),
            (
                "[[key]]\nname = \"a\"\nsha256 = \"12\"\nscopes = []\n".to_owned(),
                "key 1 ('a'): sha256 must be 64 hexadecimal digits",
            ),
            (
                format!(
                    "[[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = []\n\
                     [[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = []\n"
                ),
                "key 2 ('a'): the name is used twice",
            ),
            (
                format!(
                    "[[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = []\n\
                     [[key]]\nname = \"b\"\nsha256 = \"{hash}\"\nscopes = []\n"
                ),
                "key 2 ('b'): the same credential as 'a'",
            ),
            (
                "[[key]]\nname = \"a\"\nscopes = []\n".to_owned(),
                "key 1 ('a'): needs exactly one of sha256 (an API key) and subject",
            ),
            (
                format!(
                    "[[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nsubject = \"CN=a\"\nscopes = []\n"
                ),
                "key 1 ('a'): needs exactly one of sha256",
            ),
            (
                format!("[[key]]\nname = \"a\"\nsha256 = \"{hash}\"\nscope = []\n"),
                "unknown field `scope`",
            ),
        ];
        for (text, needle) in cases {
            let error = KeySet::parse(&text).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }
}
