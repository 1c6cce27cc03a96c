//! What classifier and regressor operators share: `post_transform`, class labels, and the
//! binary case where a model computes one score for two classes (onnxruntime's
//! `write_scores`, whose behaviour the converters rely on).

use ferroserve_core::TensorData;

use crate::onnxml::attributes::Attributes;

/// The `post_transform` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

impl PostTransform {
    pub(crate) fn parse(a: Attributes<'_>) -> Result<PostTransform, String> {
        match a.string("post_transform", "NONE").as_str() {
            "NONE" => Ok(PostTransform::None),
            "LOGISTIC" => Ok(PostTransform::Logistic),
            "SOFTMAX" => Ok(PostTransform::Softmax),
            "SOFTMAX_ZERO" => Ok(PostTransform::SoftmaxZero),
            other => Err(format!("post_transform {other} is not supported")),
        }
    }

    /// Applies the transform to one row of scores (of two or more).
    pub(crate) fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Softmax => crate::objective::softmax(row),
            PostTransform::SoftmaxZero => softmax_zero(row),
        }
    }
}

/// onnxruntime's `ComputeLogistic`: symmetric, so large negative scores keep precision.
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// Softmax over the non-zero scores; zeros stay zero (onnxruntime's `SOFTMAX_ZERO`).
fn softmax_zero(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        if *v != 0.0 {
            *v = (*v - max).exp();
            sum += *v;
        }
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// A classifier's class labels.
#[derive(Debug, Clone)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    /// From `classlabels_ints`/`classlabels_int64s` or `classlabels_strings`.
    pub(crate) fn parse(a: Attributes<'_>) -> Result<Labels, String> {
        let strings = a.strings("classlabels_strings");
        let mut ints = a.ints("classlabels_int64s");
        if ints.is_empty() {
            ints = a.ints("classlabels_ints");
        }
        match (ints.is_empty(), strings.is_empty()) {
            (false, true) => Ok(Labels::Ints(ints)),
            (true, false) => Ok(Labels::Strings(strings)),
            _ => Err("exactly one of classlabels_int64s/classlabels_ints and classlabels_strings must be given".into()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    /// The label tensor data for class indices.
    pub(crate) fn output(&self, classes: &[usize]) -> TensorData {
        match self {
            Labels::Ints(v) => TensorData::I64(classes.iter().map(|&c| v[c]).collect()),
            Labels::Strings(v) => {
                TensorData::Bytes(classes.iter().map(|&c| v[c].clone().into_bytes()).collect())
            }
        }
    }
}

/// Expands a binary classifier's one score `s` into two columns, as onnxruntime does when
/// the weights are mixed in sign (boosting, linear models): `[σ(-s), σ(s)]` after a logistic
/// transform, `[-s, s]` otherwise. The label is class 1 when `s > 0`.
pub(crate) fn binary_scores(s: f32, transform: PostTransform) -> ([f32; 2], usize) {
    let class = usize::from(s > 0.0);
    let scores = match transform {
        PostTransform::Logistic => [logistic(-s), logistic(s)],
        _ => [-s, s],
    };
    (scores, class)
}
