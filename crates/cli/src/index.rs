//! `ferroserve index`: writes the `index.json` that lets a model repository folder be served
//! read-only over HTTP(S) (`--model-repository https://...`): every file's path, size and
//! SHA-256, which the server checks each download against.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sha2::Digest;

/// The file the index is written to, at the repository's root.
const INDEX: &str = "index.json";

/// Flags of `ferroserve index`.
#[derive(Debug, Args)]
pub(crate) struct IndexArgs {
    /// The model repository folder; `index.json` is written at its root (hidden files and
    /// folders are left out).
    repository: PathBuf,
}

/// Writes the index and prints how many files it names.
pub(crate) fn run(args: &IndexArgs) -> anyhow::Result<()> {
    let root = &args.repository;
    anyhow::ensure!(root.is_dir(), "{}: not a directory", root.display());
    let mut paths = Vec::new();
    walk(root, root, &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let full = root.join(path);
        let (size, sha256) = hash(&full).with_context(|| full.display().to_string())?;
        files.push(serde_json::json!({ "path": path, "size": size, "sha256": sha256 }));
    }
    let index = serde_json::to_vec_pretty(&serde_json::json!({ "files": files }))?;
    let target = root.join(INDEX);
    std::fs::write(&target, index).with_context(|| target.display().to_string())?;
    println!("{}: {} files", target.display(), files.len());
    Ok(())
}

/// Every file under `dir`, as `/`-separated paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || (dir == root && name == INDEX) {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root)?;
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// A file's size and SHA-256 (lower-case hex), read in blocks.
fn hash(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}
