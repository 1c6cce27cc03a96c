//! The operators: each node is built once, at load, into an [`Op`] that runs on
//! [`Tensor`]s. Shared here: the input conversions every ML operator does (any numeric tensor
//! to a float matrix) and the classifier outputs.

mod basic;
mod encode;
mod linear;
mod math;
mod post;
mod preprocess;
mod svm;
mod tensor;
mod tree_ensemble;

use ferroserve_core::{Tensor, TensorData};

use super::attributes::Attributes;
use super::proto::NodeProto;

/// A built operator.
pub(crate) trait Op: Send + Sync + std::fmt::Debug {
    /// The outputs, as shape and data (names filled in by the caller), for `inputs` (a missing
    /// optional input is `None`).
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String>;
}

/// An operator output: its shape and data.
pub(crate) type Output = (Vec<usize>, TensorData);

/// The operators this interpreter has, as `domain:op_type` (`ai.onnx.ml:Scaler`, `:Cast`).
pub(crate) const SUPPORTED: &[&str] = &[
    "ai.onnx.ml:TreeEnsembleClassifier",
    "ai.onnx.ml:TreeEnsembleRegressor",
    "ai.onnx.ml:TreeEnsemble",
    "ai.onnx.ml:LinearClassifier",
    "ai.onnx.ml:LinearRegressor",
    "ai.onnx.ml:Scaler",
    "ai.onnx.ml:Imputer",
    "ai.onnx.ml:Normalizer",
    "ai.onnx.ml:ZipMap",
    "ai.onnx.ml:SVMClassifier",
    "ai.onnx.ml:SVMRegressor",
    "ai.onnx.ml:ArrayFeatureExtractor",
    "ai.onnx.ml:OneHotEncoder",
    "ai.onnx.ml:LabelEncoder",
    "ai.onnx.ml:FeatureVectorizer",
    ":Cast",
    ":Identity",
    ":Concat",
    ":Reshape",
    ":Gather",
    ":Add",
    ":Sub",
    ":Mul",
    ":Div",
    ":Sigmoid",
    ":Softmax",
    ":ArgMax",
];

/// The node's operator domain, the default one (`ai.onnx`) written as `""`.
fn domain(domain: &str) -> &str {
    if domain == "ai.onnx" { "" } else { domain }
}

/// Whether [`build`] knows `node`'s operator.
pub(crate) fn supports(node_domain: &str, op_type: &str) -> bool {
    let domain = domain(node_domain);
    SUPPORTED
        .iter()
        .any(|s| s.split_once(':') == Some((domain, op_type)))
}

/// Builds `node` (opset versions are not consulted: these operators' semantics have not
/// changed in the versions converters emit).
pub(crate) fn build(node: &NodeProto) -> Result<Box<dyn Op>, String> {
    let a = Attributes(&node.attribute);
    Ok(match (domain(&node.domain), node.op_type.as_str()) {
        ("ai.onnx.ml", "TreeEnsembleClassifier") => {
            Box::new(tree_ensemble::TreeEnsemble::classifier(a)?)
        }
        ("ai.onnx.ml", "TreeEnsembleRegressor") => {
            Box::new(tree_ensemble::TreeEnsemble::regressor(a)?)
        }
        ("ai.onnx.ml", "TreeEnsemble") => Box::new(tree_ensemble::TreeEnsemble::v5(a)?),
        ("ai.onnx.ml", "LinearClassifier") => Box::new(linear::LinearClassifier::new(a)?),
        ("ai.onnx.ml", "LinearRegressor") => Box::new(linear::LinearRegressor::new(a)?),
        ("ai.onnx.ml", "Scaler") => Box::new(preprocess::Scaler::new(a)),
        ("ai.onnx.ml", "Imputer") => Box::new(preprocess::Imputer::new(a)?),
        ("ai.onnx.ml", "Normalizer") => Box::new(preprocess::Normalizer::new(a)?),
        // ONNX turns the probability matrix into a sequence of maps (class → probability);
        // V2 tensors have no maps, so the served output stays the `[N, classes]` matrix, its
        // columns in class-label order.
        ("ai.onnx.ml", "ZipMap") => Box::new(basic::Identity),
        ("ai.onnx.ml", "SVMClassifier") => Box::new(svm::SvmClassifier::new(a)?),
        ("ai.onnx.ml", "SVMRegressor") => Box::new(svm::SvmRegressor::new(a)?),
        ("", "Cast") => Box::new(basic::Cast::new(a)?),
        ("", "Identity") => Box::new(basic::Identity),
        ("ai.onnx.ml", "ArrayFeatureExtractor") => Box::new(tensor::ArrayFeatureExtractor),
        ("ai.onnx.ml", "OneHotEncoder") => Box::new(tensor::OneHotEncoder::new(a)?),
        ("ai.onnx.ml", "LabelEncoder") => Box::new(encode::LabelEncoder::new(a)?),
        ("ai.onnx.ml", "FeatureVectorizer") => Box::new(encode::FeatureVectorizer::new(a)?),
        ("", "Concat") => Box::new(tensor::Concat::new(a)),
        ("", "Reshape") => Box::new(tensor::Reshape),
        ("", "Gather") => Box::new(tensor::Gather::new(a)),
        ("", "Add") => Box::new(math::Arithmetic::Add),
        ("", "Sub") => Box::new(math::Arithmetic::Sub),
        ("", "Mul") => Box::new(math::Arithmetic::Mul),
        ("", "Div") => Box::new(math::Arithmetic::Div),
        ("", "Sigmoid") => Box::new(math::Activation::Sigmoid),
        ("", "Softmax") => {
            if !matches!(a.int("axis", -1), -1 | 1) {
                return Err("Softmax over an axis other than the last is not supported".into());
            }
            Box::new(math::Activation::Softmax)
        }
        ("", "ArgMax") => Box::new(math::ArgMax::new(a)?),
        (domain, op) => {
            return Err(format!(
                "operator {domain}:{op} is not supported (supported: {})",
                SUPPORTED.join(", ")
            ));
        }
    })
}

/// Input `i`, which must be present.
pub(crate) fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor, String> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("input {i} is missing"))
}

/// A row-major float matrix, borrowing an FP32 input rather than copying it.
#[derive(Debug)]
pub(crate) struct Matrix<'a> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: std::borrow::Cow<'a, [f32]>,
}

/// Input `index` as a float matrix: `[N, F]`, or `[F]` as one row; any numeric type.
pub(crate) fn matrix<'a>(
    inputs: &[Option<&'a Tensor>],
    index: usize,
) -> Result<Matrix<'a>, String> {
    let t = input(inputs, index)?;
    let data: std::borrow::Cow<'a, [f32]> = match t.data() {
        TensorData::F32(v) => v.as_slice().into(),
        TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        other => {
            return Err(format!(
                "input '{}': {} is not a numeric type",
                t.name,
                other.datatype()
            ));
        }
    };
    let (rows, cols) = match t.shape.as_slice() {
        [n, f] => (*n, *f),
        [f] => (1, *f),
        other => {
            return Err(format!(
                "input '{}': expected 2 dimensions, got {other:?}",
                t.name
            ));
        }
    };
    Ok(Matrix { rows, cols, data })
}
