//! Where a remote repository lives and what it holds: its URL, the `object_store` client for
//! it (credentials from the cloud's standard environment and instance sources, never from
//! flags), and the listing of its files, by the store's own listing (`s3://`, `gs://`,
//! `az://`) or by the `index.json` at the root of an HTTP(S) tree, which cannot be listed.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};

use crate::error::RemoteError;

/// The index an HTTP(S) repository publishes at its root.
pub(crate) const HTTP_INDEX: &str = "index.json";

/// How long one request to the store may take: model files can be gigabytes.
const REQUEST_TIMEOUT: &str = "10 minutes";

/// One file of the repository, named by its path under the repository's root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemoteFile {
    /// `<model>/<version>/<file>` or `<model>/<file>`, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// What tells one content from another: the store's ETag, or `sha256:<hex>` from an
    /// HTTP index (then checked on download).
    pub tag: String,
}

impl RemoteFile {
    /// The SHA-256 its content must have, when the tag is a hash.
    pub(crate) fn sha256(&self) -> Option<&str> {
        self.tag.strip_prefix("sha256:")
    }
}

/// How a repository is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listing {
    /// The store lists its objects.
    Store,
    /// An HTTP(S) tree: `index.json` at the root names every file.
    HttpIndex,
}

/// An opened remote repository: the store and the prefix the repository is under.
#[derive(Debug, Clone)]
pub(crate) struct RemoteStore {
    /// The URL as given, for messages.
    url: String,
    store: Arc<dyn ObjectStore>,
    /// The repository's root inside the store (empty: the whole bucket).
    prefix: StorePath,
    listing: Listing,
}

/// The `index.json` of an HTTP(S) repository.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpIndex {
    files: Vec<HttpIndexFile>,
}

/// One file of an HTTP(S) repository's index.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpIndexFile {
    path: String,
    size: u64,
    sha256: String,
}

