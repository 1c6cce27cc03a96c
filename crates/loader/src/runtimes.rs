//! [`runtimes`]: every runtime this build has, in the one order they are tried.

use ferroserve_core::RuntimeRegistry;

/// Every runtime this build has, in the order they are tried: the tree runtimes first, since
/// their ONNX-ML interpreter claims the `model.onnx` files that import `ai.onnx.ml`; then, with
/// the `tract` or `onnxruntime` feature, the ONNX runtime (`onnx`, `onnxruntime`, `tract`),
/// which takes every other `model.onnx` on the engines the features include.
pub fn runtimes() -> RuntimeRegistry {
    let mut registry = RuntimeRegistry::new();
    ferroserve_trees::register(&mut registry);
    #[cfg(any(feature = "tract", feature = "onnxruntime"))]
    ferroserve_onnx::register(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn example(model: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/models")
            .join(model)
            .join("1")
    }

    #[test]
    fn trees_come_before_onnx() {
        let names = runtimes().names();
        assert_eq!(names[..2], ["trees", "onnx-ml"]);
        #[cfg(any(feature = "tract", feature = "onnxruntime"))]
        assert_eq!(names[2..], ["onnx", "onnxruntime", "tract"]);
    }

    #[test]
    fn an_onnx_ml_file_goes_to_the_trees_runtime() {
        let registry = runtimes();
        let runtime = registry.select(&example("iris_logreg"), None).unwrap();
        assert_eq!(runtime.name(), "onnx-ml");
    }

    #[cfg(feature = "tract")]
    #[test]
    fn any_other_onnx_file_goes_to_the_onnx_runtime() {
        let registry = runtimes();
        let runtime = registry.select(&example("cnn"), None).unwrap();
        assert_eq!(runtime.name(), "onnx");
    }
}
