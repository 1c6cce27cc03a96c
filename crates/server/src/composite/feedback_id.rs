//! Feedback ids: what a bandit's answer carries (its `feedback_id` parameter) and a reward must
//! name. The server mints them: each says which model chose which variant, with what
//! probability, when, and a random nonce, signed with HMAC-SHA256 under the server's feedback
//! key. A caller cannot make one up, move one to another variant or model, or make one
//! longer; replicas sharing the key (`--feedback-key-file`) verify each other's, with nothing
//! kept per request until its reward comes.
//!
//! Text form: `fb1.<payload>.<tag>`, both base64url; the payload is the issue time (seconds,
//! u64), the nonce (12 bytes), the probability (f64), then the model and variant names, each
//! after its length (u16), all big-endian. The tag is the first 16 bytes of the HMAC (128
//! bits, as RFC 2104 allows truncating to).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;

use crate::access::keys::{hex, parse_hex32};

/// How long after its answer a feedback id is taken.
pub(crate) const FEEDBACK_TTL_SECS: u64 = 24 * 3600;

const PREFIX: &str = "fb1.";
const TAG_BYTES: usize = 16;
/// Longest feedback id looked at, in bytes (two names of at most 255 bytes, and the rest).
pub(crate) const MAX_FEEDBACK_ID: usize = 900;

/// The key feedback ids are signed with.
#[derive(Clone)]
pub struct FeedbackKey {
    key: [u8; 32],
}

impl std::fmt::Debug for FeedbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedbackKey(..)")
    }
}

/// What a feedback id says: a bandit's choice for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The bandit model.
    pub model: String,
    /// The variant it chose, as its target is written.
    pub variant: String,
    /// The probability the variant had (Exp3's importance weight; 0 for Thompson).
    pub probability: f64,
    /// When it was chosen, in seconds since the epoch.
    pub issued: u64,
    /// Makes each id unique, so a reward is taken once.
    pub nonce: [u8; 12],
}

/// Why a feedback id is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadFeedbackId {
    /// Not an id this server (or a replica with its key) made, or altered.
    #[error("was not issued by this server: send the answer's `feedback_id` parameter unchanged")]
    Forged,
    /// Older than [`FEEDBACK_TTL_SECS`].
    #[error("has expired (feedback is taken for {} hours after the answer)", FEEDBACK_TTL_SECS / 3600)]
    Expired,
}

impl FeedbackKey {
    /// A random key, for a server alone (ids die with the process).
    pub fn random() -> FeedbackKey {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        FeedbackKey { key }
    }

    /// The key in the file at `path`: 64 hexadecimal digits (`openssl rand -hex 32`).
    pub fn from_file(path: &Path) -> std::io::Result<FeedbackKey> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("feedback key {}: {e}", path.display()))
        })?;
        FeedbackKey::parse(text.trim()).ok_or_else(|| {
            std::io::Error::other(format!(
                "feedback key {}: expected 64 hexadecimal digits",
                path.display()
            ))
        })
    }

    /// [`FeedbackKey::from_file`]; when the file does not exist, a random key written there
    /// first, readable by its owner only.
    pub fn from_file_or_create(path: &Path) -> std::io::Result<FeedbackKey> {
        match std::fs::metadata(path) {
            Ok(_) => FeedbackKey::from_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = FeedbackKey::random();
                let create = || {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let text = format!("{}\n", hex(&key.key));
                    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
                };
                create().map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("creating feedback key {}: {e}", path.display()),
                    )
                })?;
                Ok(key)
            }
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("feedback key {}: {e}", path.display()),
            )),
        }
    }

    fn parse(hex: &str) -> Option<FeedbackKey> {
        parse_hex32(hex).map(|key| FeedbackKey { key })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// A new id for `model` having chosen `variant` with `probability`, now.
    pub fn mint(&self, model: &str, variant: &str, probability: f64) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let mut payload = Vec::with_capacity(32 + model.len() + variant.len());
        payload.extend_from_slice(&unix_now().to_be_bytes());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&probability.to_be_bytes());
        for name in [model, variant] {
            let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            payload.extend_from_slice(&(name.len() as u16).to_be_bytes());
            payload.extend_from_slice(name);
        }
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES])
        )
    }

    /// What `id` says, once its tag is checked (in constant time) and its age.
    pub fn open(&self, id: &str) -> Result<Choice, BadFeedbackId> {
        if id.len() > MAX_FEEDBACK_ID {
            return Err(BadFeedbackId::Forged);
        }
        let (payload, tag) = id
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .ok_or(BadFeedbackId::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| BadFeedbackId::Forged)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| BadFeedbackId::Forged)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == TAG_BYTES)
            .ok_or(BadFeedbackId::Forged)?;
        let choice = decode(&payload).ok_or(BadFeedbackId::Forged)?;
        if unix_now().saturating_sub(choice.issued) > FEEDBACK_TTL_SECS {
            return Err(BadFeedbackId::Expired);
        }
        Ok(choice)
    }
}

/// The fields of a payload whose tag verified.
fn decode(payload: &[u8]) -> Option<Choice> {
    let (issued, rest) = payload.split_first_chunk::<8>()?;
    let (nonce, rest) = rest.split_first_chunk::<12>()?;
    let (probability, rest) = rest.split_first_chunk::<8>()?;
    let (model, rest) = name(rest)?;
    let (variant, rest) = name(rest)?;
    rest.is_empty().then(|| Choice {
        model,
        variant,
        probability: f64::from_be_bytes(*probability),
        issued: u64::from_be_bytes(*issued),
        nonce: *nonce,
    })
}

fn name(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = u16::from_be_bytes(*len) as usize;
    let (text, rest) = (rest.get(..len)?, rest.get(len..)?);
    Some((String::from_utf8(text.to_vec()).ok()?, rest))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_opens_with_its_key_only_and_any_change_is_refused() {
        let key = FeedbackKey::random();
        let id = key.mint("chooser", "iris_logreg@2", 0.25);
        let choice = key.open(&id).unwrap();
        assert_eq!(
            (
                choice.model.as_str(),
                choice.variant.as_str(),
                choice.probability
            ),
            ("chooser", "iris_logreg@2", 0.25)
        );
        assert_ne!(
            key.mint("chooser", "iris_logreg@2", 0.25),
            id,
            "ids are unique"
        );
        assert_eq!(FeedbackKey::random().open(&id), Err(BadFeedbackId::Forged));
        // Every single-character change of the text is refused.
        for at in PREFIX.len()..id.len() {
            let mut forged = id.clone().into_bytes();
            forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            assert!(key.open(&forged).is_err(), "{forged}");
        }
        for junk in ["", "fb1.", "fb1..", "victim", &"x".repeat(2000)] {
            assert_eq!(key.open(junk), Err(BadFeedbackId::Forged));
        }
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/feedback.key");
        let first = FeedbackKey::from_file_or_create(&path).unwrap();
        let again = FeedbackKey::from_file_or_create(&path).unwrap();
        assert_eq!(first.key, again.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(FeedbackKey::from_file_or_create(&path).is_err());
    }
}
