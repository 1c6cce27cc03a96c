//! `--model DIR` of the commands that run one model: a model directory, or one of its
//! numbered version directories.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The model directory `--model` names and the version to use: the version directory's
/// number when `--model` is one (then `--version` must be absent), else `version`.
pub(crate) fn model_and_version(
    model: &Path,
    version: Option<&str>,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    let dir = model
        .canonicalize()
        .with_context(|| format!("--model {}", model.display()))?;
    let name = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    // A numeric directory name is a version directory; its parent is the model.
    match name {
        Some(n) if n.parse::<u64>().is_ok() => {
            if version.is_some() {
                bail!("--version cannot be used when --model is a version directory");
            }
            let parent = dir.parent().context("version directory has no parent")?;
            Ok((parent.to_owned(), Some(n)))
        }
        _ => Ok((dir, version.map(str::to_owned))),
    }
}
