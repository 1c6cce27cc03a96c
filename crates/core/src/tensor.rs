//! [`Tensor`]: a named, shaped, typed, contiguous row-major buffer.
//!
//! Conversions to and from protocol forms (JSON, the binary extension, protobuf) and engine
//! tensors live next to the protocol or engine, not here.

use half::{bf16, f16};

use crate::byte_strings::ByteStrings;
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
    /// `BYTES` elements: byte strings of their own lengths, in one buffer.
    Bytes(ByteStrings),
}

/// Runs `$body` with `$v` bound to the inner `Vec` (a [`ByteStrings`] for BYTES) of whichever
/// variant `$data` is.
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
    /// Appends the elements of `other`, which must be of the same datatype (checked by the
    /// callers; a mismatch is a bug and panics).
    fn extend_from(&mut self, other: &TensorData) {
        macro_rules! extend {
            ($($v:ident),*) => {
                match (self, other) {
                    $((TensorData::$v(a), TensorData::$v(b)) => a.extend_from_slice(b),)*
                    (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from(b),
                    (a, b) => panic!("cannot append {:?} to {:?}", b.datatype(), a.datatype()),
                }
            };
        }
        extend!(
            Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
        );
    }

    /// A copy of elements `start..end`.
    fn slice(&self, start: usize, end: usize) -> TensorData {
        macro_rules! slice {
            ($($v:ident),*) => {
                match self {
                    $(TensorData::$v(a) => TensorData::$v(a[start..end].to_vec()),)*
                    TensorData::Bytes(a) => TensorData::Bytes(a.slice(start, end)),
                }
            };
        }
        slice!(
            Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
        )
    }

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
            DataType::Bytes => TensorData::Bytes(ByteStrings::with_capacity(capacity, 0)),
        }
    }

    /// `len` zero elements of `datatype` (`false`, `0`, empty strings).
    pub fn zeros(datatype: DataType, len: usize) -> TensorData {
        let mut data = TensorData::with_capacity(datatype, len);
        macro_rules! fill {
            ($($v:ident),*) => {
                match &mut data {
                    $(TensorData::$v(a) => a.resize(len, Default::default()),)*
                    TensorData::Bytes(a) => a.push_empty(len),
                }
            };
        }
        fill!(
            Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, Bf16, F32, F64
        );
        data
    }

    /// Element `i` as a number (booleans as 0 and 1); `None` for BYTES or past the end.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        Some(match self {
            TensorData::Bool(v) => f64::from(u8::from(*v.get(i)?)),
            TensorData::U8(v) => f64::from(*v.get(i)?),
            TensorData::U16(v) => f64::from(*v.get(i)?),
            TensorData::U32(v) => f64::from(*v.get(i)?),
            TensorData::U64(v) => *v.get(i)? as f64,
            TensorData::I8(v) => f64::from(*v.get(i)?),
            TensorData::I16(v) => f64::from(*v.get(i)?),
            TensorData::I32(v) => f64::from(*v.get(i)?),
            TensorData::I64(v) => *v.get(i)? as f64,
            TensorData::F16(v) => f64::from(v.get(i)?.to_f32()),
            TensorData::Bf16(v) => f64::from(v.get(i)?.to_f32()),
            TensorData::F32(v) => f64::from(*v.get(i)?),
            TensorData::F64(v) => *v.get(i)?,
            TensorData::Bytes(_) => return None,
        })
    }

    /// `values` as elements of `datatype`, converted as `as` does (NaN becomes 0 in integer
    /// types); `None` for BYTES.
    pub fn from_f64(datatype: DataType, values: &[f64]) -> Option<TensorData> {
        Some(match datatype {
            DataType::Bool => TensorData::Bool(values.iter().map(|&v| v != 0.0).collect()),
            DataType::Uint8 => TensorData::U8(values.iter().map(|&v| v as u8).collect()),
            DataType::Uint16 => TensorData::U16(values.iter().map(|&v| v as u16).collect()),
            DataType::Uint32 => TensorData::U32(values.iter().map(|&v| v as u32).collect()),
            DataType::Uint64 => TensorData::U64(values.iter().map(|&v| v as u64).collect()),
            DataType::Int8 => TensorData::I8(values.iter().map(|&v| v as i8).collect()),
            DataType::Int16 => TensorData::I16(values.iter().map(|&v| v as i16).collect()),
            DataType::Int32 => TensorData::I32(values.iter().map(|&v| v as i32).collect()),
            DataType::Int64 => TensorData::I64(values.iter().map(|&v| v as i64).collect()),
            DataType::Fp16 => TensorData::F16(values.iter().map(|&v| f16::from_f64(v)).collect()),
            DataType::Bf16 => TensorData::Bf16(values.iter().map(|&v| bf16::from_f64(v)).collect()),
            DataType::Fp32 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
            DataType::Fp64 => TensorData::F64(values.to_vec()),
            DataType::Bytes => return None,
        })
    }

    /// Bytes this buffer takes in the binary tensor form (BYTES: 4-byte length prefix each).
    pub fn byte_size(&self) -> usize {
        match self {
            TensorData::Bytes(v) => 4 * v.len() + v.total_bytes(),
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

    /// The tensors of `parts` (the same name, datatype and dimensions after the first, each at
    /// least one-dimensional) stacked along the first dimension: what a dynamic batcher sends
    /// the model.
    pub fn concat_rows(parts: &[Tensor]) -> Result<Tensor, ValidationError> {
        let first = parts.first().ok_or_else(|| ValidationError::Batch {
            message: "no tensors to batch".to_owned(),
        })?;
        let (name, inner) = (&first.name, first.shape.get(1..).unwrap_or(&[]));
        let mut rows = 0usize;
        for part in parts {
            if part.shape.is_empty()
                || part.shape[1..] != *inner
                || part.datatype() != first.datatype()
                || part.name != *name
            {
                return Err(ValidationError::Batch {
                    message: format!(
                        "cannot batch '{}' {:?} {} with '{name}' {:?} {}",
                        part.name,
                        part.shape,
                        part.datatype().name(),
                        first.shape,
                        first.datatype().name()
                    ),
                });
            }
            rows += part.shape[0];
        }
        let mut data =
            TensorData::with_capacity(first.datatype(), parts.iter().map(Tensor::len).sum());
        for part in parts {
            data.extend_from(&part.data);
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::new(name.clone(), shape, data)
    }

    /// Splits this tensor along its first dimension into consecutive pieces of `rows[i]` rows:
    /// the inverse of [`Tensor::concat_rows`], handing each request its part of a batch's output.
    pub fn split_rows(self, rows: &[usize]) -> Result<Vec<Tensor>, ValidationError> {
        let total: usize = rows.iter().sum();
        if self.shape.first() != Some(&total) {
            return Err(ValidationError::Batch {
                message: format!(
                    "output '{}' has shape {:?}, but the batch has {total} rows",
                    self.name, self.shape
                ),
            });
        }
        let row_len: usize = self.shape[1..].iter().product();
        let mut pieces = Vec::with_capacity(rows.len());
        let mut start = 0;
        for &n in rows {
            let mut shape = self.shape.clone();
            shape[0] = n;
            let data = self.data.slice(start * row_len, (start + n) * row_len);
            pieces.push(Tensor::new(self.name.clone(), shape, data)?);
            start += n;
        }
        Ok(pieces)
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
    fn concat_then_split_gives_back_the_parts() {
        let a = Tensor::new("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new("x", vec![2, 2], TensorData::F32(vec![3.0, 4.0, 5.0, 6.0])).unwrap();
        let batch = Tensor::concat_rows(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(batch.shape, [3, 2]);
        assert_eq!(batch.split_rows(&[1, 2]).unwrap(), vec![a, b]);
        let words = Tensor::new(
            "s",
            vec![2],
            TensorData::Bytes(vec![b"a".to_vec(), vec![]].into()),
        );
        let words = words.unwrap();
        let twice = Tensor::concat_rows(&[words.clone(), words.clone()]).unwrap();
        assert_eq!(
            twice.split_rows(&[2, 2]).unwrap(),
            vec![words.clone(), words]
        );
    }

    #[test]
    fn refuses_to_batch_different_shapes_or_split_the_wrong_rows() {
        let a = Tensor::new("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new("x", vec![1, 3], TensorData::F32(vec![3.0; 3])).unwrap();
        let err = Tensor::concat_rows(&[a.clone(), b])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 3]") && err.contains("[1, 2]"), "{err}");
        let err = a.split_rows(&[2]).unwrap_err().to_string();
        assert!(err.contains("2 rows"), "{err}");
    }

    #[test]
    fn byte_size_counts_length_prefixes() {
        let d = TensorData::Bytes(vec![b"ab".to_vec(), b"".to_vec()].into());
        assert_eq!(d.byte_size(), 4 + 2 + 4);
        assert_eq!(TensorData::F64(vec![0.0; 3]).byte_size(), 24);
    }
}
