//! Both ONNX engines (tract, and ONNX Runtime when its library is found) on the conformance
//! cases of the `onnx` surface (tests/conformance/cases.json: the example models against
//! onnxruntime's outputs and the training library's labels, written by scripts/gen_models.py),
//! and the batch invariant: a row's result inside a batch equals its result alone.
//!
//! ONNX Runtime's library comes from `scripts/fetch-onnxruntime.sh`; without it these tests run
//! on tract alone and say so, unless `FERROSERVE_REQUIRE_ONNXRUNTIME=1` (set by `.ci/run`).

use std::path::{Path, PathBuf};

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{DataType, Model, Runtime, Tensor, TensorData};
use ferroserve_onnx::onnxruntime::{LibraryChoice, library};
use ferroserve_onnx::{Engine, OnnxRuntime};
use serde_json::Value;

/// The engines under test: tract always, ONNX Runtime when its library is found.
fn engines() -> Vec<OnnxRuntime> {
    let mut engines = vec![OnnxRuntime::tract()];
    match library::initialize(LibraryChoice::Search) {
        Ok(_) => engines.push(OnnxRuntime::new(Engine::OnnxRuntime)),
        Err(e) if std::env::var_os("FERROSERVE_REQUIRE_ONNXRUNTIME").is_some() => {
            panic!("FERROSERVE_REQUIRE_ONNXRUNTIME is set but {e}")
        }
        Err(e) => eprintln!("ONNX Runtime engine not tested: {e}"),
    }
    engines
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn load(engine: &OnnxRuntime, model: &str) -> std::sync::Arc<dyn Model> {
    engine
        .load(
            &examples().join("models").join(model).join("1"),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", engine.name()))
}

fn read(model: &str, file: &str) -> Value {
    let path = examples().join("oracles").join(model).join(file);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The oracle request's input as a tensor, and its row width.
fn oracle_input(model: &str) -> Tensor {
    let request = read(model, "request.json");
    let input = &request["inputs"][0];
    let shape: Vec<usize> = input["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = input["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    Tensor::new(
        input["name"].as_str().unwrap(),
        shape,
        TensorData::F32(data),
    )
    .unwrap()
}

/// Every conformance case of the `onnx` surface (tests/conformance/cases.json) on every
/// engine under test: each compared output, its shape and datatype where the oracle gives them,
/// within the manifest's tolerance.
#[test]
fn every_conformance_case_matches_on_every_engine() {
    let runs = ferroserve_conformance::manifest().runs("onnx");
    for engine in engines() {
        for (case, model) in &runs {
            let what = format!("{} on {}", case.label(model), engine.name());
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(model.path(), dir.path().join(model.file_name())).unwrap();
            let m = engine
                .load(dir.path(), &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(m.engine(), Some(engine.name()));
            let inputs = case.input_tensors(m.signature());
            let outputs = m.predict(&inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
            case.assert_outputs(&outputs, &what);
        }
    }
}

#[test]
fn signature_keeps_the_batch_dimension_symbolic() {
    for engine in engines() {
        let m = load(&engine, "digits_mlp");
        let s = m.signature();
        assert_eq!(s.inputs[0].name, "input");
        assert_eq!(s.inputs[0].datatype, DataType::Fp32);
        assert_eq!(s.inputs[0].shape, vec![-1, 64], "{}", engine.name());
        assert_eq!(s.outputs[0].name, "label");
        assert_eq!(s.outputs[0].shape, vec![-1], "{}", engine.name());
        assert_eq!(s.outputs[1].shape, vec![-1, 10], "{}", engine.name());
        assert!(s.batchable());
    }
}

#[test]
fn a_row_inside_a_batch_equals_the_row_alone() {
    for (engine, model) in each(&["digits_mlp", "cnn"]) {
        let m = load(&engine, model);
        let batch = oracle_input(model);
        let rows = batch.shape[0];
        let width = batch.len() / rows;
        let TensorData::F32(all) = batch.data() else {
            unreachable!()
        };
        let together = m.predict(std::slice::from_ref(&batch)).unwrap();
        // Reversed order, and a batch of one, give the same rows.
        let reversed: Vec<f32> = all.chunks(width).rev().flatten().copied().collect();
        let reversed = Tensor::new(
            batch.name.clone(),
            batch.shape.clone(),
            TensorData::F32(reversed),
        )
        .unwrap();
        let backwards = m.predict(&[reversed]).unwrap();
        for row in [0, rows / 2, rows - 1] {
            let mut shape = batch.shape.clone();
            shape[0] = 1;
            let one = Tensor::new(
                batch.name.clone(),
                shape,
                TensorData::F32(all[row * width..(row + 1) * width].to_vec()),
            )
            .unwrap();
            let alone = m.predict(&[one]).unwrap();
            for ((a, t), b) in alone.iter().zip(&together).zip(&backwards) {
                let out_width = t.len() / rows;
                let pick = |x: &Tensor, r: usize| match x.data() {
                    TensorData::F32(v) => v[r * out_width..(r + 1) * out_width]
                        .iter()
                        .map(|f| *f as f64)
                        .collect::<Vec<_>>(),
                    TensorData::I64(v) => v[r * out_width..(r + 1) * out_width]
                        .iter()
                        .map(|i| *i as f64)
                        .collect(),
                    _ => unreachable!(),
                };
                let (alone_row, batch_row, back_row) =
                    (pick(a, 0), pick(t, row), pick(b, rows - 1 - row));
                for ((x, y), z) in alone_row.iter().zip(&batch_row).zip(&back_row) {
                    assert!(
                        (x - y).abs() <= 1e-6 * y.abs() + 1e-7,
                        "{model} on {} row {row}: {x} vs {y}",
                        engine.name()
                    );
                    assert!(
                        (z - y).abs() <= 1e-6 * y.abs() + 1e-7,
                        "{model} on {} row {row} reversed: {z} vs {y}",
                        engine.name()
                    );
                }
            }
        }
    }
}

#[test]
fn a_file_that_is_not_onnx_fails_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("model.onnx"), b"not a protobuf").unwrap();
    for engine in engines().into_iter().chain([OnnxRuntime::auto()]) {
        let err = engine
            .load(dir, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.onnx"), "{}: {err}", engine.name());
        let missing = engine
            .load(&dir.join("nope"), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{}: {missing}", engine.name());
    }
}

#[test]
fn auto_prefers_onnxruntime_when_its_library_is_found() {
    let m = load(&OnnxRuntime::auto(), "digits_mlp");
    let want = if library::initialize(LibraryChoice::Search).is_ok() {
        "onnxruntime"
    } else {
        "tract"
    };
    assert_eq!(m.engine(), Some(want));
}

/// Concurrent callers on one ONNX Runtime model each get their own rows (a session per call).
#[test]
fn concurrent_calls_get_their_own_results() {
    let Some(engine) = engines().into_iter().find(|e| e.name() == "onnxruntime") else {
        return;
    };
    let m = engine
        .load(
            &examples().join("models").join("digits_mlp").join("1"),
            &LoadOptions {
                instances: 2,
                ..LoadOptions::default()
            },
        )
        .unwrap();
    let batch = oracle_input("digits_mlp");
    let width = batch.len() / batch.shape[0];
    let TensorData::F32(all) = batch.data() else {
        unreachable!()
    };
    let expected = m.predict(std::slice::from_ref(&batch)).unwrap();
    let TensorData::I64(labels) = expected[0].data() else {
        unreachable!()
    };
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (m, all, labels) = (&m, all, labels);
            scope.spawn(move || {
                for i in 0..50 {
                    let row = (t * 7 + i) % labels.len();
                    let one = Tensor::new(
                        "input",
                        vec![1, width],
                        TensorData::F32(all[row * width..(row + 1) * width].to_vec()),
                    )
                    .unwrap();
                    let out = m.predict(&[one]).unwrap();
                    assert_eq!(out[0].data(), &TensorData::I64(vec![labels[row]]));
                }
            });
        }
    });
}

/// Every engine under test paired with every model.
fn each<'a>(models: &[&'a str]) -> Vec<(OnnxRuntime, &'a str)> {
    engines()
        .into_iter()
        .flat_map(|e| models.iter().map(move |m| (e, *m)))
        .collect()
}
