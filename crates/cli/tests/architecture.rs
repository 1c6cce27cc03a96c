//! The module layering inside the crates, read from their sources: no module imports, through
//! others, from itself (the import graph of every crate has no circles), and in the server no
//! module outside `protocol` imports from it (the protocols sit on top of the request path,
//! never under it; the crate root composes them).
//!
//! A module is a source file; an edge is a `crate::a::b` or `super::x` path in its code (not in
//! comments, not in its `#[cfg(test)]` part) naming another module or an item in one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`a::b`, `""` for the root) to its source, test part and comments removed.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let name = match parts.as_slice() {
                [only] if only == "lib" || only == "main" => String::new(),
                [init @ .., last] if last == "mod" => init.join("::"),
                all => all.join("::"),
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            out.insert(name, code.join("\n"));
        }
    }
    out
}

/// The longest module that `path` (segments after `crate::`) starts with.
fn owner(modules: &BTreeMap<String, String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// Every path in `code` after `prefix` (`crate::`, `super::`), as its segments.
fn paths<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::` itself, not `ferroserve_crate::`.
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            code[at + prefix.len()..]
                .split("::")
                .map(|seg| {
                    let end = seg
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(seg.len());
                    &seg[..end]
                })
                .take_while(|seg| !seg.is_empty())
                .collect()
        })
        .collect()
}

/// The import graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    modules
        .iter()
        .map(|(name, code)| {
            let mut edges = BTreeSet::new();
            for path in paths(code, "crate::") {
                edges.extend(owner(&modules, &path));
            }
            // `super::x` from `a::b::c` is `a::b::x` (from a `mod.rs`, `a::b` is the module
            // itself, so its parent is one up).
            let parent: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
            let parent = &parent[..parent.len().saturating_sub(1)];
            for path in paths(code, "super::") {
                let full: Vec<&str> = parent.iter().copied().chain(path).collect();
                edges.extend(owner(&modules, &full));
            }
            edges.remove(name);
            (name.clone(), edges)
        })
        .collect()
}

/// A circle of imports, if the graph has one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

#[test]
fn no_crate_has_a_circle_of_module_imports() {
    let crates = crates();
    assert!(crates.len() >= 8, "{crates:?}");
    for src in crates {
        let graph = graph(&src);
        if let Some(circle) = circle(&graph) {
            panic!(
                "{}: modules import each other in a circle: {}",
                src.display(),
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn only_the_server_root_reaches_into_its_protocols() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let graph = graph(&src);
    assert!(graph.contains_key("router") && graph.contains_key("protocol"));
    let offenders: Vec<String> = graph
        .iter()
        .filter(|(name, _)| !name.is_empty() && !name.starts_with("protocol"))
        .flat_map(|(name, edges)| {
            edges
                .iter()
                .filter(|e| e.starts_with("protocol"))
                .map(move |e| format!("{name} -> {e}"))
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn the_graph_reader_finds_a_planted_circle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a/mod.rs"), "use crate::b::B;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::a::inner::X;\n").unwrap();
    std::fs::write(
        dir.path().join("a/inner.rs"),
        "// crate::b is only named in a comment\nuse super::Y;\n",
    )
    .unwrap();
    let graph = graph(dir.path());
    assert_eq!(graph["a::inner"], BTreeSet::from(["a".to_owned()]));
    let found = circle(&graph).expect("a -> b -> a::inner -> a");
    assert_eq!(found.first(), found.last());
    assert!(found.len() >= 3, "{found:?}");
}
