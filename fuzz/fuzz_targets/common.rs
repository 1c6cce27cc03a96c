//! Shared by the fuzz targets: a parsed model must predict without panicking, through both the
//! compiled walk and the reference walk, on rows that exercise every branch direction.

use ferroserve_core::{Model, Tensor, TensorData};
use ferroserve_trees::Forest;
use ferroserve_trees::model::{Precision, TreeModel};
use ferroserve_trees::objective::Objective;

/// Predicts a few rows (ordinary values, NaN, ±0, ±inf, huge) of batch sizes 1 and 17.
pub fn exercise<M: Precision>(forest: Forest, objective: Objective, base_margin: Vec<f64>) {
    let features = forest.features;
    if features > 4096 || forest.nodes.len() > 1_000_000 {
        return; // keep each run fast; the parsers themselves were still exercised
    }
    let model = TreeModel::<M>::new(forest, objective, base_margin);
    const VALUES: [f32; 8] = [0.0, -0.0, 0.5, -1.0, 3.0, f32::NAN, f32::INFINITY, -1e30];
    for rows in [1usize, 17] {
        let x: Vec<f32> = (0..rows * features)
            .map(|i| VALUES[(i * 7 + rows) % VALUES.len()])
            .collect();
        let input = Tensor::new("input", vec![rows, features], TensorData::F32(x)).unwrap();
        let _ = model.predict(&[input]);
    }
}
