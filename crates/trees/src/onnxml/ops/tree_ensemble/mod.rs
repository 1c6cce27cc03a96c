//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml opset 1–3 attributes) and
//! the newer `TreeEnsemble` (opset 5), compiled into the same [`CompiledForest`] as XGBoost and
//! LightGBM models.
//!
//! Every comparison mode becomes a [`Split`](crate::forest::Split) on float32 inputs: `BRANCH_LEQ t` is
//! `x < round_down(t).next_up()`, `BRANCH_LT t` is `x < round_up(t)`, `BRANCH_GTE`/`BRANCH_GT`
//! are those with the children swapped, `BRANCH_EQ`/`BRANCH_NEQ` an equality, `BRANCH_MEMBER`
//! (opset 5) a [`MemberSet`](crate::forest::MemberSet) from `membership_values`. A missing value
//! goes to the true branch when `nodes_missing_value_tracks_true` says so, and otherwise where
//! the comparison with NaN sends it (false, except `BRANCH_NEQ`). A tree whose leaves add to
//! several classes (random forests) becomes one tree per class. Leaf values are summed in
//! double precision and returned as FP32.

//!
//! This module owns the built operator and how it runs. Each attribute layout has its own
//! reader: [`legacy`] (`nodes_*` keyed by tree and node id, leaf weights in `class_*` or
//! `target_*`, string modes) and [`opset5`] (`nodes_splits`, `leaf_targetids`, integer modes).
//! Both hand their nodes to [`build`], which turns a tree into forest nodes.

mod build;
mod legacy;
mod opset5;

use ferroserve_core::{Tensor, TensorData};

use super::post::{Labels, PostTransform, binary_scores};
use super::{Op, Output, matrix};
use crate::compiled::CompiledForest;
use crate::objective::argmax;

/// A built tree ensemble.
#[derive(Debug)]
pub(crate) struct TreeEnsemble {
    forest: CompiledForest,
    /// Per output group, added after the trees.
    base: Vec<f64>,
    /// The sum is divided by this (`aggregate_function = AVERAGE`: the number of trees).
    divisor: f64,
    transform: PostTransform,
    kind: Kind,
}

/// What the summed scores become.
#[derive(Debug)]
enum Kind {
    /// The scores, post-transformed.
    Regressor,
    /// A label per row and a probability per class.
    Classifier {
        /// The class labels.
        labels: Labels,
        /// Two classes, one score (boosted binary models).
        binary: bool,
        /// Every weight ≥ 0: the binary score is a probability.
        positive: bool,
    },
}

impl Op for TreeEnsemble {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let x = matrix(inputs, 0)?;
        let features = self.forest.forest().features;
        if x.cols < features {
            return Err(format!(
                "input has {} columns but the trees read feature {}",
                x.cols,
                features - 1
            ));
        }
        let rows_data: std::borrow::Cow<'_, [f32]> = if x.cols == features {
            std::borrow::Cow::Borrowed(&*x.data)
        } else {
            x.data
                .chunks(x.cols)
                .flat_map(|r| r[..features].iter().copied())
                .collect::<Vec<_>>()
                .into()
        };
        let groups = self.base.len();
        let mut sums = vec![0.0f64; x.rows * groups];
        self.forest.accumulate(&rows_data, &mut sums);
        let scores: Vec<f32> = sums
            .chunks(groups)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.base)
                    .map(|(s, b)| (s / self.divisor + b) as f32)
            })
            .collect();
        match &self.kind {
            Kind::Regressor => {
                let mut y = scores;
                if self.transform != PostTransform::None {
                    y.chunks_mut(groups).for_each(|r| self.transform.apply(r));
                }
                Ok(vec![(vec![x.rows, groups], TensorData::F32(y))])
            }
            Kind::Classifier {
                labels,
                binary: true,
                positive,
            } => {
                let mut classes = Vec::with_capacity(x.rows);
                let mut probabilities = Vec::with_capacity(x.rows * 2);
                for &s in &scores {
                    if *positive {
                        classes.push(usize::from(s > 0.5));
                        probabilities.extend_from_slice(&[1.0 - s, s]);
                    } else {
                        let (two, class) = binary_scores(s, self.transform);
                        classes.push(class);
                        probabilities.extend_from_slice(&two);
                    }
                }
                Ok(vec![
                    (vec![x.rows], labels.output(&classes)),
                    (vec![x.rows, 2], TensorData::F32(probabilities)),
                ])
            }
            Kind::Classifier { labels, .. } => {
                let mut classes = Vec::with_capacity(x.rows);
                let mut probabilities = scores;
                for row in probabilities.chunks_mut(groups) {
                    classes.push(argmax(row));
                    self.transform.apply(row);
                }
                Ok(vec![
                    (vec![x.rows], labels.output(&classes)),
                    (vec![x.rows, groups], TensorData::F32(probabilities)),
                ])
            }
        }
    }
}