impl RemoteStore {
    /// Opens the repository at `url`: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (also `abfs(s)://`), or `http(s)://host/path` with an
    /// `index.json`. Nothing is read yet.
    pub(crate) fn open(url: &str, retry_timeout: Duration) -> Result<RemoteStore, RemoteError> {
        let bad = |reason: String| RemoteError::Url {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL (process lists show it): use the \
                 store's environment variables or instance credentials"
                    .into(),
            ));
        }
        let timeout = object_store::ClientConfigKey::Timeout;
        let retry = object_store::RetryConfig {
            retry_timeout,
            ..object_store::RetryConfig::default()
        };
        let (store, listing): (Arc<dyn ObjectStore>, Listing) = match parsed.scheme() {
            "s3" | "s3a" => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut builder = AmazonS3Builder::from_env().with_url(url).with_retry(retry);
                if std::env::var_os("AWS_TIMEOUT").is_none() {
                    builder =
                        builder.with_config(AmazonS3ConfigKey::Client(timeout), REQUEST_TIMEOUT);
                }
                let store = builder.build().map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), Listing::Store)
            }
            "gs" => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let store = GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_config(GoogleConfigKey::Client(timeout), REQUEST_TIMEOUT)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), Listing::Store)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let store = MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .with_config(AzureConfigKey::Client(timeout), REQUEST_TIMEOUT)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), Listing::Store)
            }
            "http" | "https" => {
                // The store appends each path's segments to the URL's: a trailing `/`
                // would leave an empty one (`models//index.json`).
                let store = object_store::http::HttpBuilder::new()
                    .with_url(url.trim_end_matches('/'))
                    .with_retry(retry)
                    .with_config(timeout, REQUEST_TIMEOUT)
                    .with_config(object_store::ClientConfigKey::AllowHttp, "true")
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(store), Listing::HttpIndex)
            }
            other => {
                return Err(bad(format!(
                    "unknown scheme '{other}': use s3://, gs://, az://, http(s):// or a local \
                     directory"
                )));
            }
        };
        // The HTTP store's paths are relative to the URL itself; the others' to the bucket.
        let prefix = match listing {
            Listing::HttpIndex => StorePath::default(),
            Listing::Store => StorePath::from(parsed.path().trim_matches('/')),
        };
        Ok(RemoteStore {
            url: url.to_owned(),
            store,
            prefix,
            listing,
        })
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Every file under the repository's root, by path, sorted.
    pub(crate) async fn list(&self) -> Result<Vec<RemoteFile>, RemoteError> {
        let mut files = match self.listing {
            Listing::Store => self.list_store().await?,
            Listing::HttpIndex => self.list_index().await?,
        };
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn list_store(&self) -> Result<Vec<RemoteFile>, RemoteError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|source| self.store_error(self.prefix.as_ref(), source))?;
        let root = format!("{}/", self.prefix.as_ref());
        Ok(objects
            .into_iter()
            .filter_map(|object| {
                let path = object.location.as_ref();
                let relative = if self.prefix.as_ref().is_empty() {
                    path
                } else {
                    path.strip_prefix(&root)?
                };
                Some(RemoteFile {
                    path: relative.to_owned(),
                    size: object.size,
                    // Stores without ETags (rare) still tell contents apart by time and size.
                    tag: object.e_tag.unwrap_or_else(|| {
                        format!(
                            "{}-{}",
                            object.last_modified.timestamp_millis(),
                            object.size
                        )
                    }),
                })
            })
            .collect())
    }

    async fn list_index(&self) -> Result<Vec<RemoteFile>, RemoteError> {
        let bytes = self.get(HTTP_INDEX).await?.bytes().await;
        let bytes = bytes.map_err(|source| self.store_error(HTTP_INDEX, source))?;
        let index: HttpIndex = serde_json::from_slice(&bytes).map_err(|e| RemoteError::Index {
            url: self.url.clone(),
            reason: format!(
                "{e} (expected {{\"files\": [{{\"path\": \"<model>/<version>/<file>\", \
                     \"size\": <bytes>, \"sha256\": \"<hex>\"}}]}})"
            ),
        })?;
        index
            .files
            .into_iter()
            .map(|file| {
                let bad_path = file.path.is_empty()
                    || file.path.starts_with('/')
                    || file
                        .path
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == "..");
                let bad_hash =
                    file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit());
                if bad_path || bad_hash {
                    return Err(RemoteError::Index {
                        url: self.url.clone(),
                        reason: format!(
                            "file '{}': {}",
                            file.path,
                            if bad_path {
                                "paths are relative, '/'-separated, without '.' or '..'"
                            } else {
                                "sha256 must be 64 hex digits"
                            }
                        ),
                    });
                }
                Ok(RemoteFile {
                    path: file.path,
                    size: file.size,
                    tag: format!("sha256:{}", file.sha256.to_ascii_lowercase()),
                })
            })
            .collect()
    }

    /// Starts reading the file at `path` (relative to the repository's root).
    pub(crate) async fn get(&self, path: &str) -> Result<object_store::GetResult, RemoteError> {
        let location = if self.prefix.as_ref().is_empty() {
            StorePath::from(path)
        } else {
            StorePath::from(format!("{}/{path}", self.prefix.as_ref()))
        };
        self.store
            .get_opts(&location, object_store::GetOptions::default())
            .await
            .map_err(|source| self.store_error(path, source))
    }

    /// A store error about `path`.
    pub(crate) fn store_error(&self, path: &str, source: object_store::Error) -> RemoteError {
        RemoteError::Store {
            url: self.url.clone(),
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let error = RemoteStore::open("s3://key:secret@bucket/models", Duration::ZERO).unwrap_err();
        assert!(error.to_string().contains("credentials"), "{error}");
        let error = RemoteStore::open("ftp://host/models", Duration::ZERO).unwrap_err();
        assert!(
            error.to_string().contains("unknown scheme 'ftp'"),
            "{error}"
        );
        let store = RemoteStore::open("s3://bucket/some/prefix/", Duration::ZERO).unwrap();
        assert_eq!(store.prefix.as_ref(), "some/prefix");
        let store = RemoteStore::open("https://example.com/models/", Duration::ZERO).unwrap();
        assert_eq!(store.listing, Listing::HttpIndex);
        assert!(store.prefix.as_ref().is_empty());
    }

    #[test]
    fn hash_tags() {
        let file = RemoteFile {
            path: "m/1/model.onnx".into(),
            size: 1,
            tag: format!("sha256:{}", "ab".repeat(32)),
        };
        assert_eq!(file.sha256(), Some("ab".repeat(32).as_str()));
    }
}
