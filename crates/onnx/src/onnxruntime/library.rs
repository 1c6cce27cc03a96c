//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! ort keeps one library and one environment per process, and panics on any API call once a
//! load has failed, so the outcome of the first [`initialize`] is kept for the life of the
//! process and every later caller gets the same answer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

/// Which library to use, chosen before the first ONNX model loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LibraryChoice {
    /// Look in the usual places ([`search_paths`]); use tract when none holds the library.
    Search,
    /// Load this file; a missing or broken file is an error reported for every ONNX model
    /// that asks for ONNX Runtime.
    Path(PathBuf),
    /// Never use ONNX Runtime.
    Disabled,
}

/// The library in use.
#[derive(Clone, Debug)]
pub struct LibraryInfo {
    /// The file loaded.
    pub path: PathBuf,
    /// Its version (`1.32.0`), from its build information.
    pub version: String,
}

/// Why ONNX Runtime is not available in this process.
#[derive(Clone, Debug)]
pub enum Unavailable {
    /// Turned off by the user.
    Disabled,
    /// No library file in any of the places searched.
    NotFound {
        /// The files looked for, in order.
        searched: Vec<PathBuf>,
    },
    /// The file exists but could not be loaded or set up.
    Failed {
        /// The file.
        path: PathBuf,
        /// What ort or the dynamic loader said.
        message: String,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Disabled => write!(f, "ONNX Runtime is turned off"),
            Unavailable::NotFound { searched } => {
                write!(
                    f,
                    "no {} found (run scripts/fetch-onnxruntime.sh, or name it with \
                     --onnxruntime-lib); looked in:",
                    library_file_name()
                )?;
                for path in searched {
                    write!(f, " {}", path.display())?;
                }
                Ok(())
            }
            Unavailable::Failed { path, message } => {
                write!(f, "cannot load {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for Unavailable {}

struct Loaded {
    info: LibraryInfo,
    environment: Environment,
}

static STATE: OnceLock<Result<Loaded, Unavailable>> = OnceLock::new();

/// Loads the library as `choice` says, unless an earlier call already decided; returns the
/// outcome in force (which is the earlier one if there was one).
pub fn initialize(choice: LibraryChoice) -> Result<LibraryInfo, Unavailable> {
    match STATE.get_or_init(|| load(choice)) {
        Ok(loaded) => Ok(loaded.info.clone()),
        Err(e) => Err(e.clone()),
    }
}

/// The process's environment, loading the library from the usual places on first use.
pub(crate) fn environment() -> Result<&'static Environment, &'static Unavailable> {
    match STATE.get_or_init(|| load(LibraryChoice::Search)) {
        Ok(loaded) => Ok(&loaded.environment),
        Err(e) => Err(e),
    }
}

/// The library's file name on this platform (`libonnxruntime.so`).
pub fn library_file_name() -> String {
    format!(
        "{}onnxruntime{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Where [`LibraryChoice::Search`] looks, in order: `$ORT_DYLIB_PATH` (ort's own variable), the
/// executable's directory and its `../lib`, `.tools/onnxruntime/lib` in the current directory
/// and above the executable (a checkout after `scripts/fetch-onnxruntime.sh`), then
/// `$LD_LIBRARY_PATH` and the system library directories.
pub fn search_paths() -> Vec<PathBuf> {
    let name = library_file_name();
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        paths.push(PathBuf::from(p));
    }
    let fetched = Path::new(".tools")
        .join("onnxruntime")
        .join("lib")
        .join(&name);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(dir) = &exe_dir {
        paths.push(dir.join(&name));
        paths.push(dir.join("..").join("lib").join(&name));
    }
    if let Ok(cwd) = std::env::current_dir() {
        paths.push(cwd.join(&fetched));
    }
    if let Some(dir) = &exe_dir {
        // target/{debug,release}[/deps] → the checkout holding target/.
        paths.extend(dir.ancestors().skip(1).take(4).map(|a| a.join(&fetched)));
    }
    if let Some(dirs) = std::env::var_os("LD_LIBRARY_PATH") {
        paths.extend(std::env::split_paths(&dirs).map(|d| d.join(&name)));
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib/x86_64-linux-gnu",
    ] {
        paths.push(Path::new(dir).join(&name));
    }
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

fn load(choice: LibraryChoice) -> Result<Loaded, Unavailable> {
    let path = match choice {
        LibraryChoice::Disabled => return Err(Unavailable::Disabled),
        LibraryChoice::Path(path) => path,
        LibraryChoice::Search => {
            let searched = search_paths();
            match searched.iter().find(|p| p.is_file()) {
                Some(found) => found.clone(),
                None => return Err(Unavailable::NotFound { searched }),
            }
        }
    };
    // ort resolves a relative path against the executable's directory; make it the user's.
    let path = std::path::absolute(&path).unwrap_or(path);
    let failed = |message: String| Unavailable::Failed {
        path: path.clone(),
        message,
    };
    if !path.is_file() {
        return Err(failed("no such file".to_owned()));
    }
    let environment = ort::init_from(&path)
        .map_err(|e| failed(e.to_string()))?
        .with_name("ferroserve")
        .with_telemetry(false)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let version = version_of(ort::info(), &path);
    Ok(Loaded {
        info: LibraryInfo { path, version },
        environment,
    })
}

/// The release from ONNX Runtime's build string (`git-branch=rel-1.32.0, ...` → `1.32.0`), or
/// else from the library's file name once links are followed (`libonnxruntime.so.1.32.0`, as
/// the PyPI wheels, built from a detached `HEAD`, ship it).
fn version_of(build_info: &str, path: &Path) -> String {
    let from_build = build_info
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .map(str::to_owned);
    let from_name = || {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let name = real.file_name()?.to_str()?.to_owned();
        let version = name
            .strip_prefix("libonnxruntime.so.")
            .or_else(|| name.strip_prefix("libonnxruntime.")?.strip_suffix(".dylib"))?;
        let numeric = version.split('.').all(|p| p.parse::<u32>().is_ok());
        (numeric && version.contains('.')).then(|| version.to_owned())
    };
    from_build
        .or_else(from_name)
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_release_branch() {
        assert_eq!(
            version_of(
                "ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc, build type=Release",
                Path::new("libonnxruntime.so")
            ),
            "1.32.0"
        );
        let nowhere = Path::new("/nonexistent/libonnxruntime.so");
        assert_eq!(
            version_of("ORT Build Info: git-branch=main", nowhere),
            "unknown"
        );
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("libonnxruntime.so.1.32.0");
        std::fs::write(&real, b"").unwrap();
        let link = dir.path().join("libonnxruntime.so");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            version_of("git-branch=HEAD, git-commit-id=fab30a4", &link),
            "1.32.0"
        );
    }

    #[test]
    fn search_covers_the_checkout_and_the_system() {
        let paths = search_paths();
        let name = library_file_name();
        assert!(paths.iter().all(|p| p.ends_with(&name)), "{paths:?}");
        assert!(paths.iter().any(|p| p.starts_with("/usr/lib")));
        assert!(
            paths
                .iter()
                .any(|p| p.ends_with(Path::new(".tools/onnxruntime/lib").join(&name)))
        );
    }
}
