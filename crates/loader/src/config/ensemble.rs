//! The plain data of `kind = "ensemble"`: [`EnsembleSpec`], its `[[step]]`s ([`StepSpec`])
//! and `[[combine]]`s ([`CombineSpec`]). Whether the steps fit together is checked against
//! their models' signatures by whoever plans the ensemble.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `[[step]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The model it runs: `name`, `name@3`, `name@label`.
    pub model: String,
    /// The step model's input name → the ensemble tensor fed to it.
    pub inputs: BTreeMap<String, String>,
    /// The step model's output name → the ensemble tensor it becomes.
    pub outputs: BTreeMap<String, String>,
}

/// One `[[combine]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CombineSpec {
    /// The combiner.
    pub op: CombineOp,
    /// The tensors combined (same shape and datatype).
    pub inputs: Vec<String>,
    /// The tensor it produces.
    pub output: String,
}

/// A built-in combiner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CombineOp {
    /// Element-wise mean (floating point).
    Mean,
    /// Element-wise sum.
    Sum,
    /// Element-wise minimum.
    Min,
    /// Element-wise maximum.
    Max,
    /// Element-wise majority of integer labels; a tie goes to the smallest label.
    Vote,
}

/// The parts of an ensemble's spec.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct EnsembleSpec {
    /// The ensemble tensors returned, in order.
    pub outputs: Vec<String>,
    /// The model steps.
    #[serde(default)]
    pub step: Vec<StepSpec>,
    /// The combiners.
    #[serde(default)]
    pub combine: Vec<CombineSpec>,
}
