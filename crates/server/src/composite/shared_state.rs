//! What bandits share across replicas (`--state redis://host:port/db`): each bandit's learnt
//! posterior as sums in one Redis hash, and the feedback ids already rewarded as keys that
//! expire with the ids.
//!
//! Every quantity a bandit learns is a sum (Beta parameters, Exp3 log-weights, counts), so
//! replicas never overwrite each other: each adds what it learnt since its last visit
//! (`HINCRBYFLOAT`) and reads the totals back, in one `MULTI`/`EXEC`; a replica that cannot
//! reach Redis keeps learning alone and adds its share when Redis is back. A feedback id is
//! spent with `SET key 1 NX EX <its lifetime>`, so an id rewarded on one replica is refused on
//! every other.
//!
//! The synchronous client of the `redis` crate, on the bandit's own state thread and on the
//! blocking pool (the feedback handler): a call is one round trip on loopback or in a zone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long one Redis call may take before the bandit goes on without it.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Why the shared state could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("--state {url}: {reason}")]
pub struct SharedStateError {
    /// The URL, without its password.
    url: String,
    /// What went wrong.
    reason: String,
}

/// The store's URL, which may hold a password: shown without it (in the logged
/// configuration too).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedStateUrl(String);

impl SharedStateUrl {
    /// The URL as given.
    pub fn new(url: impl Into<String>) -> SharedStateUrl {
        SharedStateUrl(url.into())
    }

    /// The URL without its password.
    pub fn shown(&self) -> String {
        match self.0.rsplit_once('@') {
            Some((scheme_and_secret, host)) => {
                let scheme = scheme_and_secret.split("://").next().unwrap_or("redis");
                format!("{scheme}://***@{host}")
            }
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Debug for SharedStateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// A connection to the store, reopened after a failure.
pub struct SharedState {
    client: redis::Client,
    /// The URL as logs show it (no password).
    shown: String,
    connection: Mutex<Option<redis::Connection>>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// Opens the store at `url` (`redis://[:password@]host[:port][/db]`) and checks that it
    /// answers, so that a wrong URL stops the server at start rather than at the first
    /// reward.
    pub fn open(url: &SharedStateUrl) -> Result<SharedState, SharedStateError> {
        let shown = url.shown();
        let url = url.0.as_str();
        let failed = |reason: String| SharedStateError {
            url: shown.clone(),
            reason,
        };
        if !url.starts_with("redis://") {
            return Err(failed("expected a redis:// URL".into()));
        }
        let client = redis::Client::open(url).map_err(|e| failed(e.to_string()))?;
        let state = SharedState {
            client,
            shown: shown.clone(),
            connection: Mutex::new(None),
        };
        state
            .call(|c| redis::cmd("PING").query::<String>(c))
            .map_err(|e| failed(e.to_string()))?;
        Ok(state)
    }

    /// The URL, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Adds each `(field, amount)` to the hash `key` and returns all of the hash's fields
    /// after, atomically.
    pub(crate) fn add_and_read(
        &self,
        key: &str,
        amounts: &[(String, f64)],
    ) -> redis::RedisResult<HashMap<String, f64>> {
        self.call(|c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (field, amount) in amounts {
                pipe.cmd("HINCRBYFLOAT")
                    .arg(key)
                    .arg(field)
                    .arg(*amount)
                    .ignore();
            }
            pipe.cmd("HGETALL").arg(key);
            let (fields,): (HashMap<String, String>,) = pipe.query(c)?;
            Ok(fields
                .into_iter()
                .filter_map(|(field, value)| Some((field, value.parse::<f64>().ok()?)))
                .collect())
        })
    }

    /// Marks `key` spent for `ttl`: true the first time, false when it was already.
    pub(crate) fn spend(&self, key: &str, ttl: Duration) -> redis::RedisResult<bool> {
        self.call(|c| {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .query(c)?;
            Ok(set.is_some())
        })
    }

    /// Runs `query` on the connection, opening it first when there is none; a failed
    /// connection is dropped, so the next call opens a new one.
    fn call<T>(
        &self,
        query: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let connection = self.client.get_connection_with_timeout(TIMEOUT)?;
            connection.set_read_timeout(Some(TIMEOUT))?;
            connection.set_write_timeout(Some(TIMEOUT))?;
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("opened above");
        let result = query(connection);
        if result
            .as_ref()
            .is_err_and(|e| e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
        {
            *slot = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        let url = SharedStateUrl::new("redis://:s3cret@cache.internal:6379/2");
        assert_eq!(format!("{url:?}"), "redis://***@cache.internal:6379/2");
        assert_eq!(
            SharedStateUrl::new("redis://127.0.0.1").shown(),
            "redis://127.0.0.1"
        );
    }

    #[test]
    fn a_store_that_does_not_answer_stops_the_start() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = SharedState::open(&SharedStateUrl::new(format!("redis://127.0.0.1:{port}")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("--state redis://127.0.0.1:{port}: ")),
            "{error}"
        );
        let error = SharedState::open(&SharedStateUrl::new("http://x"))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "--state http://x: expected a redis:// URL");
    }
}
