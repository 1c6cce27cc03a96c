//! Plain arithmetic ML graphs use around the ML operators: `Add`, `Sub`, `Mul`, `Div` with
//! numpy broadcasting (FP32, FP64, INT64), and `Sigmoid`, `Softmax`, `ArgMax` on FP32.

use ferroserve_core::{Tensor, TensorData};

use super::post::logistic;
use super::{Op, Output, input};
use crate::objective::argmax;
use crate::onnxml::attributes::Attributes;

/// Which arithmetic.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// The broadcast shape of `a` and `b` (numpy rules).
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        let pad = rank - s.len();
        if i < pad { 1 } else { s[i - pad] }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(format!(
                "shapes {a:?} and {b:?} do not broadcast ({x} vs {y})"
            )),
        })
        .collect()
}

/// For each element of `out_shape`, the index into a tensor of `shape` broadcast to it.
fn source_indices(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let rank = out_shape.len();
    let pad = rank - shape.len();
    let mut strides = vec![0usize; rank];
    let mut stride = 1;
    for i in (0..rank).rev() {
        let d = if i < pad { 1 } else { shape[i - pad] };
        strides[i] = if d == 1 { 0 } else { stride };
        stride *= d;
    }
    let total: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0usize; rank];
    for _ in 0..total {
        out.push(index.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < out_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

impl Op for Arithmetic {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let shape = broadcast(&a.shape, &b.shape)?;
        let (ia, ib) = (
            source_indices(&a.shape, &shape),
            source_indices(&b.shape, &shape),
        );
        macro_rules! apply {
            ($x:expr, $y:expr, $variant:ident) => {{
                let values = ia
                    .iter()
                    .zip(&ib)
                    .map(|(&i, &j)| {
                        let (p, q) = ($x[i], $y[j]);
                        match self {
                            Arithmetic::Add => p + q,
                            Arithmetic::Sub => p - q,
                            Arithmetic::Mul => p * q,
                            Arithmetic::Div => p / q,
                        }
                    })
                    .collect();
                TensorData::$variant(values)
            }};
        }
        let data = match (a.data(), b.data()) {
            (TensorData::F32(x), TensorData::F32(y)) => apply!(x, y, F32),
            (TensorData::F64(x), TensorData::F64(y)) => apply!(x, y, F64),
            (TensorData::I64(x), TensorData::I64(y)) => {
                if matches!(self, Arithmetic::Div) && y.contains(&0) {
                    return Err("integer division by zero".into());
                }
                apply!(x, y, I64)
            }
            (x, y) => {
                return Err(format!(
                    "{} and {} operands are not supported",
                    x.datatype(),
                    y.datatype()
                ));
            }
        };
        Ok(vec![(shape, data)])
    }
}

/// Unary FP32 activations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    Sigmoid,
    /// Softmax over the last axis (the default `axis = -1` of opset 13+).
    Softmax,
}

impl Op for Activation {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let t = input(inputs, 0)?;
        let TensorData::F32(v) = t.data() else {
            return Err(format!("{} input is not supported (FP32 is)", t.datatype()));
        };
        let mut out = v.clone();
        match self {
            Activation::Sigmoid => out.iter_mut().for_each(|x| *x = logistic(*x)),
            Activation::Softmax => {
                let width = t.shape.last().copied().unwrap_or(1).max(1);
                for row in out.chunks_mut(width) {
                    super::post::PostTransform::Softmax.apply(row);
                }
            }
        }
        Ok(vec![(t.shape.clone(), TensorData::F32(out))])
    }
}

/// `ArgMax` over the last axis of a 2-D FP32 tensor.
#[derive(Debug)]
pub(crate) struct ArgMax {
    keepdims: bool,
}

impl ArgMax {
    pub(crate) fn new(a: Attributes<'_>) -> Result<ArgMax, String> {
        let axis = a.int("axis", 0);
        if axis != 1 && axis != -1 {
            return Err(format!(
                "ArgMax over axis {axis} is not supported (the last axis is)"
            ));
        }
        if a.int("select_last_index", 0) != 0 {
            return Err("ArgMax with select_last_index is not supported".into());
        }
        Ok(ArgMax {
            keepdims: a.int("keepdims", 1) != 0,
        })
    }
}

impl Op for ArgMax {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let t = input(inputs, 0)?;
        let (TensorData::F32(v), [rows, cols]) = (t.data(), t.shape.as_slice()) else {
            return Err("ArgMax takes a 2-D FP32 tensor".into());
        };
        let out: Vec<i64> = v.chunks((*cols).max(1)).map(|r| argmax(r) as i64).collect();
        let shape = if self.keepdims {
            vec![*rows, 1]
        } else {
            vec![*rows]
        };
        Ok(vec![(shape, TensorData::I64(out))])
    }
}
