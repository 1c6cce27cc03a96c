//! Plain operators ML graphs use around the ML ones: `Cast` and `Identity` (which also serves
//! `ai.onnx.ml`'s `ZipMap`).

use ferroserve_core::{Tensor, TensorData};

use super::{Op, Output, input};
use crate::onnxml::attributes::Attributes;
use crate::onnxml::proto::data_type;

/// `Identity`.
#[derive(Debug)]
pub(crate) struct Identity;

impl Op for Identity {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let t = input(inputs, 0)?;
        Ok(vec![(t.shape.clone(), t.data().clone())])
    }
}

/// `Cast` between the numeric types ML graphs use.
#[derive(Debug)]
pub(crate) struct Cast {
    to: i32,
}

impl Cast {
    pub(crate) fn new(a: Attributes<'_>) -> Result<Cast, String> {
        let to = a.int("to", 0) as i32;
        match to {
            data_type::FLOAT | data_type::DOUBLE | data_type::INT64 | data_type::INT32 => {
                Ok(Cast { to })
            }
            other => Err(format!("Cast to data type {other} is not supported")),
        }
    }
}

impl Op for Cast {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let t = input(inputs, 0)?;
        let as_f64: Vec<f64> = match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            other => return Err(format!("Cast from {} is not supported", other.datatype())),
        };
        // Integers pass through exactly (an i64 beyond 2^53 would not, but labels never are).
        Ok(vec![(
            t.shape.clone(),
            match (self.to, t.data()) {
                (data_type::INT64, TensorData::I64(v)) => TensorData::I64(v.clone()),
                (data_type::FLOAT, TensorData::F32(v)) => TensorData::F32(v.clone()),
                (data_type::FLOAT, _) => {
                    TensorData::F32(as_f64.iter().map(|&x| x as f32).collect())
                }
                (data_type::DOUBLE, _) => TensorData::F64(as_f64),
                (data_type::INT64, _) => {
                    TensorData::I64(as_f64.iter().map(|&x| x as i64).collect())
                }
                _ => TensorData::I32(as_f64.iter().map(|&x| x as i32).collect()),
            },
        )])
    }
}
