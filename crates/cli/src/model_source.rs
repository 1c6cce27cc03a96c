//! `--model-repository` of `serve` and `lambda`: a local directory (or `file://` URL), or a
//! remote repository (`s3://`, `gs://`, `az://`, `http(s)://`) with the flags of its local
//! cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ferroserve_server::ModelSource;
use ferroserve_server::remote::RemoteSettings;

/// The local cache of a remote model repository.
#[derive(Debug, Args)]
pub(crate) struct ModelCacheArgs {
    /// Where a remote --model-repository is copied and served from; kept across restarts, so
    /// files that did not change are not downloaded again. One server per folder.
    #[arg(long, env = "FERROSERVE_MODEL_CACHE_DIR", value_name = "DIR")]
    model_cache_dir: Option<PathBuf>,

    /// Most bytes the cache of a remote repository may hold (`20GiB`, `500MB`, or bytes): past
    /// it the oldest versions are left out, never a model's newest.
    #[arg(long, env = "FERROSERVE_MODEL_CACHE_MAX", value_name = "SIZE", value_parser = parse_size)]
    model_cache_max: Option<u64>,

    /// Seconds a failing request to a remote repository's store is retried (with backoff)
    /// before that look at it fails; the cached copy keeps serving meanwhile.
    #[arg(
        long,
        env = "FERROSERVE_MODEL_STORE_RETRY_SECS",
        default_value_t = 30.0
    )]
    model_store_retry_secs: f64,
}

/// Where `repository` (as given to `--model-repository`) is; a remote one is cached in
/// `--model-cache-dir`, else in `default_cache`.
pub(crate) fn model_source(
    repository: &str,
    cache: &ModelCacheArgs,
    default_cache: &Path,
) -> anyhow::Result<ModelSource> {
    let scheme = repository
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let local = match scheme.as_deref() {
        None => PathBuf::from(repository),
        Some("file") => url::Url::parse(repository)
            .ok()
            .and_then(|url| url.to_file_path().ok())
            .with_context(|| format!("--model-repository {repository}: not a file:// path"))?,
        Some(_) => {
            return Ok(ModelSource::Remote(RemoteSettings {
                url: repository.to_owned(),
                cache_dir: cache
                    .model_cache_dir
                    .clone()
                    .unwrap_or_else(|| default_cache.to_path_buf()),
                max_cache_bytes: cache.model_cache_max,
                retry_timeout: std::time::Duration::try_from_secs_f64(cache.model_store_retry_secs)
                    .context("--model-store-retry-secs")?,
            }));
        }
    };
    if !local.is_dir() {
        bail!("--model-repository {}: not a directory", local.display());
    }
    Ok(ModelSource::Local(local))
}

/// A size: bytes, or a number with a unit (`KB`, `MB`, `GB`, `TB`, or `KiB`...`TiB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}': expected a size such as 20GiB, 500MB or 1048576"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    Ok((number * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_cache_flags() -> ModelCacheArgs {
        ModelCacheArgs {
            model_cache_dir: None,
            model_cache_max: None,
            model_store_retry_secs: 30.0,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1.5 MB"), Ok(1_500_000));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn local_and_remote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let cache = no_cache_flags();
        let default = Path::new("/var/cache/m");
        assert_eq!(
            model_source(path, &cache, default).unwrap(),
            ModelSource::Local(dir.path().into())
        );
        assert_eq!(
            model_source(&format!("file://{path}"), &cache, default).unwrap(),
            ModelSource::Local(dir.path().into())
        );
        let missing = model_source("/no/such/dir", &cache, default).unwrap_err();
        assert!(missing.to_string().contains("not a directory"), "{missing}");
        let ModelSource::Remote(remote) = model_source("s3://b/models", &cache, default).unwrap()
        else {
            panic!("s3:// is remote")
        };
        assert_eq!(remote.cache_dir, default);
        assert_eq!(remote.url, "s3://b/models");
    }
}
