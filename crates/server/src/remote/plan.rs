//! The publish protocol, as pure functions over a listing: which models and versions of a
//! remote repository are complete, and which of them fit the cache's size bound.
//!
//! A version directory `<model>/<n>/` is complete once its marker `<model>/<n>/_SUCCESS` is
//! listed. An empty marker means "every file under the version"; a marker with content is a
//! manifest, one path (relative to the version) per line, and the version is complete only
//! once every file it names is listed, and then only those files are taken. Publishers upload
//! the files first and the marker last, so a half-uploaded version is never loaded. Files
//! directly under `<model>/` (`model.toml`, a profile) are model files, taken as they are. A
//! model appears once one of its versions is complete, or at once if it has no version
//! directories at all (a composite is only a `model.toml`).

use std::collections::BTreeMap;

use super::listing::RemoteFile;

/// The name of the file that marks a version complete.
pub(crate) const MARKER: &str = "_SUCCESS";

/// A repository's files as listed, grouped by model and version.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Every model, by name.
    pub models: BTreeMap<String, ListedModel>,
}

/// One model's files as listed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListedModel {
    /// Files directly under the model (or in its non-version folders).
    pub files: Vec<RemoteFile>,
    /// Its version directories, by number.
    pub versions: BTreeMap<u64, ListedVersion>,
}

/// One version directory as listed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListedVersion {
    /// Its files but the marker, by path relative to the version directory.
    pub files: BTreeMap<String, RemoteFile>,
    /// The marker, once uploaded.
    pub marker: Option<RemoteFile>,
}

/// Groups a listing by model and version. Files at the root, hidden files and folders (a
/// leading `.`), and version folders spelled other than as their number (`02`) are not part
/// of any model.
pub(crate) fn group(files: Vec<RemoteFile>) -> Listed {
    let mut listed = Listed::default();
    for file in files {
        let parts: Vec<&str> = file.path.split('/').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
            continue;
        }
        let model = listed.models.entry(parts[0].to_owned()).or_default();
        match crate::version_number(parts[1]) {
            Some(number) if parts.len() > 2 && parts[1] == number.to_string() => {
                let version = model.versions.entry(number).or_default();
                let inside = parts[2..].join("/");
                if inside == MARKER {
                    version.marker = Some(file);
                } else {
                    version.files.insert(inside, file);
                }
            }
            // Another spelling of a number (`02`): the repository would read the folder as a
            // version, so it is never copied outside the marker protocol.
            Some(_) if parts.len() > 2 => {}
            _ => model.files.push(file),
        }
    }
    listed
}

/// Whether a version can be taken, and its files if so.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Complete: these files (the marker left out).
    Complete(Vec<RemoteFile>),
    /// Not yet: why.
    Waiting(String),
}

/// Applies the publish protocol to one version; `manifest` is the marker's content when it
/// has any.
pub(crate) fn readiness(version: &ListedVersion, manifest: Option<&str>) -> Readiness {
    if version.marker.is_none() {
        return Readiness::Waiting(format!("no {MARKER} marker yet"));
    }
    let Some(manifest) = manifest else {
        return Readiness::Complete(version.files.values().cloned().collect());
    };
    let named: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let missing: Vec<&str> = named
        .iter()
        .copied()
        .filter(|name| !version.files.contains_key(*name))
        .collect();
    if missing.is_empty() {
        Readiness::Complete(named.iter().map(|n| version.files[*n].clone()).collect())
    } else {
        Readiness::Waiting(format!(
            "its {MARKER} manifest names files not uploaded yet: {}",
            missing.join(", ")
        ))
    }
}

/// A version chosen for the cache: its model, number and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sized {
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
    /// Its files' bytes.
    pub bytes: u64,
}

