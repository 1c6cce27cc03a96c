//! What a model takes and returns ([`Signature`]) and the check of a request's tensors against it.

use crate::datatype::DataType;
use crate::error::ValidationError;
use crate::tensor::Tensor;

/// One input or output of a model: name, datatype and shape (`-1` for a dynamic dimension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub datatype: DataType,
    /// Its shape, outermost first, `-1` where any size is accepted. When the model batches, the
    /// first dimension is the batch and is `-1`.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// A spec.
    pub fn new(name: impl Into<String>, datatype: DataType, shape: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            shape,
        }
    }

    /// Whether `shape` fits this spec: same rank, equal where the spec's dimension is fixed.
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&want, &got)| want < 0 || want as usize == got)
    }
}

/// A model's inputs and outputs, in the order the model takes and returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signature {
    /// The inputs, in the order [`crate::Model::predict`] takes them.
    pub inputs: Vec<TensorSpec>,
    /// The outputs, in the order [`crate::Model::predict`] returns them.
    pub outputs: Vec<TensorSpec>,
}

/// A `model.toml` override of one tensor the model file declares: a datatype to check, a
/// shape to narrow to (`[[input]]` / `[[output]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorOverride {
    /// The tensor's name in the model.
    pub name: String,
    /// The datatype the model must have for it (checked, not converted).
    pub datatype: Option<String>,
    /// The shape to serve, `-1` for dynamic; must fit the model's own shape.
    pub shape: Option<Vec<i64>>,
}

impl Signature {
    /// This signature with `inputs` and `outputs` overrides applied; the error says which
    /// override (`input 'x'.shape: ...`) does not fit the model.
    pub fn with_overrides(
        mut self,
        inputs: &[TensorOverride],
        outputs: &[TensorOverride],
    ) -> Result<Signature, String> {
        for (key, overrides, specs) in [
            ("input", inputs, &mut self.inputs),
            ("output", outputs, &mut self.outputs),
        ] {
            for o in overrides {
                let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
                let Some(spec) = specs.iter_mut().find(|s| s.name == o.name) else {
                    return Err(format!(
                        "{key}.name: the model has no {key} '{}' (it has {names:?})",
                        o.name
                    ));
                };
                if let Some(datatype) = &o.datatype {
                    let dt: DataType = datatype
                        .parse()
                        .map_err(|e| format!("{key} '{}'.datatype: {e}", o.name))?;
                    if dt != spec.datatype {
                        return Err(format!(
                            "{key} '{}'.datatype: the model's is {}, not {dt}",
                            o.name, spec.datatype
                        ));
                    }
                }
                if let Some(shape) = &o.shape {
                    let fits = shape.len() == spec.shape.len()
                        && shape
                            .iter()
                            .zip(&spec.shape)
                            .all(|(&want, &have)| want >= -1 && (have < 0 || want == have));
                    if !fits {
                        return Err(format!(
                            "{key} '{}'.shape: {shape:?} does not fit the model's {:?}",
                            o.name, spec.shape
                        ));
                    }
                    spec.shape = shape.clone();
                }
            }
        }
        Ok(self)
    }

    /// Whether every input and output has a dynamic first dimension, so that rows of several
    /// requests can be stacked into one call.
    pub fn batchable(&self) -> bool {
        let dynamic_first = |s: &TensorSpec| s.shape.first().is_some_and(|&d| d < 0);
        !self.inputs.is_empty()
            && self.inputs.iter().all(dynamic_first)
            && self.outputs.iter().all(dynamic_first)
    }

