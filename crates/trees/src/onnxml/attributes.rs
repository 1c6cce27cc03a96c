//! Typed access to a node's attributes, with errors naming the attribute.

use super::proto::{AttributeProto, TensorProto, data_type};

/// A node's attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes<'a>(pub(crate) &'a [AttributeProto]);

impl<'a> Attributes<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    pub(crate) fn floats(&self, name: &str) -> Vec<f32> {
        self.get(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    pub(crate) fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub(crate) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or_else(
            || default.to_owned(),
            |a| String::from_utf8_lossy(&a.s).into_owned(),
        )
    }

    /// A tensor attribute's values as reals (float or double tensors).
    pub(crate) fn tensor_reals(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            None => Ok(None),
            Some(t) => tensor_reals(t)
                .map(Some)
                .map_err(|e| format!("attribute {name}: {e}")),
        }
    }

    /// A tensor attribute's values as integers (uint8 raw bytes or int32 data, as ONNX
    /// stores small integer tensors).
    pub(crate) fn tensor_small_ints(&self, name: &str) -> Result<Vec<i64>, String> {
        let Some(t) = self.get(name).and_then(|a| a.t.as_ref()) else {
            return Err(format!("attribute {name} is missing"));
        };
        if !t.raw_data.is_empty() {
            if t.data_type == 2 {
                return Ok(t.raw_data.iter().map(|&b| i64::from(b)).collect());
            }
            return Err(format!(
                "attribute {name}: raw data of type {} is not supported",
                t.data_type
            ));
        }
        Ok(t.int32_data.iter().map(|&v| i64::from(v)).collect())
    }

    /// A float list given either as `name` (floats) or `name_as_tensor` (a double or float
    /// tensor), as the newer converters write thresholds and weights.
    pub(crate) fn reals(&self, name: &str) -> Result<Vec<f64>, String> {
        if let Some(t) = self
            .get(&format!("{name}_as_tensor"))
            .and_then(|a| a.t.as_ref())
        {
            return tensor_reals(t).map_err(|e| format!("attribute {name}_as_tensor: {e}"));
        }
        Ok(self.floats(name).into_iter().map(f64::from).collect())
    }
}

/// The values of a float or double tensor as `f64`.
pub(crate) fn tensor_reals(t: &TensorProto) -> Result<Vec<f64>, String> {
    let raw = |width: usize| -> Result<&[u8], String> {
        if !t.raw_data.len().is_multiple_of(width) {
            return Err(format!("raw_data of {} bytes", t.raw_data.len()));
        }
        Ok(&t.raw_data)
    };
    match t.data_type {
        data_type::FLOAT if !t.raw_data.is_empty() => Ok(raw(4)?
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()),
        data_type::FLOAT => Ok(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        data_type::DOUBLE if !t.raw_data.is_empty() => Ok(raw(8)?
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect()),
        data_type::DOUBLE => Ok(t.double_data.clone()),
        other => Err(format!("tensor data type {other} is not float or double")),
    }
}
