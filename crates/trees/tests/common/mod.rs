//! Fixture access shared by the fidelity tests: cases under tests/fixtures/trees/<library>/,
//! each a model file, `rows.json` (32 float32 rows, NaN as null) and `expected.json`.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use ferroserve_core::{Tensor, TensorData};
use serde_json::Value;

/// The fixture directory of `library`.
pub fn fixtures(library: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/trees")
        .join(library)
}

/// Every case directory of `library`, sorted.
pub fn cases(library: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures(library))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "{library}: fixtures missing");
    dirs
}

/// A JSON file of a case.
pub fn read(dir: &Path, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap()
}

/// A JSON array of numbers, null as NaN.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// A case's rows as an FP32 tensor named `input`.
pub fn rows(dir: &Path) -> Tensor {
    let rows = read(dir, "rows.json");
    let shape: Vec<usize> = rows["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = numbers(&rows["data"]).iter().map(|&v| v as f32).collect();
    Tensor::new("input", shape, TensorData::F32(data)).unwrap()
}
