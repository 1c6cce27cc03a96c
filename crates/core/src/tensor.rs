//! [`Tensor`]: a named, shaped, typed, contiguous row-major buffer.
//!
//! Conversions to and from protocol forms (JSON, the binary extension, protobuf) and engine
//! tensors live next to the protocol or engine, not here.

use half::{bf16, f16};

use crate::datatype::DataType;
use crate::error::ValidationError;

/// The elements of a tensor, one variant per [`DataType`], row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `BOOL` elements.
    Bool(Vec<bool>),
    /// `UINT8` elements.
    U8(Vec<u8>),
    /// `UINT16` elements.
    U16(Vec<u16>),
    /// `UINT32` elements.
    U32(Vec<u32>),
    /// `UINT64` elements.
    U64(Vec<u64>),
    /// `INT8` elements.
    I8(Vec<i8>),
    /// `INT16` elements.
    I16(Vec<i16>),
    /// `INT32` elements.
    I32(Vec<i32>),
    /// `INT64` elements.
    I64(Vec<i64>),
    /// `FP16` elements.
    F16(Vec<f16>),
    /// `BF16` elements.
    Bf16(Vec<bf16>),
    /// `FP32` elements.
    F32(Vec<f32>),
    /// `FP64` elements.
    F64(Vec<f64>),
    /// `BYTES` elements: each one a byte string of its own length.
    Bytes(Vec<Vec<u8>>),
}

/// Runs `$body` with `$v` bound to the inner `Vec` of whichever variant `$data` is.
#[macro_export]
macro_rules! dispatch_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::Bf16($v) => $body,
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// The datatype of the elements.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::Uint8,
            TensorData::U16(_) => DataType::Uint16,
            TensorData::U32(_) => DataType::Uint32,
            TensorData::U64(_) => DataType::Uint64,
            TensorData::I8(_) => DataType::Int8,
            TensorData::I16(_) => DataType::Int16,
            TensorData::I32(_) => DataType::Int32,
            TensorData::I64(_) => DataType::Int64,
            TensorData::F16(_) => DataType::Fp16,
            TensorData::Bf16(_) => DataType::Bf16,
            TensorData::F32(_) => DataType::Fp32,
            TensorData::F64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        dispatch_tensor_data!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty buffer of `datatype` with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::Uint16 => TensorData::U16(Vec::with_capacity(capacity)),
            DataType::Uint32 => TensorData::U32(Vec::with_capacity(capacity)),
            DataType::Uint64 => TensorData::U64(Vec::with_capacity(capacity)),
            DataType::Int8 => TensorData::I8(Vec::with_capacity(capacity)),
            DataType::Int16 => TensorData::I16(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::Fp16 => TensorData::F16(Vec::with_capacity(capacity)),
            DataType::Bf16 => TensorData::Bf16(Vec::with_capacity(capacity)),
            DataType::Fp32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::F64(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Bytes this buffer takes in the binary tensor form (BYTES: 4-byte length prefix each).
    pub fn byte_size(&self) -> usize {
        match self {
            TensorData::Bytes(v) => v.iter().map(|b| 4 + b.len()).sum(),
            other => other.len() * other.datatype().size().unwrap_or(0),
        }
    }
}

/// A named tensor: the unit a [`crate::Model`] consumes and produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The tensor's name in the model's signature.
    pub name: String,
    /// Dimensions, outermost first; the first is the batch when the model batches.
    pub shape: Vec<usize>,
    /// The elements, row-major; always exactly `shape.iter().product()` of them.
    data: TensorData,
}

impl Tensor {
    /// A tensor, checking that `data` has exactly as many elements as `shape` implies.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Tensor, ValidationError> {
        let name = name.into();
        let expected = element_count(&shape).ok_or_else(|| ValidationError::ShapeOverflow {
            tensor: name.clone(),
            shape: shape.clone(),
        })?;
        if expected != data.len() {
            return Err(ValidationError::DataLength {
                tensor: name,
                shape,
                expected,
                got: data.len(),
            });
        }
        Ok(Tensor { name, shape, data })
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The first dimension, if the tensor has any.
    pub fn batch_size(&self) -> Option<usize> {
        self.shape.first().copied()
    }
}

/// The number of elements of `shape`, or `None` if it overflows `usize`.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_data_length_not_matching_shape() {
        let err = Tensor::new("x", vec![2, 3], TensorData::F32(vec![0.0; 5])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("'x'") && msg.contains("6") && msg.contains("5"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_overflowing_shape() {
        let err = Tensor::new("x", vec![usize::MAX, 3], TensorData::F32(vec![])).unwrap_err();
        assert!(matches!(err, ValidationError::ShapeOverflow { .. }));
    }

    #[test]
    fn scalar_has_one_element() {
        let t = Tensor::new("s", vec![], TensorData::I64(vec![7])).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.batch_size(), None);
    }

    #[test]
    fn byte_size_counts_length_prefixes() {
        let d = TensorData::Bytes(vec![b"ab".to_vec(), b"".to_vec()]);
        assert_eq!(d.byte_size(), 4 + 2 + 4);
        assert_eq!(TensorData::F64(vec![0.0; 3]).byte_size(), 24);
    }
}