    /// Names of the inputs.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|s| s.name.clone()).collect()
    }

    /// Names of the outputs.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|s| s.name.clone()).collect()
    }

    /// The index of the output called `name`.
    pub fn output_index(&self, name: &str) -> Result<usize, ValidationError> {
        self.outputs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ValidationError::UnknownOutput {
                tensor: name.to_owned(),
                expected: self.output_names(),
            })
    }

    /// Checks `inputs` against the signature and returns them in signature order.
    ///
    /// `max_batch_size` > 0 means the first dimension is a batch that must agree across inputs
    /// and not exceed it; 0 means the model does not batch.
    pub fn validate_inputs(
        &self,
        inputs: Vec<Tensor>,
        max_batch_size: usize,
    ) -> Result<Vec<Tensor>, ValidationError> {
        let order = self.validate_headers(
            inputs
                .iter()
                .map(|t| InputHeader::new(&t.name, t.datatype(), &t.shape)),
            max_batch_size,
        )?;
        let mut slots: Vec<Option<Tensor>> = vec![None; self.inputs.len()];
        for (tensor, ix) in inputs.into_iter().zip(order) {
            slots[ix] = Some(tensor);
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// The check of [`Signature::validate_inputs`] on what a request declares (names,
    /// datatypes, shapes) before any of its data is read, so a decoder can refuse a request
    /// before allocating for it. Answers where each input goes in signature order.
    pub fn validate_headers<'a>(
        &self,
        inputs: impl IntoIterator<Item = InputHeader<'a>>,
        max_batch_size: usize,
    ) -> Result<Vec<usize>, ValidationError> {
        let mut slots: Vec<Option<InputHeader<'a>>> = vec![None; self.inputs.len()];
        let mut order = Vec::with_capacity(self.inputs.len());
        for header in inputs {
            let Some(ix) = self.inputs.iter().position(|s| s.name == header.name) else {
                return Err(ValidationError::UnknownInput {
                    tensor: header.name.to_owned(),
                    expected: self.input_names(),
                });
            };
            if slots[ix].is_some() {
                return Err(ValidationError::DuplicateInput {
                    tensor: header.name.to_owned(),
                });
            }
            slots[ix] = Some(header);
            order.push(ix);
        }
        let mut batch: Option<usize> = None;
        for (spec, slot) in self.inputs.iter().zip(slots) {
            let header = slot.ok_or_else(|| ValidationError::MissingInput {
                tensor: spec.name.clone(),
                expected: self.input_names(),
            })?;
            if header.datatype != spec.datatype {
                return Err(ValidationError::Datatype {
                    tensor: spec.name.clone(),
                    expected: spec.datatype,
                    got: header.datatype,
                });
            }
            if !spec.accepts_shape(header.shape) {
                return Err(ValidationError::Shape {
                    tensor: spec.name.clone(),
                    expected: spec.shape.clone(),
                    got: header.shape.to_vec(),
                });
            }
            if max_batch_size > 0 {
                let rows = header.shape.first().copied().unwrap_or(1);
                match batch {
                    Some(b) if b != rows => {
                        return Err(ValidationError::BatchMismatch {
                            tensor: spec.name.clone(),
                            expected: b,
                            got: rows,
                        });
                    }
                    _ => batch = Some(rows),
                }
                if rows > max_batch_size {
                    return Err(ValidationError::BatchTooLarge {
                        tensor: spec.name.clone(),
                        max: max_batch_size,
                        got: rows,
                    });
                }
            }
        }
        Ok(order)
    }
}

/// What a request declares for one input before its data is read.
#[derive(Clone, Copy, Debug)]
pub struct InputHeader<'a> {
    /// The input's name.
    pub name: &'a str,
    /// Its datatype.
    pub datatype: DataType,
    /// Its shape.
    pub shape: &'a [usize],
}

impl<'a> InputHeader<'a> {
    /// A header.
    pub fn new(name: &'a str, datatype: DataType, shape: &'a [usize]) -> InputHeader<'a> {
        InputHeader {
            name,
            datatype,
            shape,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new("a", DataType::Fp32, vec![-1, 3]),
                TensorSpec::new("b", DataType::Int64, vec![-1]),
            ],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 2])],
        }
    }

    fn a(rows: usize) -> Tensor {
        Tensor::new("a", vec![rows, 3], TensorData::F32(vec![0.0; rows * 3])).unwrap()
    }

    fn b(rows: usize) -> Tensor {
        Tensor::new("b", vec![rows], TensorData::I64(vec![0; rows])).unwrap()
    }

    #[test]
    fn orders_inputs_by_signature() {
        let out = sig().validate_inputs(vec![b(2), a(2)], 8).unwrap();
        assert_eq!(out[0].name, "a");
        assert_eq!(out[1].name, "b");
    }

    #[test]
    fn rejects_unknown_missing_and_duplicate_inputs() {
        let c = Tensor::new("c", vec![1], TensorData::I64(vec![0])).unwrap();
        assert!(matches!(
            sig().validate_inputs(vec![a(1), c], 8),
            Err(ValidationError::UnknownInput { tensor, .. }) if tensor == "c"
        ));
        assert!(matches!(
            sig().validate_inputs(vec![a(1)], 8),
            Err(ValidationError::MissingInput { tensor, .. }) if tensor == "b"
        ));
        assert!(matches!(
            sig().validate_inputs(vec![a(1), a(1)], 8),
            Err(ValidationError::DuplicateInput { tensor }) if tensor == "a"
        ));
    }

    #[test]
    fn rejects_wrong_datatype_and_shape() {
        let wrong_type = Tensor::new("b", vec![1], TensorData::I32(vec![0])).unwrap();
        assert!(matches!(
            sig().validate_inputs(vec![a(1), wrong_type], 8),
            Err(ValidationError::Datatype { .. })
        ));
        let wrong_shape = Tensor::new("a", vec![1, 4], TensorData::F32(vec![0.0; 4])).unwrap();
        let err = sig()
            .validate_inputs(vec![wrong_shape, b(1)], 8)
            .unwrap_err();
        assert!(err.to_string().contains("[1, 4]"), "{err}");
    }

    #[test]
    fn checks_batch_agreement_and_limit() {
        assert!(matches!(
            sig().validate_inputs(vec![a(2), b(3)], 8),
            Err(ValidationError::BatchMismatch {
                expected: 2,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            sig().validate_inputs(vec![a(9), b(9)], 8),
            Err(ValidationError::BatchTooLarge { max: 8, got: 9, .. })
        ));
        assert!(sig().validate_inputs(vec![a(9), b(3)], 0).is_ok());
    }

    #[test]
    fn batchable_needs_dynamic_first_dims_everywhere() {
        assert!(sig().batchable());
        let mut fixed = sig();
        fixed.outputs[0].shape[0] = 1;
        assert!(!fixed.batchable());
    }
}
