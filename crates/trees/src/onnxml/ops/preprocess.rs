//! `ai.onnx.ml` preprocessing: `Scaler`, `Imputer`, `Normalizer`. Each takes `[N, F]` (any
//! numeric type) and returns FP32 `[N, F]`, computing in single precision as onnxruntime does.

use ferroserve_core::{Tensor, TensorData};

use super::{Op, Output, matrix};
use crate::onnxml::attributes::Attributes;

/// The value for column `c` from a per-column list, or its only value.
fn per_column(values: &[f32], c: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// Checks a per-column list against the input's width.
fn check_width(name: &str, values: &[f32], cols: usize) -> Result<(), String> {
    if values.len() == 1 || values.len() == cols {
        Ok(())
    } else {
        Err(format!(
            "{name} has {} values but the input has {cols} columns",
            values.len()
        ))
    }
}

/// `Scaler`: `(x - offset) * scale`.
#[derive(Debug)]
pub(crate) struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    pub(crate) fn new(a: Attributes<'_>) -> Scaler {
        let offset = a.floats("offset");
        let scale = a.floats("scale");
        Scaler {
            offset: if offset.is_empty() { vec![0.0] } else { offset },
            scale: if scale.is_empty() { vec![1.0] } else { scale },
        }
    }
}

impl Op for Scaler {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let mut m = matrix(inputs, 0)?;
        check_width("offset", &self.offset, m.cols)?;
        check_width("scale", &self.scale, m.cols)?;
        for row in m.data.to_mut().chunks_mut(m.cols.max(1)) {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (*v - per_column(&self.offset, c)) * per_column(&self.scale, c);
            }
        }
        Ok(vec![(
            vec![m.rows, m.cols],
            TensorData::F32(m.data.into_owned()),
        )])
    }
}

/// `Imputer`: replaces `replaced_value_float` (NaN: every missing value) by the column's
/// imputed value.
#[derive(Debug)]
pub(crate) struct Imputer {
    imputed: Vec<f32>,
    replaced: f32,
}

impl Imputer {
    pub(crate) fn new(a: Attributes<'_>) -> Result<Imputer, String> {
        let imputed = a.floats("imputed_value_floats");
        if imputed.is_empty() {
            return Err(
                "imputed_value_floats is empty (integer imputation is not supported)".into(),
            );
        }
        Ok(Imputer {
            imputed,
            replaced: a.float("replaced_value_float", 0.0),
        })
    }
}

impl Op for Imputer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let mut m = matrix(inputs, 0)?;
        check_width("imputed_value_floats", &self.imputed, m.cols)?;
        for row in m.data.to_mut().chunks_mut(m.cols.max(1)) {
            for (c, v) in row.iter_mut().enumerate() {
                let missing = if self.replaced.is_nan() {
                    v.is_nan()
                } else {
                    *v == self.replaced
                };
                if missing {
                    *v = per_column(&self.imputed, c);
                }
            }
        }
        Ok(vec![(
            vec![m.rows, m.cols],
            TensorData::F32(m.data.into_owned()),
        )])
    }
}

/// `Normalizer`: each row divided by its max, L1 or L2 norm.
#[derive(Debug)]
pub(crate) struct Normalizer {
    norm: Norm,
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

impl Normalizer {
    pub(crate) fn new(a: Attributes<'_>) -> Result<Normalizer, String> {
        let norm = match a.string("norm", "MAX").as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => return Err(format!("norm {other} is not MAX, L1 or L2")),
        };
        Ok(Normalizer { norm })
    }
}

impl Op for Normalizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let mut m = matrix(inputs, 0)?;
        for row in m.data.to_mut().chunks_mut(m.cols.max(1)) {
            let divisor = match self.norm {
                Norm::Max => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                Norm::L1 => row.iter().map(|v| v.abs()).sum(),
                Norm::L2 => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
            };
            if divisor != 0.0 {
                row.iter_mut().for_each(|v| *v /= divisor);
            }
        }
        Ok(vec![(
            vec![m.rows, m.cols],
            TensorData::F32(m.data.into_owned()),
        )])
    }
}
