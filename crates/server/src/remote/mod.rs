//! Model repositories in object storage (`s3://`, `gs://`, `az://`) or on a read-only HTTP(S)
//! tree, served from a local copy.
//!
//! [`RemoteRepository::sync`] lists the store and brings the cache's `models/` folder in line
//! with it: complete versions (see [`plan`] for the publish protocol) are downloaded into a
//! staging folder and renamed into place whole, so the repository never reads a half-copied
//! version; files whose tag (ETag, or SHA-256 from an HTTP index) is unchanged are kept, across
//! restarts too; versions and models gone from the store are removed; a version being
//! uploaded again (its marker gone) keeps serving its old copy. The repository calls it
//! before its start-up load, before each poll and before an API load, then reads `models/` as
//! any local repository. When the store cannot be reached the copy already cached keeps
//! serving.

mod cache;
mod listing;
mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::{StreamExt, TryStreamExt};
use sha2::Digest;

use crate::error::RemoteError;
use cache::{CacheDir, CacheIndex};
use listing::{RemoteFile, RemoteStore};
use plan::{Readiness, Sized};

/// Where a remote repository is and how its local copy is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or
    /// `http(s)://host/path` (with an `index.json`).
    pub url: String,
    /// The folder of the local copy, kept across restarts.
    pub cache_dir: PathBuf,
    /// Most bytes the copy may hold: past it the oldest versions are left out (never a
    /// model's newest); `None`: unbounded.
    pub max_cache_bytes: Option<u64>,
    /// How long a failing request to the store is retried before the sync fails (and the
    /// cached copy keeps serving).
    pub retry_timeout: std::time::Duration,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Files downloaded.
    pub downloaded: usize,
    /// Their bytes.
    pub downloaded_bytes: u64,
    /// Files already current in the cache.
    pub reused: usize,
    /// Versions and models removed from the cache.
    pub removed: usize,
    /// Versions that could not be copied (tried again at the next sync).
    pub failed: usize,
}

/// Files downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;

/// A remote repository and its local copy.
#[derive(Debug)]
pub struct RemoteRepository {
    store: RemoteStore,
    cache: CacheDir,
    max_bytes: Option<u64>,
    /// Drives the store's client; syncs are blocking calls made from blocking threads.
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    /// What the cache holds; held for a whole sync, so syncs run one at a time.
    index: Mutex<CacheIndex>,
    /// Versions seen waiting for their marker, with why: each is logged once.
    waiting: Mutex<BTreeMap<String, String>>,
}

