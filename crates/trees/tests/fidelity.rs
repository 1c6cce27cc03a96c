//! Fidelity of the tree evaluator's internals against the training libraries: models trained
//! by scripts/gen_tree_fixtures.py with the real XGBoost and LightGBM, and each library's own
//! margins (raw scores) on 32 held-out rows (float32 rows, NaN = missing); a row alone equals
//! the row inside a batch; malformed files fail naming the problem; UBJSON equals JSON.
//!
//! The models' predictions (probabilities, labels, values) are conformance cases, checked on
//! every surface from tests/conformance/cases.json (here: tests/conformance.rs). The margins
//! are no model output, so their tolerances stay here: XGBoost computes in float32 (1e-5
//! absolute), LightGBM in float64 (1e-6 absolute).

mod common;

use std::path::Path;

use common::{cases, fixtures, numbers, read, rows};
use ferroserve_core::model::LoadOptions;
use ferroserve_core::{Runtime, Tensor, TensorData};
use ferroserve_trees::model::TreeModel;
use ferroserve_trees::{TreesRuntime, lightgbm, xgboost};

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tolerance, "{what}[{i}]: {a} vs {b}");
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        other => panic!("unexpected output {:?}", other.datatype()),
    }
}

#[test]
fn xgboost_margins_match() {
    for dir in cases("xgboost") {
        let model = xgboost::parse_json(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
        let tree_model = TreeModel::<f32>::new(model.forest, model.objective, model.base_margin);
        let input = rows(&dir);
        let TensorData::F32(x) = input.data() else {
            unreachable!()
        };
        let margins: Vec<f64> = tree_model
            .margins(x)
            .iter()
            .map(|&m| f64::from(m))
            .collect();
        assert_close(
            &margins,
            &numbers(&read(&dir, "expected.json")["margin"]),
            1e-5,
            &name(&dir),
        );
    }
}

#[test]
fn lightgbm_raw_scores_match() {
    for dir in cases("lightgbm") {
        let text = std::fs::read_to_string(dir.join("model.txt")).unwrap();
        let model = lightgbm::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", name(&dir)));
        // Random forests (`average_output`): LightGBM's raw_score is the sum over iterations,
        // while its predictions (and our margins) use the mean.
        let iterations = (model.forest.roots.len() / model.forest.groups) as f64;
        let divisor = if text.contains("\naverage_output\n") {
            iterations
        } else {
            1.0
        };
        let groups = model.forest.groups;
        let tree_model = TreeModel::<f64>::new(model.forest, model.objective, vec![0.0; groups]);
        let input = rows(&dir);
        let TensorData::F32(x) = input.data() else {
            unreachable!()
        };
        assert_close(
            &tree_model.margins(x),
            &numbers(&read(&dir, "expected.json")["raw"])
                .iter()
                .map(|r| r / divisor)
                .collect::<Vec<_>>(),
            1e-6,
            &name(&dir),
        );
    }
}

#[test]
fn a_row_alone_equals_the_row_inside_a_batch_in_any_order() {
    for dir in cases("xgboost").into_iter().chain(cases("lightgbm")) {
        let model = TreesRuntime.load(&dir, &LoadOptions::default()).unwrap();
        let batch = rows(&dir);
        let (n, width) = (batch.shape[0], batch.shape[1]);
        let TensorData::F32(x) = batch.data() else {
            unreachable!()
        };
        let together = model.predict(std::slice::from_ref(&batch)).unwrap();
        let last = together.len() - 1;
        let all = as_f64(&together[last]);
        let out_width = all.len() / n;
        // Reversed order, and the batch repeated to cross a 16-row block boundary.
        let reversed: Vec<f32> = x.chunks(width).rev().flatten().copied().collect();
        let mut long = reversed.clone();
        long.extend_from_slice(&x[..width * 7]);
        let long = Tensor::new("input", vec![n + 7, width], TensorData::F32(long)).unwrap();
        let long_out = as_f64(&model.predict(&[long]).unwrap()[last]);
        for row in 0..n {
            let values = x[row * width..(row + 1) * width].to_vec();
            let one = Tensor::new("input", vec![1, width], TensorData::F32(values)).unwrap();
            let alone = as_f64(&model.predict(&[one]).unwrap()[last]);
            let want = &all[row * out_width..(row + 1) * out_width];
            assert_eq!(alone.as_slice(), want, "{} row {row} alone", name(&dir));
            let r = n - 1 - row;
            assert_eq!(
                &long_out[r * out_width..(r + 1) * out_width],
                want,
                "{} row {row} reversed",
                name(&dir)
            );
        }
    }
}

#[test]
fn malformed_files_fail_with_their_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let xgb =
        std::fs::read_to_string(fixtures("xgboost").join("binary_logistic/model.json")).unwrap();
    let lgb = std::fs::read_to_string(fixtures("lightgbm").join("binary/model.txt")).unwrap();
    let cases = [
        (
            "model.json",
            xgb[..xgb.len() / 2].to_owned(),
            "not an XGBoost JSON model",
        ),
        (
            "model.json",
            xgb.replace("binary:logistic", "binary:hinge_unknown"),
            "binary:hinge_unknown",
        ),
        (
            "model.json",
            xgb.replacen("\"left_children\":[1,", "\"left_children\":[99,", 1),
            "left_children[0]",
        ),
        ("model.txt", lgb[..lgb.len() / 3].to_owned(), "truncated"),
        (
            "model.txt",
            lgb.replace("objective=binary", "objective=hinge"),
            "objective 'hinge'",
        ),
        (
            "model.txt",
            lgb.replacen("left_child=1 ", "left_child=99 ", 1),
            "left_child",
        ),
    ];
    for (file, content, problem) in cases {
        for f in ["model.json", "model.txt"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        std::fs::write(dir.path().join(file), &content).unwrap();
        let err = TreesRuntime
            .load(dir.path(), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(file), "{problem}: {err}");
        assert!(err.contains(problem), "{problem}: {err}");
    }
}

#[test]
fn ubjson_models_equal_their_json() {
    for dir in cases("xgboost") {
        let json = std::fs::read(dir.join("model.json")).unwrap();
        let ubj = std::fs::read(dir.join("model.ubj")).unwrap();
        let from_json = xgboost::parse_json(&json).unwrap();
        let from_ubj = xgboost::parse_ubjson(&ubj).unwrap();
        assert!(
            from_json == from_ubj,
            "{}: JSON and UBJSON differ",
            name(&dir)
        );
    }
    // The runtime names model.ubj when it fails to read it (the conformance cases load each
    // model file alone, model.ubj included: tests/conformance.rs).
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures("xgboost").join("multi_softprob");
    let ubj = std::fs::read(source.join("model.ubj")).unwrap();
    std::fs::write(dir.path().join("model.ubj"), &ubj[..ubj.len() / 3]).unwrap();
    let err = TreesRuntime
        .load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.ubj") && err.contains("UBJSON"), "{err}");
}
