//! The numeric conformance cases (tests/conformance/cases.json) on ferroserve-trees' runtimes,
//! in process: every case of the formats the `trees` surface loads (XGBoost JSON and UBJSON,
//! LightGBM, ONNX-ML graphs), each model file alone in a version directory, selected by the
//! runtime registry as the server selects it, and compared output by output with the
//! manifest's named tolerances. The cases and tolerances live in the manifest only.

use ferroserve_conformance::{Format, manifest};
use ferroserve_core::RuntimeRegistry;
use ferroserve_core::model::LoadOptions;
use ferroserve_trees::onnxml::runtime::imports_ml_domain;

#[test]
fn every_case_matches_its_library() {
    let mut registry = RuntimeRegistry::new();
    ferroserve_trees::register(&mut registry);
    let runs = manifest().runs("trees");
    for (case, model) in &runs {
        let what = case.label(model);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(model.path(), dir.path().join(model.file_name())).unwrap();
        let runtime = registry
            .select(dir.path(), None)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if model.format == Format::OnnxMl {
            assert!(imports_ml_domain(&model.path()).unwrap(), "{what}");
            assert_eq!(runtime.name(), "onnx-ml", "{what}");
        }
        let loaded = runtime
            .load(dir.path(), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let inputs = case.input_tensors(loaded.signature());
        let outputs = loaded
            .predict(&inputs)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        case.assert_outputs(&outputs, &what);
    }
    println!("trees: {} runs", runs.len());
}