impl RemoteRepository {
    /// Opens the store and the cache (taking its lock). Nothing is listed or downloaded yet.
    pub fn open(settings: &RemoteSettings) -> Result<RemoteRepository, RemoteError> {
        let store = RemoteStore::open(&settings.url, settings.retry_timeout)?;
        let cache = CacheDir::open(&settings.cache_dir)?;
        let index = cache.load_index(store.url())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Cache {
                path: settings.cache_dir.clone(),
                source,
            })?;
        Ok(RemoteRepository {
            store,
            cache,
            max_bytes: settings.max_cache_bytes,
            runtime: Some(runtime),
            index: Mutex::new(index),
            waiting: Mutex::default(),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// The local copy's directory, which the repository serves.
    pub fn models_dir(&self) -> PathBuf {
        self.cache.models()
    }

    /// Brings the local copy in line with the store. Blocking: call from a blocking thread,
    /// never from async code.
    pub fn sync(&self) -> Result<SyncReport, RemoteError> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let result = runtime.block_on(self.sync_with(&mut index));
        // What was copied before a failure is kept and reused next time.
        let saved = self.cache.save_index(&index);
        let report = result?;
        saved?;
        if report.downloaded > 0 || report.removed > 0 || report.failed > 0 {
            tracing::info!(
                repository = %self.url(),
                downloaded = report.downloaded,
                downloaded_bytes = report.downloaded_bytes,
                reused = report.reused,
                removed = report.removed,
                failed = report.failed,
                "model cache synced"
            );
        } else {
            tracing::debug!(repository = %self.url(), reused = report.reused, "model cache current");
        }
        Ok(report)
    }

    async fn sync_with(&self, index: &mut CacheIndex) -> Result<SyncReport, RemoteError> {
        let listed = plan::group(self.store.list().await?);
        let models_dir = self.cache.models();
        let mut report = SyncReport::default();
        let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
        let mut now_waiting = BTreeMap::new();
        for (name, model) in &listed.models {
            let mut versions = BTreeMap::new();
            for (&number, version) in &model.versions {
                let manifest = match &version.marker {
                    Some(marker) if marker.size > 0 => Some(self.manifest(index, marker).await?),
                    _ => None,
                };
                match plan::readiness(version, manifest.as_deref()) {
                    Readiness::Complete(files) => {
                        versions.insert(number, Take::Files(files));
                    }
                    Readiness::Waiting(why) => {
                        let folder = format!("{name}/{number}");
                        if models_dir.join(&folder).is_dir() {
                            let bytes = index.under(&folder).map(|p| index.files[p].size).sum();
                            versions.insert(number, Take::Keep(bytes));
                        }
                        now_waiting.insert(folder, why);
                    }
                }
            }
            if versions.is_empty() && !model.versions.is_empty() {
                continue;
            }
            wanted.insert(
                name.clone(),
                Wanted {
                    files: model.files.clone(),
                    versions,
                },
            );
        }
        self.log_waiting(now_waiting);
        let markers: BTreeSet<String> = listed
            .models
            .values()
            .flat_map(|m| m.versions.values())
            .filter_map(|v| v.marker.as_ref().map(|m| m.path.clone()))
            .collect();
        index.manifests.retain(|path, _| markers.contains(path));
        if let Some(max_bytes) = self.max_bytes {
            self.apply_bound(&mut wanted, max_bytes);
        }

        // Models and versions no longer wanted go first, freeing their space.
        for model in subfolders(&models_dir)? {
            let Some(want) = wanted.get(&model) else {
                cache::remove(&models_dir.join(&model))?;
                index.forget_under(&model);
                report.removed += 1;
                continue;
            };
            for version in subfolders(&models_dir.join(&model))? {
                let keep = want.versions.keys().any(|n| n.to_string() == version);
                if !keep && crate::version_number(&version).is_some() {
                    let folder = format!("{model}/{version}");
                    cache::remove(&models_dir.join(&folder))?;
                    index.forget_under(&folder);
                    report.removed += 1;
                }
            }
        }
        for (model, want) in &wanted {
            let model_dir = models_dir.join(model);
            std::fs::create_dir_all(&model_dir).map_err(|source| RemoteError::Cache {
                path: model_dir.clone(),
                source,
            })?;
            self.sync_model_files(index, model, &want.files, &mut report)
                .await?;
            for (number, take) in &want.versions {
                let Take::Files(files) = take else { continue };
                let folder = format!("{model}/{number}");
                match self.sync_version(index, &folder, files, &mut report).await {
                    Ok(()) => {}
                    // One version that cannot be copied does not hold back the others; it
                    // is tried again at the next look.
                    Err(error @ (RemoteError::Store { .. } | RemoteError::Mismatch { .. })) => {
                        tracing::error!(%error, version = %folder, "version not copied to the model cache");
                        report.failed += 1;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(report)
    }

    /// Copies a model's own files (`model.toml`, ...) that changed, one by one (each renamed
    /// over the old), and removes those gone from the store.
    async fn sync_model_files(
        &self,
        index: &mut CacheIndex,
        model: &str,
        files: &[RemoteFile],
        report: &mut SyncReport,
    ) -> Result<(), RemoteError> {
        let models_dir = self.cache.models();
        let listed: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let stale: Vec<String> = index
            .under(model)
            .filter(|path| !listed.contains(path))
            .filter(|path| {
                let folder = path[model.len() + 1..].split('/').next();
                folder.and_then(crate::version_number).is_none()
            })
            .map(str::to_owned)
            .collect();
        for path in stale {
            cache::remove(&models_dir.join(&path))?;
            index.files.remove(&path);
        }
        for file in files {
            if index.current(file) {
                report.reused += 1;
                continue;
            }
            let staged = self.cache.staging(&file.path);
            self.download(file, &staged).await?;
            let dest = models_dir.join(&file.path);
            create_parent(&dest)?;
            std::fs::rename(&staged, &dest)
                .map_err(|source| RemoteError::Cache { path: dest, source })?;
            index.record(file);
            report.downloaded += 1;
            report.downloaded_bytes += file.size;
        }
        Ok(())
    }

    /// Makes `<model>/<version>` hold exactly `files`: when anything differs, the version is
    /// assembled in staging (current files hard-linked, the rest downloaded) and swapped in.
    async fn sync_version(
        &self,
        index: &mut CacheIndex,
        folder: &str,
        files: &[RemoteFile],
        report: &mut SyncReport,
    ) -> Result<(), RemoteError> {
        let models_dir = self.cache.models();
        let dest = models_dir.join(folder);
        let cached: BTreeSet<&str> = index.under(folder).collect();
        let same_set =
            cached.len() == files.len() && files.iter().all(|f| cached.contains(f.path.as_str()));
        if dest.is_dir() && same_set && files.iter().all(|f| index.current(f)) {
            report.reused += files.len();
            return Ok(());
        }
        let staged = self.cache.staging(folder);
        let mut downloads = Vec::new();
        for file in files {
            let target = staged.join(&file.path[folder.len() + 1..]);
            create_parent(&target)?;
            if index.current(file) {
                link_or_copy(&models_dir.join(&file.path), &target)?;
                report.reused += 1;
            } else {
                downloads.push((file, target));
            }
        }
        let mut copying = futures::stream::iter(downloads)
            .map(|(file, target)| async move { self.download(file, &target).await.map(|()| file) })
            .buffer_unordered(PARALLEL_DOWNLOADS);
        loop {
            match copying.try_next().await {
                Ok(Some(file)) => {
                    report.downloaded += 1;
                    report.downloaded_bytes += file.size;
                }
                Ok(None) => break,
                Err(error) => {
                    drop(copying);
                    cache::remove(&staged)?;
                    return Err(error);
                }
            }
        }
        drop(copying);
        if files.is_empty() {
            std::fs::create_dir_all(&staged).map_err(|source| RemoteError::Cache {
                path: staged.clone(),
                source,
            })?;
        }
        // Swap: the old copy is moved aside, the new one renamed in, the old one removed.
        let aside = self.cache.staging(&format!("{folder}-old"));
        if dest.exists() {
            std::fs::rename(&dest, &aside).map_err(|source| RemoteError::Cache {
                path: dest.clone(),
                source,
            })?;
        }
        std::fs::rename(&staged, &dest).map_err(|source| RemoteError::Cache {
            path: dest.clone(),
            source,
        })?;
        cache::remove(&aside)?;
        index.forget_under(folder);
        for file in files {
            index.record(file);
        }
        tracing::info!(repository = %self.url(), version = %folder, "version copied to the model cache");
        Ok(())
    }

    /// Downloads `file` to `target`, checking its size, and its hash or ETag.
    async fn download(&self, file: &RemoteFile, target: &Path) -> Result<(), RemoteError> {
        let mismatch = |problem: String| RemoteError::Mismatch {
            url: self.url().to_owned(),
            path: file.path.clone(),
            problem,
        };
        let result = self.store.get(&file.path).await?;
        if let Some(tag) = &result.meta.e_tag
            && file.sha256().is_none()
            && *tag != file.tag
        {
            return Err(mismatch(
                "changed while being copied; it is copied again on the next look".into(),
            ));
        }
        let io = |source| RemoteError::Cache {
            path: target.to_path_buf(),
            source,
        };
        let mut out = std::fs::File::create(target).map_err(io)?;
        let mut hasher = file.sha256().map(|_| sha2::Sha256::new());
        let mut written = 0u64;
        let mut chunks = result.into_stream();
        while let Some(chunk) = chunks
            .try_next()
            .await
            .map_err(|source| self.store.store_error(&file.path, source))?
        {
            out.write_all(&chunk).map_err(io)?;
            if let Some(hasher) = &mut hasher {
                hasher.update(&chunk);
            }
            written += chunk.len() as u64;
        }
        out.sync_all().map_err(io)?;
        if written != file.size {
            return Err(mismatch(format!(
                "has {written} bytes, the listing said {}",
                file.size
            )));
        }
        if let (Some(hasher), Some(want)) = (hasher, file.sha256()) {
            let got = crate::access::keys::hex(&hasher.finalize());
            if !got.eq_ignore_ascii_case(want) {
                return Err(mismatch(format!(
                    "has SHA-256 {got}, the index said {want}"
                )));
            }
        }
        Ok(())
    }

    /// A manifest marker's content: as read before while its tag is unchanged, else read now.
    async fn manifest(
        &self,
        index: &mut CacheIndex,
        marker: &RemoteFile,
    ) -> Result<String, RemoteError> {
        if let Some(cached) = index.manifests.get(&marker.path)
            && cached.tag == marker.tag
        {
            return Ok(cached.text.clone());
        }
        let text = self.read_text(marker).await?;
        index.manifests.insert(
            marker.path.clone(),
            cache::CachedManifest {
                tag: marker.tag.clone(),
                text: text.clone(),
            },
        );
        Ok(text)
    }

    /// A small file's content, as text (a manifest).
    async fn read_text(&self, file: &RemoteFile) -> Result<String, RemoteError> {
        let bytes = self.store.get(&file.path).await?.bytes().await;
        let bytes = bytes.map_err(|source| self.store.store_error(&file.path, source))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RemoteError::Mismatch {
            url: self.url().to_owned(),
            path: file.path.clone(),
            problem: "is not UTF-8 text (a manifest lists one file path per line)".into(),
        })
    }

    /// Logs each version that started waiting for its marker, once.
    fn log_waiting(&self, now: BTreeMap<String, String>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (folder, why) in &now {
            if waiting.get(folder) != Some(why) {
                tracing::info!(repository = %self.url(), version = %folder, reason = %why, "version not complete yet; not loaded");
            }
        }
        *waiting = now;
    }

    /// Leaves out the oldest versions until the wanted copy fits in `max_bytes`.
    fn apply_bound(&self, wanted: &mut BTreeMap<String, Wanted>, max_bytes: u64) {
        let model_bytes = wanted.values().flat_map(|w| &w.files).map(|f| f.size).sum();
        let sized: Vec<Sized> = wanted
            .iter()
            .flat_map(|(model, want)| {
                want.versions.iter().map(|(&version, take)| Sized {
                    model: model.clone(),
                    version,
                    bytes: match take {
                        Take::Files(files) => files.iter().map(|f| f.size).sum(),
                        Take::Keep(bytes) => *bytes,
                    },
                })
            })
            .collect();
        for left_out in plan::over_bound(&sized, model_bytes, max_bytes) {
            tracing::warn!(
                repository = %self.url(),
                model = %left_out.model,
                version = left_out.version,
                max_bytes,
                "version left out of the model cache: the cache would exceed its bound"
            );
            if let Some(want) = wanted.get_mut(&left_out.model) {
                want.versions.remove(&left_out.version);
            }
        }
    }
}

impl Drop for RemoteRepository {
    fn drop(&mut self) {
        // The server drops its repository on an async thread, where dropping a runtime
        // (which waits for its tasks) would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the cache should hold of one model.
#[derive(Debug)]
struct Wanted {
    /// Its own files.
    files: Vec<RemoteFile>,
    /// Its versions.
    versions: BTreeMap<u64, Take>,
}

/// What the cache should hold of one version.
#[derive(Debug)]
enum Take {
    /// Exactly these files.
    Files(Vec<RemoteFile>),
    /// The copy it has (the version is being uploaded again), of this many bytes.
    Keep(u64),
}

/// The names of the folders in `dir`, hidden ones skipped.
fn subfolders(dir: &Path) -> Result<Vec<String>, RemoteError> {
    let io = |source| RemoteError::Cache {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Creates the folder `path` will be written in.
fn create_parent(path: &Path) -> Result<(), RemoteError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| RemoteError::Cache {
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

/// Links `from` at `to` (both in the cache, one file system), copying when links fail.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), RemoteError> {
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(|source| RemoteError::Cache {
            path: from.to_path_buf(),
            source,
        })
}
