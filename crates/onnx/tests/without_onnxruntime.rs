//! A process whose ONNX Runtime library is missing: `onnx` falls back to tract, and a model
//! pinned to `onnxruntime` fails to load with the reason. (Its own test binary: the library
//! choice is made once per process.)

use std::path::Path;

use ferroserve_core::Runtime;
use ferroserve_core::model::LoadOptions;
use ferroserve_onnx::onnxruntime::{LibraryChoice, Unavailable, library};
use ferroserve_onnx::{Engine, OnnxRuntime};

#[test]
fn a_missing_library_means_tract_and_a_clear_error() {
    let missing = Path::new("/nonexistent/libonnxruntime.so").to_path_buf();
    let outcome = library::initialize(LibraryChoice::Path(missing.clone()));
    assert!(
        matches!(&outcome, Err(Unavailable::Failed { path, .. }) if *path == missing),
        "{outcome:?}"
    );
    // The first choice stands for the life of the process.
    assert!(library::initialize(LibraryChoice::Search).is_err());

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/digits_mlp/1");
    let auto = OnnxRuntime::auto()
        .load(&dir, &LoadOptions::default())
        .unwrap();
    assert_eq!(auto.engine(), Some("tract"));

    let err = OnnxRuntime::new(Engine::OnnxRuntime)
        .load(&dir, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.onnx") && err.contains("/nonexistent/libonnxruntime.so"),
        "{err}"
    );
}
