//! [`TreeModel`]: a compiled forest and its [`Objective`] behind the [`Model`] trait.
//!
//! Inputs: one tensor `input`, FP32 `[-1, features]`, NaN for a missing value. Outputs, named as
//! the training library's scikit-learn API names them: classifiers return `label` (INT64 `[-1]`,
//! the class index, as `predict`) and `probabilities` (`[-1, classes]`, as `predict_proba`);
//! other objectives return `predictions` (`[-1]`). Outputs are in the precision the library
//! computes in: FP32 for XGBoost, FP64 for LightGBM (`M`).

use ferroserve_core::{DataType, Model, ModelError, Signature, Tensor, TensorData, TensorSpec};

use crate::compiled::CompiledForest;
use crate::forest::Forest;
use crate::objective::{Objective, Real, argmax, sigmoid, softmax};

/// The precision a model sums and transforms in, and the datatype of its outputs.
pub trait Precision: Real {
    /// The V2 datatype of outputs in this precision.
    const DATATYPE: DataType;
    /// Wraps values as tensor data.
    fn tensor_data(values: Vec<Self>) -> TensorData;
}

impl Precision for f32 {
    const DATATYPE: DataType = DataType::Fp32;
    fn tensor_data(values: Vec<Self>) -> TensorData {
        TensorData::F32(values)
    }
}

impl Precision for f64 {
    const DATATYPE: DataType = DataType::Fp64;
    fn tensor_data(values: Vec<Self>) -> TensorData {
        TensorData::F64(values)
    }
}

/// A loaded tree ensemble summing in precision `M`.
#[derive(Debug)]
pub struct TreeModel<M: Precision> {
    forest: CompiledForest,
    objective: Objective,
    /// Added to each output group's margin before the trees.
    base_margin: Vec<M>,
    signature: Signature,
}

impl<M: Precision> TreeModel<M> {
    /// A model over `forest` (which must be valid), compiling it for evaluation.
    pub fn new(forest: Forest, objective: Objective, base_margin: Vec<f64>) -> TreeModel<M> {
        let input = TensorSpec::new("input", DataType::Fp32, vec![-1, forest.features as i64]);
        let outputs = if objective.is_classifier() {
            let classes = objective.classes(forest.groups);
            vec![
                TensorSpec::new("label", DataType::Int64, vec![-1]),
                TensorSpec::new("probabilities", M::DATATYPE, vec![-1, classes as i64]),
            ]
        } else if forest.groups > 1 {
            vec![TensorSpec::new(
                "predictions",
                M::DATATYPE,
                vec![-1, forest.groups as i64],
            )]
        } else {
            vec![TensorSpec::new("predictions", M::DATATYPE, vec![-1])]
        };
        let signature = Signature {
            inputs: vec![input],
            outputs,
        };
        TreeModel {
            forest: CompiledForest::new(forest),
            objective,
            base_margin: base_margin.into_iter().map(M::from_f64).collect(),
            signature,
        }
    }

    /// The compiled forest.
    pub fn forest(&self) -> &CompiledForest {
        &self.forest
    }

    /// The margins (`rows × groups`) of `x` (`rows × features`).
    pub fn margins(&self, x: &[f32]) -> Vec<M> {
        let rows = x.len() / self.forest.forest().features.max(1);
        let mut margins: Vec<M> = Vec::with_capacity(rows * self.base_margin.len());
        for _ in 0..rows {
            margins.extend_from_slice(&self.base_margin);
        }
        self.forest.accumulate(x, &mut margins);
        margins
    }
}

impl<M: Precision> Model for TreeModel<M> {
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
        let groups = self.forest.forest().groups;
        let (probabilities, classes) = match self.objective {
            Objective::BinaryLogistic { scale } => {
                let one = M::from_f64(1.0);
                let p: Vec<M> = margins
                    .iter()
                    .flat_map(|&m| {
                        let p = sigmoid(m, scale);
                        [one - p, p]
                    })
                    .collect();
                (p, 2)
            }
            Objective::Softmax => {
                margins.chunks_mut(groups).for_each(softmax);
                (margins, groups)
            }
            Objective::OneVsRest { scale } => {
                for m in &mut margins {
                    *m = sigmoid(*m, scale);
                }
                (margins, groups)
            }
            objective => {
                for m in &mut margins {
                    *m = objective.transform(*m);
                }
                let shape = if groups > 1 {
                    vec![rows, groups]
                } else {
                    vec![rows]
                };
                return Ok(vec![output("predictions", shape, M::tensor_data(margins))?]);
            }
        };
        let labels = probabilities
            .chunks(classes)
            .map(|row| argmax(row) as i64)
            .collect();
        Ok(vec![
            output("label", vec![rows], TensorData::I64(labels))?,
            output(
                "probabilities",
                vec![rows, classes],
                M::tensor_data(probabilities),
            )?,
        ])
    }
}
