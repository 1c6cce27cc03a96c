//! Memory across reloads: 200 load/unload cycles of an ONNX model (on each engine) and a tree
//! model must not grow the process (the complaint most often made of Triton and TF Serving
//! reloads). Its own test binary, so no other test allocates in the process while RSS is read.
//!
//! The curve is printed (`cargo test --test reload_memory -- --nocapture`).

#![allow(unreachable_pub)]

use std::path::{Path, PathBuf};

use ferroserve_server::repository::Repository;
use ferroserve_server::runtime_registry;

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

const MODELS: [&str; 3] = ["digits_mlp", "digits_tract", "iris_logreg"];

#[test]
fn two_hundred_reloads_do_not_grow_the_process() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status to read RSS from");
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    // Each ONNX engine (ONNX Runtime when its library is found) and the tree evaluator.
    for (model, source, config) in [
        ("digits_mlp", "digits_mlp", ""),
        ("digits_tract", "digits_mlp", "runtime = \"tract\"\n"),
        ("iris_logreg", "iris_logreg", ""),
    ] {
        let dir = repo.path().join(model).join("1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            examples().join(source).join("1/model.onnx"),
            dir.join("model.onnx"),
        )
        .unwrap();
        std::fs::write(repo.path().join(model).join("model.toml"), config).unwrap();
    }
    let repository = Repository::new(repo.path(), runtime_registry());
    let mut engines = Vec::new();
    for model in MODELS {
        repository.load(model).unwrap();
        let loaded = repository.resolve(model, None).unwrap();
        engines.push(format!("{model} on {}", loaded.runtime));
        repository.unload(model).unwrap();
    }
    let mut curve = Vec::new();
    for cycle in 1..=200 {
        for model in MODELS {
            repository.load(model).unwrap();
        }
        for model in MODELS {
            repository.unload(model).unwrap();
        }
        curve.push((cycle, rss_kib()));
    }
    let first = curve[0].1;
    let last = curve[curve.len() - 1].1;
    let sampled: Vec<String> = curve
        .iter()
        .filter(|(c, _)| *c == 1 || c % 20 == 0)
        .map(|(c, kib)| format!("{c}: {:.1} MiB", *kib as f64 / 1024.0))
        .collect();
    eprintln!(
        "{}; RSS after cycle {}",
        engines.join(", "),
        sampled.join(", ")
    );
    assert!(
        last as f64 <= first as f64 * 1.10,
        "RSS grew from {first} KiB after the first cycle to {last} KiB after the last: {sampled:?}"
    );
}
