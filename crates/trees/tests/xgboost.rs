//! Fidelity against XGBoost itself: models trained by scripts/gen_tree_fixtures.py with the real
//! library, and its own `predict` / `predict(output_margin=True)` on held-out rows (float32 rows,
//! NaN = missing). Margins and predictions within 1e-5 absolute, class labels exact.

use std::path::{Path, PathBuf};

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{Runtime, Tensor, TensorData};
use ferroserve_trees::model::TreeModel;
use ferroserve_trees::{TreesRuntime, xgboost};
use serde_json::Value;

const CASES: [&str; 9] = [
    "binary_logistic",
    "binary_logistic_base_score",
    "binary_logistic_nan",
    "multi_softprob",
    "multi_softmax",
    "reg_squarederror",
    "reg_logistic",
    "count_poisson",
    "rank_pairwise",
];

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/trees/xgboost")
        .join(case)
}

fn read(case: &str, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(case_dir(case).join(file)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
        .collect()
}

fn rows(case: &str) -> Tensor {
    let rows = read(case, "rows.json");
    let shape: Vec<usize> = rows["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    Tensor::new("input", shape, TensorData::F32(floats(&rows["data"]))).unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-5, "{what}[{i}]: {a} vs {b}");
    }
}

#[test]
fn margins_match_xgboost() {
    for case in CASES {
        let bytes = std::fs::read(case_dir(case).join("model.json")).unwrap();
        let model = xgboost::parse_json(&bytes).unwrap();
        let tree_model = TreeModel::new(model.forest, model.objective, model.base_margin);
        let input = rows(case);
        let TensorData::F32(x) = input.data() else {
            unreachable!()
        };
        assert_close(
            &tree_model.margins(x),
            &floats(&read(case, "expected.json")["margin"]),
            case,
        );
    }
}

#[test]
fn predictions_match_xgboost() {
    for case in CASES {
        let model = TreesRuntime
            .load(&case_dir(case), &LoadOptions::default())
            .unwrap();
        let expected = read(case, "expected.json");
        let want = floats(&expected["predict"]);
        let outputs = model.predict(&[rows(case)]).unwrap();
        match expected["objective"].as_str().unwrap() {
            "binary:logistic" => {
                let TensorData::F32(p) = outputs[1].data() else {
                    panic!()
                };
                let p1: Vec<f32> = p.chunks(2).map(|r| r[1]).collect();
                assert_close(&p1, &want, case);
                let labels: Vec<i64> = want.iter().map(|&p| i64::from(p > 0.5)).collect();
                assert_eq!(outputs[0].data(), &TensorData::I64(labels), "{case}");
            }
            "multi:softprob" => {
                let TensorData::F32(p) = outputs[1].data() else {
                    panic!()
                };
                assert_close(p, &want, case);
            }
            "multi:softmax" => {
                let labels: Vec<i64> = want.iter().map(|&c| c as i64).collect();
                assert_eq!(outputs[0].data(), &TensorData::I64(labels), "{case}");
            }
            _ => {
                let TensorData::F32(p) = outputs[0].data() else {
                    panic!()
                };
                assert_close(p, &want, case);
            }
        }
    }
}

#[test]
fn a_row_alone_equals_the_row_inside_a_batch() {
    for case in ["binary_logistic_nan", "multi_softprob", "reg_squarederror"] {
        let model = TreesRuntime
            .load(&case_dir(case), &LoadOptions::default())
            .unwrap();
        let batch = rows(case);
        let (n, width) = (batch.shape[0], batch.shape[1]);
        let TensorData::F32(x) = batch.data() else {
            unreachable!()
        };
        let together = model.predict(std::slice::from_ref(&batch)).unwrap();
        let last = together.len() - 1;
        let TensorData::F32(all) = together[last].data() else {
            panic!()
        };
        let out_width = all.len() / n;
        for row in [0, n / 2, n - 1] {
            let values = x[row * width..(row + 1) * width].to_vec();
            let one = Tensor::new("input", vec![1, width], TensorData::F32(values)).unwrap();
            let alone = model.predict(&[one]).unwrap();
            let TensorData::F32(a) = alone[last].data() else {
                panic!()
            };
            assert_eq!(
                a.as_slice(),
                &all[row * out_width..(row + 1) * out_width],
                "{case} {row}"
            );
        }
    }
}

#[test]
fn malformed_files_fail_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(case_dir("binary_logistic").join("model.json")).unwrap();
    for (name, content) in [
        ("truncated", text[..text.len() / 2].to_owned()),
        (
            "objective",
            text.replace("binary:logistic", "binary:hinge_unknown"),
        ),
    ] {
        std::fs::write(dir.path().join("model.json"), &content).unwrap();
        let err = TreesRuntime
            .load(dir.path(), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.json"), "{name}: {err}");
        if name == "objective" {
            assert!(err.contains("binary:hinge_unknown"), "{err}");
        }
    }
}

#[test]
fn ubjson_models_predict_the_same_as_json() {
    for case in CASES {
        let json = std::fs::read(case_dir(case).join("model.json")).unwrap();
        let ubj = std::fs::read(case_dir(case).join("model.ubj")).unwrap();
        let from_json = xgboost::parse_json(&json).unwrap();
        let from_ubj = xgboost::parse_ubjson(&ubj).unwrap();
        assert_eq!(from_json, from_ubj, "{case}");
    }
    // And the runtime picks model.ubj when it is the only model file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        case_dir("multi_softprob").join("model.ubj"),
        dir.path().join("model.ubj"),
    )
    .unwrap();
    let model = TreesRuntime
        .load(dir.path(), &LoadOptions::default())
        .unwrap();
    let outputs = model.predict(&[rows("multi_softprob")]).unwrap();
    let TensorData::F32(p) = outputs[1].data() else {
        panic!()
    };
    assert_close(
        p,
        &floats(&read("multi_softprob", "expected.json")["predict"]),
        "ubj",
    );
    let ubj = std::fs::read(case_dir("multi_softprob").join("model.ubj")).unwrap();
    std::fs::write(dir.path().join("model.ubj"), &ubj[..ubj.len() / 3]).unwrap();
    let err = TreesRuntime
        .load(dir.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.ubj") && err.contains("UBJSON"), "{err}");
}
