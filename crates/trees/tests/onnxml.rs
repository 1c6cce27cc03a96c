//! The ONNX-ML interpreter beyond its numbers: which graphs it claims, the errors of broken or
//! unsupported graphs, and a row alone equal to the row inside a batch, on the models trained
//! and converted with skl2onnx by scripts/gen_tree_fixtures.py. Their numbers against
//! scikit-learn's own `predict` / `predict_proba` are conformance cases
//! (tests/conformance/cases.json, run here by tests/conformance.rs).

mod common;

use std::path::{Path, PathBuf};

use common::rows;
use ferroserve_core::model::LoadOptions;
use ferroserve_core::{RuntimeRegistry, TensorData};
use ferroserve_trees::onnxml::runtime::imports_ml_domain;

fn cases() -> Vec<PathBuf> {
    common::cases("onnxml")
}

fn registry() -> RuntimeRegistry {
    let mut r = RuntimeRegistry::new();
    ferroserve_trees::register(&mut r);
    r
}

#[test]
fn graphs_the_interpreter_cannot_run_whole_stay_with_tract() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let runtime = ferroserve_trees::onnxml::OnnxMlRuntime;
    let files = vec!["model.onnx".to_owned()];
    // The CNN imports no ML operators; the MLP mixes MatMul/Relu with ArrayFeatureExtractor.
    assert!(!imports_ml_domain(&examples.join("cnn/1/model.onnx")).unwrap());
    for (model, claimed) in [("cnn", false), ("digits_mlp", false), ("iris_logreg", true)] {
        let dir = examples.join(model).join("1");
        assert_eq!(
            ferroserve_core::Runtime::claims(&runtime, &dir, &files),
            claimed,
            "{model}"
        );
    }
}

#[test]
fn unsupported_operators_and_broken_files_fail_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let source = cases()
        .into_iter()
        .find(|d| d.ends_with("logistic_regression_binary"))
        .unwrap();
    let bytes = std::fs::read(source.join("model.onnx")).unwrap();
    std::fs::write(dir.path().join("model.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let runtime = ferroserve_trees::onnxml::OnnxMlRuntime;
    let err = ferroserve_core::Runtime::load(&runtime, dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.onnx") && err.contains("not an ONNX model"),
        "{err}"
    );
    // The op_type field (4) of the node: tag 0x22, length 16.
    let patched: Vec<u8> = replace(
        &bytes,
        b"\x22\x10LinearClassifier",
        b"\x22\x10LinearClassifieR",
    );
    std::fs::write(dir.path().join("model.onnx"), &patched).unwrap();
    let err = ferroserve_core::Runtime::load(&runtime, dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ai.onnx.ml:LinearClassifieR is not supported"),
        "{err}"
    );
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = out.windows(from.len()).position(|w| w == from).unwrap();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

#[test]
fn a_row_alone_equals_the_row_inside_a_batch() {
    let registry = registry();
    for dir in cases() {
        let model = registry
            .select(&dir, None)
            .unwrap()
            .load(&dir, &LoadOptions::default())
            .unwrap();
        let batch = rows(&dir);
        let width = batch.shape[1];
        let TensorData::F32(x) = batch.data() else {
            unreachable!()
        };
        let all = model.predict(std::slice::from_ref(&batch)).unwrap();
        let last = all.len() - 1;
        let TensorData::F32(together) = all[last].data() else {
            panic!("{}: last output is not FP32", dir.display())
        };
        let per_row = together.len() / 32;
        for row in [0, 13, 31] {
            let one = ferroserve_core::Tensor::new(
                "input",
                vec![1, width],
                TensorData::F32(x[row * width..(row + 1) * width].to_vec()),
            )
            .unwrap();
            let alone = model.predict(&[one]).unwrap();
            let TensorData::F32(a) = alone[last].data() else {
                unreachable!()
            };
            assert_eq!(
                a.as_slice(),
                &together[row * per_row..(row + 1) * per_row],
                "{} row {row}",
                dir.display()
            );
        }
    }
}
