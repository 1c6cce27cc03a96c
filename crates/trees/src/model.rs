//! [`TreeModel`]: a [`Forest`] and its [`Objective`] behind the [`Model`] trait.
//!
//! Inputs: one tensor `input`, FP32 `[-1, features]`, NaN for a missing value. Outputs, named as
//! the training library's scikit-learn API names them: classifiers return `label` (INT64 `[-1]`)
//! and `probabilities` (FP32 `[-1, classes]`); other objectives return `predictions`
//! (FP32 `[-1]`).

use ferroserve_core::{DataType, Model, ModelError, Signature, Tensor, TensorData, TensorSpec};

use crate::forest::Forest;
use crate::objective::{Objective, sigmoid, softmax};

/// A loaded tree ensemble.
#[derive(Debug)]
pub struct TreeModel {
    forest: Forest,
    objective: Objective,
    /// Added to each output group's margin before the trees.
    base_margin: Vec<f32>,
    signature: Signature,
}

impl TreeModel {
    /// A model over `forest`.
    pub fn new(forest: Forest, objective: Objective, base_margin: Vec<f32>) -> TreeModel {
        let input = TensorSpec::new("input", DataType::Fp32, vec![-1, forest.features as i64]);
        let outputs = if objective.is_classifier() {
            let classes = if objective == Objective::BinaryLogistic {
                2
            } else {
                forest.groups
            };
            vec![
                TensorSpec::new("label", DataType::Int64, vec![-1]),
                TensorSpec::new("probabilities", DataType::Fp32, vec![-1, classes as i64]),
            ]
        } else {
            vec![TensorSpec::new("predictions", DataType::Fp32, vec![-1])]
        };
        let signature = Signature {
            inputs: vec![input],
            outputs,
        };
        TreeModel {
            forest,
            objective,
            base_margin,
            signature,
        }
    }

    /// The margins (`rows × groups`) of `x` (`rows × features`).
    pub fn margins(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.forest.features.max(1);
        let mut margins: Vec<f32> = (0..rows)
            .flat_map(|_| self.base_margin.iter().copied())
            .collect();
        self.forest.accumulate(x, &mut margins);
        margins
    }
}

impl Model for TreeModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let input = &inputs[0];
        let TensorData::F32(x) = input.data() else {
            return Err(ModelError::UnsupportedDatatype {
                tensor: input.name.clone(),
                datatype: input.datatype(),
                runtime: "trees",
            });
        };
        let rows = input.shape[0];
        let mut margins = self.margins(x);
        let output = |name: &str, shape: Vec<usize>, data: TensorData| {
            Tensor::new(name, shape, data).map_err(|e| ModelError::Output {
                tensor: name.to_owned(),
                reason: e.to_string(),
            })
        };
        match self.objective {
            Objective::BinaryLogistic => {
                let p: Vec<f32> = margins.iter().map(|&m| sigmoid(m)).collect();
                let labels = p.iter().map(|&p| i64::from(p > 0.5)).collect();
                let probabilities = p.iter().flat_map(|&p| [1.0 - p, p]).collect();
                Ok(vec![
                    output("label", vec![rows], TensorData::I64(labels))?,
                    output(
                        "probabilities",
                        vec![rows, 2],
                        TensorData::F32(probabilities),
                    )?,
                ])
            }
            Objective::Softmax => {
                let classes = self.forest.groups;
                let mut labels = Vec::with_capacity(rows);
                for row in margins.chunks_mut(classes) {
                    softmax(row);
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |best, (i, &p)| if p > row[best] { i } else { best });
                    labels.push(best as i64);
                }
                Ok(vec![
                    output("label", vec![rows], TensorData::I64(labels))?,
                    output(
                        "probabilities",
                        vec![rows, classes],
                        TensorData::F32(margins),
                    )?,
                ])
            }
            objective => {
                for m in &mut margins {
                    *m = objective.transform(*m);
                }
                Ok(vec![output(
                    "predictions",
                    vec![rows],
                    TensorData::F32(margins),
                )?])
            }
        }
    }
}
