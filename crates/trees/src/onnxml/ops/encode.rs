//! `ai.onnx.ml` `LabelEncoder` (opset 2 attributes: string, int64 and float keys/values) and
//! `FeatureVectorizer`.

use ferroserve_core::{Tensor, TensorData};

use super::{Op, Output, input};
use crate::onnxml::attributes::Attributes;

/// One side of a label mapping.
#[derive(Debug, Clone)]
enum Column {
    Ints(Vec<i64>),
    Strings(Vec<String>),
    Floats(Vec<f32>),
}

impl Column {
    fn parse(a: Attributes<'_>, prefix: &str) -> Result<Column, String> {
        let ints = a.ints(&format!("{prefix}_int64s"));
        let strings = a.strings(&format!("{prefix}_strings"));
        let floats = a.floats(&format!("{prefix}_floats"));
        match (!ints.is_empty(), !strings.is_empty(), !floats.is_empty()) {
            (true, false, false) => Ok(Column::Ints(ints)),
            (false, true, false) => Ok(Column::Strings(strings)),
            (false, false, true) => Ok(Column::Floats(floats)),
            _ => Err(format!(
                "exactly one of {prefix}_int64s, {prefix}_strings and {prefix}_floats must be given"
            )),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Ints(v) => v.len(),
            Column::Strings(v) => v.len(),
            Column::Floats(v) => v.len(),
        }
    }
}

/// `LabelEncoder`: each element looked up among the keys and replaced by its value, or the
/// default.
#[derive(Debug)]
pub(crate) struct LabelEncoder {
    keys: Column,
    values: Column,
    default_int: i64,
    default_string: String,
    default_float: f32,
}

impl LabelEncoder {
    pub(crate) fn new(a: Attributes<'_>) -> Result<LabelEncoder, String> {
        let keys = Column::parse(a, "keys")?;
        let values = Column::parse(a, "values")?;
        if keys.len() != values.len() {
            return Err(format!("{} keys for {} values", keys.len(), values.len()));
        }
        Ok(LabelEncoder {
            keys,
            values,
            default_int: a.int("default_int64", -1),
            default_string: a.string("default_string", "_Unused"),
            default_float: a.float("default_float", -0.0),
        })
    }
}

impl Op for LabelEncoder {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let t = input(inputs, 0)?;
        let positions: Vec<Option<usize>> = match (&self.keys, t.data()) {
            (Column::Ints(k), TensorData::I64(v)) => {
                v.iter().map(|x| k.iter().position(|k| k == x)).collect()
            }
            (Column::Strings(k), TensorData::Bytes(v)) => v
                .iter()
                .map(|x| k.iter().position(|k| k.as_bytes() == x))
                .collect(),
            (Column::Floats(k), TensorData::F32(v)) => {
                v.iter().map(|x| k.iter().position(|k| k == x)).collect()
            }
            (_, other) => {
                return Err(format!(
                    "{} input does not match the keys' type",
                    other.datatype()
                ));
            }
        };
        let data = match &self.values {
            Column::Ints(v) => TensorData::I64(
                positions
                    .iter()
                    .map(|p| p.map_or(self.default_int, |p| v[p]))
                    .collect(),
            ),
            Column::Floats(v) => TensorData::F32(
                positions
                    .iter()
                    .map(|p| p.map_or(self.default_float, |p| v[p]))
                    .collect(),
            ),
            Column::Strings(v) => TensorData::Bytes(
                positions
                    .iter()
                    .map(|p| {
                        p.map_or(self.default_string.as_str(), |p| v[p].as_str())
                            .as_bytes()
                            .to_vec()
                    })
                    .collect(),
            ),
        };
        Ok(vec![(t.shape.clone(), data)])
    }
}

/// `FeatureVectorizer`: the inputs' rows side by side, each cut or zero-padded to its
/// `inputdimensions` entry; FP32 out.
#[derive(Debug)]
pub(crate) struct FeatureVectorizer {
    dimensions: Vec<usize>,
}

impl FeatureVectorizer {
    pub(crate) fn new(a: Attributes<'_>) -> Result<FeatureVectorizer, String> {
        let dimensions = a
            .ints("inputdimensions")
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("inputdimensions has {d}")))
            .collect::<Result<_, _>>()?;
        Ok(FeatureVectorizer { dimensions })
    }
}

impl Op for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Output>, String> {
        let parts: Vec<&Tensor> = inputs.iter().copied().flatten().collect();
        if parts.len() != self.dimensions.len() {
            return Err(format!(
                "{} inputs for {} inputdimensions",
                parts.len(),
                self.dimensions.len()
            ));
        }
        let rows = parts
            .first()
            .map_or(0, |t| t.shape.first().copied().unwrap_or(1));
        let width: usize = self.dimensions.iter().sum();
        let mut out = vec![0.0f32; rows * width];
        let mut offset = 0;
        for (t, &dim) in parts.iter().zip(&self.dimensions) {
            let m = super::matrix(&[Some(t)], 0)?;
            if m.rows != rows {
                return Err(format!(
                    "'{}' has {} rows, the first input {rows}",
                    t.name, m.rows
                ));
            }
            for r in 0..rows {
                for c in 0..dim.min(m.cols) {
                    out[r * width + offset + c] = m.data[r * m.cols + c];
                }
            }
            offset += dim;
        }
        Ok(vec![(vec![rows, width], TensorData::F32(out))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnxml::proto::AttributeProto;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..AttributeProto::default()
        }
    }

    #[test]
    fn label_encoder_maps_and_defaults() {
        let attrs = [
            ints("keys_int64s", &[3, 7]),
            AttributeProto {
                name: "values_strings".into(),
                strings: vec![b"three".to_vec(), b"seven".to_vec()],
                ..AttributeProto::default()
            },
        ];
        let op = LabelEncoder::new(Attributes(&attrs)).unwrap();
        let x = Tensor::new("x", vec![3], TensorData::I64(vec![7, 1, 3])).unwrap();
        let out = op.run(&[Some(&x)]).unwrap();
        assert_eq!(
            out[0].1,
            TensorData::Bytes(["seven", "_Unused", "three"].into_iter().collect())
        );
    }

    #[test]
    fn feature_vectorizer_pads_and_cuts() {
        let attrs = [ints("inputdimensions", &[1, 3])];
        let op = FeatureVectorizer::new(Attributes(&attrs)).unwrap();
        let a = Tensor::new("a", vec![2, 2], TensorData::F32(vec![1.0, 9.0, 2.0, 9.0])).unwrap();
        let b = Tensor::new("b", vec![2, 2], TensorData::I64(vec![3, 4, 5, 6])).unwrap();
        let out = op.run(&[Some(&a), Some(&b)]).unwrap();
        assert_eq!(out[0].0, vec![2, 4]);
        assert_eq!(
            out[0].1,
            TensorData::F32(vec![1.0, 3.0, 4.0, 0.0, 2.0, 5.0, 6.0, 0.0])
        );
    }
}