/// The versions to leave out so that the rest fit in `max_bytes`: the oldest (lowest
/// numbered) first, across models, never a model's newest. When the newest versions alone
/// do not fit, they are all kept (and the bound is exceeded).
pub(crate) fn over_bound(versions: &[Sized], model_bytes: u64, max_bytes: u64) -> Vec<Sized> {
    let mut total: u64 = model_bytes + versions.iter().map(|v| v.bytes).sum::<u64>();
    let newest: BTreeMap<&str, u64> = versions.iter().fold(BTreeMap::new(), |mut m, v| {
        let n = m.entry(v.model.as_str()).or_insert(v.version);
        *n = (*n).max(v.version);
        m
    });
    let mut candidates: Vec<&Sized> = versions
        .iter()
        .filter(|v| newest[v.model.as_str()] != v.version)
        .collect();
    candidates.sort_by(|a, b| (a.version, &a.model).cmp(&(b.version, &b.model)));
    let mut dropped = Vec::new();
    for candidate in candidates {
        if total <= max_bytes {
            break;
        }
        total -= candidate.bytes;
        dropped.push(candidate.clone());
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> RemoteFile {
        RemoteFile {
            path: path.into(),
            size: 10,
            tag: format!("etag-{path}"),
        }
    }

    #[test]
    fn groups_by_model_and_version() {
        let listed = group(vec![
            file("README.md"),
            file("iris/model.toml"),
            file("iris/1/model.onnx"),
            file("iris/1/_SUCCESS"),
            file("iris/2/model.onnx"),
            file("iris/02/model.onnx"),
            file("iris/assets/labels.txt"),
            file(".hidden/1/model.onnx"),
            file("iris/1/.DS_Store"),
            file("ensemble/model.toml"),
        ]);
        assert_eq!(
            listed.models.keys().collect::<Vec<_>>(),
            ["ensemble", "iris"]
        );
        let iris = &listed.models["iris"];
        let model_files: Vec<&str> = iris.files.iter().map(|f| f.path.as_str()).collect();
        // `02` is neither a version (versions are spelled as their numbers) nor model files:
        // the repository would load it as version 2, without its marker.
        assert_eq!(model_files, ["iris/model.toml", "iris/assets/labels.txt"]);
        assert_eq!(iris.versions.keys().collect::<Vec<_>>(), [&1, &2]);
        assert!(iris.versions[&1].marker.is_some());
        assert_eq!(
            iris.versions[&1].files.keys().collect::<Vec<_>>(),
            ["model.onnx"]
        );
        assert!(iris.versions[&2].marker.is_none());
    }

    #[test]
    fn a_version_needs_its_marker() {
        let listed = group(vec![file("m/1/model.onnx")]);
        let version = &listed.models["m"].versions[&1];
        assert!(
            matches!(readiness(version, None), Readiness::Waiting(why) if why.contains("_SUCCESS"))
        );
        let listed = group(vec![file("m/1/model.onnx"), file("m/1/_SUCCESS")]);
        let version = &listed.models["m"].versions[&1];
        assert_eq!(
            readiness(version, None),
            Readiness::Complete(vec![file("m/1/model.onnx")])
        );
    }

    #[test]
    fn a_manifest_names_every_file() {
        let listed = group(vec![
            file("m/1/model.onnx"),
            file("m/1/stray.tmp"),
            file("m/1/_SUCCESS"),
        ]);
        let version = &listed.models["m"].versions[&1];
        let waiting = readiness(version, Some("# files\nmodel.onnx\nweights/extra.bin\n"));
        assert!(
            matches!(&waiting, Readiness::Waiting(why) if why.contains("weights/extra.bin")),
            "{waiting:?}"
        );
        assert_eq!(
            readiness(version, Some("model.onnx\n")),
            Readiness::Complete(vec![file("m/1/model.onnx")])
        );
    }

    #[test]
    fn the_bound_drops_the_oldest_never_the_newest() {
        let v = |model: &str, version, bytes| Sized {
            model: model.into(),
            version,
            bytes,
        };
        let versions = [
            v("a", 1, 100),
            v("a", 2, 100),
            v("a", 3, 100),
            v("b", 1, 100),
        ];
        assert!(over_bound(&versions, 0, 400).is_empty());
        assert_eq!(over_bound(&versions, 0, 300), [v("a", 1, 100)]);
        assert_eq!(
            over_bound(&versions, 50, 300),
            [v("a", 1, 100), v("a", 2, 100)]
        );
        // The newest of each model stay, even over the bound.
        assert_eq!(
            over_bound(&versions, 0, 10),
            [v("a", 1, 100), v("a", 2, 100)]
        );
    }
}
