//! Tree-model prediction speed, one thread, batches of 1 / 64 / 1024 rows, through the same
//! `Model::predict` the server calls (margins, objective, labels and output tensors included).
//!
//! Models: XGBoost (100 trees, depth 8, 20 features, binary:logistic), LightGBM (100 trees,
//! 63 leaves) and a scikit-learn random forest (100 trees, depth 8, via skl2onnx and the
//! ONNX-ML interpreter) from `scripts/gen_bench_trees.py`, which also times xgboost, lightgbm and
//! onnxruntime on the same rows; `bench/trees.sh` runs both and prints them side by side.
//! Before timing, each model's predictions are checked against its library's.

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferroserve_core::model::LoadOptions;
use ferroserve_core::{Runtime, Tensor, TensorData};
use ferroserve_trees::TreesRuntime;
use ferroserve_trees::onnxml::OnnxMlRuntime;

const FEATURES: usize = 20;

fn models_dir() -> PathBuf {
    std::env::var_os("FERROSERVE_BENCH_MODELS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-models/trees"),
        PathBuf::from,
    )
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn read_f64(path: &std::path::Path) -> Vec<f64> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// P(class 1) for every row from a classifier's `probabilities` output.
fn positive_probabilities(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::F32(p) => p.chunks(2).map(|r| f64::from(r[1])).collect(),
        TensorData::F64(p) => p.chunks(2).map(|r| r[1]).collect(),
        other => panic!("unexpected {:?}", other.datatype()),
    }
}

fn predict(c: &mut Criterion) {
    let dir = models_dir();
    if !dir.join("rows.f32").is_file() {
        eprintln!(
            "no benchmark models in {}: run `.venv/bin/python scripts/gen_bench_trees.py` \
             (or bench/trees.sh) first",
            dir.display()
        );
        return;
    }
    let rows = read_f32(&dir.join("rows.f32"));
    for (library, expected) in [
        (
            "xgboost",
            read_f32(&dir.join("xgboost/expected.f32"))
                .into_iter()
                .map(f64::from)
                .collect::<Vec<_>>(),
        ),
        ("lightgbm", read_f64(&dir.join("lightgbm/expected.f64"))),
        (
            "random_forest",
            read_f64(&dir.join("random_forest/expected.f64")),
        ),
    ] {
        let model = if library == "random_forest" {
            OnnxMlRuntime.load(&dir.join(library), &LoadOptions::default())
        } else {
            TreesRuntime.load(&dir.join(library), &LoadOptions::default())
        }
        .unwrap();
        let all = Tensor::new(
            "input",
            vec![rows.len() / FEATURES, FEATURES],
            TensorData::F32(rows.clone()),
        )
        .unwrap();
        let got = positive_probabilities(&model.predict(&[all]).unwrap()[1]);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-5,
            "{library}: differs from the library by {worst}"
        );
        let mut group = c.benchmark_group(format!("trees_{library}"));
        for batch in [1usize, 64, 1024] {
            let input = Tensor::new(
                "input",
                vec![batch, FEATURES],
                TensorData::F32(rows[..batch * FEATURES].to_vec()),
            )
            .unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::from_parameter(batch), &input, |b, input| {
                b.iter(|| model.predict(std::slice::from_ref(input)).unwrap());
            });
        }
        group.finish();
    }
}

criterion_group!(benches, predict);
criterion_main!(benches);
