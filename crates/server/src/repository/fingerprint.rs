//! What a model directory looks like on disk, read cheaply (names, sizes and modification
//! times, never contents), so that the poller reloads exactly what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The files under one directory: relative path, length and modification time, sorted.
/// Hidden files and directories (`.staging`, an editor's `.model.toml.swp`) are left out: a
/// deployment tool's scratch files must not look like a change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<SystemTime>)>);

impl Fingerprint {
    /// Every file under `dir`, recursively; symbolic links are followed (Kubernetes mounts
    /// model files through them). A directory that cannot be read gives an empty fingerprint.
    pub fn of_tree(dir: &Path) -> Fingerprint {
        let mut files = Vec::new();
        walk(dir, Path::new(""), &mut files, 0);
        files.sort();
        Fingerprint(files)
    }

    /// The plain files directly in `dir` (not its subdirectories).
    pub fn of_files_in(dir: &Path) -> Fingerprint {
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten().filter(|e| !hidden(e)) {
                if let Ok(meta) = std::fs::metadata(entry.path())
                    && meta.is_file()
                {
                    files.push((
                        PathBuf::from(entry.file_name()),
                        meta.len(),
                        meta.modified().ok(),
                    ));
                }
            }
        }
        files.sort();
        Fingerprint(files)
    }

    /// The entry for `name` among these files, if there is one.
    pub fn file(&self, name: &str) -> Option<&(PathBuf, u64, Option<SystemTime>)> {
        self.0.iter().find(|(path, _, _)| path == Path::new(name))
    }
}

fn hidden(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with('.')
}

/// Deepest directory nesting followed, against symbolic-link loops.
const MAX_DEPTH: usize = 8;

fn walk(
    dir: &Path,
    prefix: &Path,
    out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>,
    depth: usize,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().filter(|e| !hidden(e)) {
        let path = entry.path();
        let relative = prefix.join(entry.file_name());
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, &relative, out, depth + 1);
            }
        } else {
            out.push((relative, meta.len(), meta.modified().ok()));
        }
    }
}

/// A model directory: the files beside the version directories (`model.toml`, a warm-up
/// file) and each numbered version directory's tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFingerprint {
    /// The plain files of the model directory.
    pub shared: Fingerprint,
    /// Each version directory's files, by version.
    pub versions: BTreeMap<u64, Fingerprint>,
}

impl ModelFingerprint {
    /// Reads `model_dir`; versions are its positive numeric subdirectories.
    pub fn read(model_dir: &Path) -> ModelFingerprint {
        let mut versions = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(model_dir) {
            for entry in entries.flatten() {
                let Some(version) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|&v| v > 0)
                else {
                    continue;
                };
                if entry.path().is_dir() {
                    versions.insert(version, Fingerprint::of_tree(&entry.path()));
                }
            }
        }
        ModelFingerprint {
            shared: Fingerprint::of_files_in(model_dir),
            versions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_to_one_version_shows_in_that_version_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("1")).unwrap();
        std::fs::create_dir_all(dir.path().join("2/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("notes")).unwrap();
        std::fs::write(dir.path().join("model.toml"), "").unwrap();
        std::fs::write(dir.path().join(".model.toml.swp"), "").unwrap();
        std::fs::write(dir.path().join("1/.partial"), "").unwrap();
        std::fs::write(dir.path().join("1/model.onnx"), "a").unwrap();
        std::fs::write(dir.path().join("2/sub/weights"), "b").unwrap();
        let before = ModelFingerprint::read(dir.path());
        assert_eq!(before.versions.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert!(before.shared.file("model.toml").is_some());
        assert_eq!(
            before.versions[&2].0[0].0,
            PathBuf::from("sub").join("weights")
        );

        std::fs::write(dir.path().join("2/sub/weights"), "bigger").unwrap();
        let after = ModelFingerprint::read(dir.path());
        assert_eq!(before.versions[&1], after.versions[&1]);
        assert_ne!(before.versions[&2], after.versions[&2]);
        assert_eq!(before.shared, after.shared);
        assert_eq!(
            after.shared.0.len(),
            1,
            "only model.toml: {:?}",
            after.shared
        );
        assert_eq!(after.versions[&1].0.len(), 1);
    }
}
