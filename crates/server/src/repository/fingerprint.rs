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
    /// model files through them), each directory once, so a link back up the tree is not a
    /// loop. A directory that cannot be read gives an empty fingerprint.
    pub fn of_tree(dir: &Path) -> Fingerprint {
        let mut walk = Walk::default();
        if let Ok(meta) = std::fs::metadata(dir) {
            walk.first_visit(&meta);
        }
        walk.dir(dir, Path::new(""), 0);
        let mut files = walk.files;
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

/// Deepest directory nesting followed.
const MAX_DEPTH: usize = 8;

/// Most files one version's tree may list; past it the rest are not looked at (a version
/// directory is a model's files, not a file system).
const MAX_FILES: usize = 10_000;

/// A walk of one tree: the files found, and the directories already walked.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
    /// Directories seen, by (device, inode): links to one of them are not followed again.
    seen: std::collections::HashSet<(u64, u64)>,
}

impl Walk {
    /// Whether the directory `meta` describes is seen for the first time (always true where
    /// the platform has no inode numbers).
    fn first_visit(&mut self, meta: &std::fs::Metadata) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.seen.insert((meta.dev(), meta.ino()))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            true
        }
    }

    fn dir(&mut self, dir: &Path, prefix: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten().filter(|e| !hidden(e)) {
            if self.files.len() >= MAX_FILES {
                return;
            }
            let path = entry.path();
            let relative = prefix.join(entry.file_name());
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if depth < MAX_DEPTH && self.first_visit(&meta) {
                    self.dir(&path, &relative, depth + 1);
                }
            } else {
                self.files
                    .push((relative, meta.len(), meta.modified().ok()));
            }
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
                let Some(version) = entry.file_name().to_str().and_then(crate::version_number)
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

    /// Links back up the tree are walked once: five links to `.` once cost the poller 5^8
    /// directory visits per look.
    #[cfg(unix)]
    #[test]
    fn links_back_up_the_tree_are_not_followed_again() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("1");
        std::fs::create_dir_all(version.join("weights")).unwrap();
        std::fs::write(version.join("model.onnx"), "a").unwrap();
        std::fs::write(version.join("weights/w.bin"), "b").unwrap();
        for i in 0..5 {
            std::os::unix::fs::symlink(".", version.join(format!("loop{i}"))).unwrap();
        }
        std::os::unix::fs::symlink("..", version.join("weights/up")).unwrap();
        // A link to a directory outside the tree is followed (Kubernetes mounts use them).
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("extra.bin"), "c").unwrap();
        std::os::unix::fs::symlink(outside.path(), version.join("mounted")).unwrap();
        let files: Vec<PathBuf> = Fingerprint::of_tree(&version)
            .0
            .into_iter()
            .map(|(path, _, _)| path)
            .collect();
        let expected: Vec<PathBuf> = ["model.onnx", "mounted/extra.bin", "weights/w.bin"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(files, expected);
    }

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
