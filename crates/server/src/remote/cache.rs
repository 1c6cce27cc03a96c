//! The local copy of a remote repository: `<cache>/models/` (the directory the repository
//! serves), `<cache>/index.json` (each copied file's size and tag, so a restart reuses what
//! is still current), `<cache>/staging/` (versions being assembled before they are renamed
//! into place) and `<cache>/lock` (one server per cache).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::listing::RemoteFile;
use crate::error::RemoteError;

/// What the cache holds, saved as `<cache>/index.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CacheIndex {
    /// The repository these files came from; another URL starts an empty cache.
    pub url: String,
    /// Every file in `models/`, by path under it.
    pub files: BTreeMap<String, CachedFile>,
    /// The markers with content read so far (manifests), by path in the store, so that each
    /// is read once rather than at every look.
    #[serde(default)]
    pub manifests: BTreeMap<String, CachedManifest>,
}

/// A manifest marker's content, as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedManifest {
    /// The marker's tag when read.
    pub tag: String,
    /// Its content.
    pub text: String,
}

/// A copied file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedFile {
    /// Its size.
    pub size: u64,
    /// The tag it had in the store when copied.
    pub tag: String,
}

/// The cache's folders, and the lock that keeps it to one server.
#[derive(Debug)]
pub(crate) struct CacheDir {
    /// `<cache>`.
    root: PathBuf,
    /// Held for the cache's life: another process taking the same cache fails at start.
    _lock: std::fs::File,
}

impl CacheDir {
    /// Opens (creating it) the cache at `root`, takes its lock and empties its staging folder.
    pub(crate) fn open(root: &Path) -> Result<CacheDir, RemoteError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RemoteError::Cache { path, source }
        };
        for dir in [root.join("models"), root.join("staging")] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let lock_path = root.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(io(&lock_path))?;
        if let Err(error) = lock.try_lock() {
            return Err(RemoteError::Cache {
                path: root.to_path_buf(),
                source: std::io::Error::other(format!(
                    "{error}: another server uses this cache; give each its own \
                     --model-cache-dir"
                )),
            });
        }
        let staging = root.join("staging");
        for entry in std::fs::read_dir(&staging).map_err(io(&staging))? {
            let path = entry.map_err(io(&staging))?.path();
            remove(&path)?;
        }
        Ok(CacheDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory the repository serves.
    pub(crate) fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// A fresh path in the staging folder.
    pub(crate) fn staging(&self, name: &str) -> PathBuf {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        self.root
            .join("staging")
            .join(format!("{}-{unique}", name.replace('/', "_")))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The saved index when it is for `url`, without the files that are gone or changed
    /// size on disk; otherwise an empty one (and `models/` emptied).
    pub(crate) fn load_index(&self, url: &str) -> Result<CacheIndex, RemoteError> {
        let saved = std::fs::read(self.index_path())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheIndex>(&bytes).ok());
        let mut index = match saved {
            Some(index) if index.url == url => index,
            other => {
                if other.is_some() {
                    tracing::warn!(
                        cache = %self.root.display(),
                        "the model cache held another repository; starting it empty"
                    );
                }
                let models = self.models();
                remove(&models)?;
                std::fs::create_dir_all(&models).map_err(|source| RemoteError::Cache {
                    path: models.clone(),
                    source,
                })?;
                CacheIndex {
                    url: url.to_owned(),
                    ..CacheIndex::default()
                }
            }
        };
        let models = self.models();
        index.files.retain(|path, file| {
            std::fs::metadata(models.join(path)).is_ok_and(|m| m.is_file() && m.len() == file.size)
        });
        Ok(index)
    }

    /// Saves `index` (written aside, then renamed over the old one).
    pub(crate) fn save_index(&self, index: &CacheIndex) -> Result<(), RemoteError> {
        let path = self.index_path();
        let aside = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(index).map_err(std::io::Error::other);
        bytes
            .and_then(|bytes| std::fs::write(&aside, bytes))
            .and_then(|()| std::fs::rename(&aside, &path))
            .map_err(|source| RemoteError::Cache { path, source })
    }
}

impl CacheIndex {
    /// Whether the cached copy of `file` is current.
    pub(crate) fn current(&self, file: &RemoteFile) -> bool {
        self.files
            .get(&file.path)
            .is_some_and(|cached| cached.tag == file.tag && cached.size == file.size)
    }

    /// The cached files under `folder` (`<model>/<version>`), by path.
    pub(crate) fn under<'a>(&'a self, folder: &str) -> impl Iterator<Item = &'a str> + 'a {
        let start = format!("{folder}/");
        self.files
            .range(start.clone()..)
            .map(|(path, _)| path.as_str())
            .take_while(move |path| path.starts_with(&start))
    }

    /// Forgets every file under `folder`.
    pub(crate) fn forget_under(&mut self, folder: &str) {
        let gone: Vec<String> = self.under(folder).map(str::to_owned).collect();
        for path in gone {
            self.files.remove(&path);
        }
    }

    /// Records `file` as copied.
    pub(crate) fn record(&mut self, file: &RemoteFile) {
        self.files.insert(
            file.path.clone(),
            CachedFile {
                size: file.size,
                tag: file.tag.clone(),
            },
        );
    }
}

/// Removes a file or a folder with its contents; absent is fine.
pub(crate) fn remove(path: &Path) -> Result<(), RemoteError> {
    let removed = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    removed.map_err(|source| RemoteError::Cache {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, tag: &str) -> RemoteFile {
        RemoteFile {
            path: path.into(),
            size: 3,
            tag: tag.into(),
        }
    }

    #[test]
    fn the_index_survives_a_restart_and_drops_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CacheDir::open(dir.path()).unwrap();
        let mut index = cache.load_index("s3://b/p").unwrap();
        for path in ["m/1/a", "m/1/b", "m/10/a", "m/model.toml"] {
            std::fs::create_dir_all(cache.models().join(path).parent().unwrap()).unwrap();
            std::fs::write(cache.models().join(path), "abc").unwrap();
            index.record(&file(path, "t1"));
        }
        assert_eq!(index.under("m/1").collect::<Vec<_>>(), ["m/1/a", "m/1/b"]);
        cache.save_index(&index).unwrap();
        // A second server cannot take the same cache.
        let error = CacheDir::open(dir.path()).unwrap_err();
        assert!(error.to_string().contains("another server"), "{error}");
        drop(cache);

        let cache = CacheDir::open(dir.path()).unwrap();
        std::fs::remove_file(cache.models().join("m/1/b")).unwrap();
        std::fs::write(cache.models().join("m/10/a"), "abcd").unwrap();
        let mut index = cache.load_index("s3://b/p").unwrap();
        assert_eq!(
            index.files.keys().collect::<Vec<_>>(),
            ["m/1/a", "m/model.toml"]
        );
        assert!(index.current(&file("m/1/a", "t1")));
        assert!(!index.current(&file("m/1/a", "t2")));
        index.forget_under("m/1");
        assert_eq!(index.files.keys().collect::<Vec<_>>(), ["m/model.toml"]);

        // Another repository's cache starts empty.
        let index = cache.load_index("s3://other/p").unwrap();
        assert!(index.files.is_empty());
        assert!(!cache.models().join("m").exists());
    }
}
