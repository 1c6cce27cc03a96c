//! Safe conversions between C's view of a tensor and ferroserve's [`Tensor`]: input bytes
//! decoded into [`TensorData`] (copied, so any alignment does), the KServe V2 layout of BYTES
//! both ways, and [`OwnedTensor`], the library-owned form of specs and outputs that C reads
//! through a [`FerroserveTensor`].

use std::ffi::{CString, c_void};
use std::ptr;

use ferroserve_core::tensor::element_count;
use ferroserve_core::{ByteStrings, DataType, Tensor, TensorData, TensorSpec};
use half::{bf16, f16};

use crate::error::Error;
use crate::types::{FerroserveDataType, FerroserveTensor};

/// The dimensions of input `name`'s `shape`, each checked to be >= 0.
pub fn dimensions(name: &str, shape: &[i64]) -> Result<Vec<usize>, Error> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            usize::try_from(d).map_err(|_| {
                Error::invalid_input(format!(
                    "input '{name}': dimension {i} of shape {shape:?} is negative ({d}): data needs \
                     every dimension >= 0"
                ))
            })
        })
        .collect()
}

/// Input `name` from its C description: `datatype`, `shape` and the `bytes` of its elements
/// (for BYTES, the V2 layout). The elements are copied out of `bytes`.
pub fn decode_tensor(
    name: &str,
    datatype: DataType,
    shape: &[i64],
    bytes: &[u8],
) -> Result<Tensor, Error> {
    let dims = dimensions(name, shape)?;
    let count = element_count(&dims).ok_or_else(|| {
        Error::invalid_input(format!(
            "input '{name}': shape {shape:?} has more elements than memory can address"
        ))
    })?;
    let data = match datatype.size() {
        None => TensorData::Bytes(decode_v2_bytes(name, bytes, count)?),
        Some(size) => {
            let needed = count.checked_mul(size).filter(|&n| n == bytes.len());
            if needed.is_none() {
                return Err(Error::invalid_input(format!(
                    "input '{name}': shape {shape:?} of {datatype} needs {count} elements × {size} \
                     bytes{}, but byte_size is {}",
                    count
                        .checked_mul(size)
                        .map_or(String::new(), |n| format!(" = {n} bytes")),
                    bytes.len()
                )));
            }
            decode_numbers(datatype, bytes)
        }
    };
    Tensor::new(name, dims, data).map_err(|e| Error::invalid_input(e.to_string()))
}

/// The elements of fixed-size `datatype` in `bytes` (whose length is a multiple of the size),
/// native byte order.
fn decode_numbers(datatype: DataType, bytes: &[u8]) -> TensorData {
    macro_rules! numbers {
        ($t:ty) => {
            bytes
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_ne_bytes(c.try_into().expect("a chunk of the type's size")))
                .collect::<Vec<$t>>()
        };
    }
    match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::Uint8 => TensorData::U8(bytes.to_vec()),
        DataType::Uint16 => TensorData::U16(numbers!(u16)),
        DataType::Uint32 => TensorData::U32(numbers!(u32)),
        DataType::Uint64 => TensorData::U64(numbers!(u64)),
        DataType::Int8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Int16 => TensorData::I16(numbers!(i16)),
        DataType::Int32 => TensorData::I32(numbers!(i32)),
        DataType::Int64 => TensorData::I64(numbers!(i64)),
        DataType::Fp16 => TensorData::F16(numbers!(u16).into_iter().map(f16::from_bits).collect()),
        DataType::Bf16 => {
            TensorData::Bf16(numbers!(u16).into_iter().map(bf16::from_bits).collect())
        }
        DataType::Fp32 => TensorData::F32(numbers!(f32)),
        DataType::Fp64 => TensorData::F64(numbers!(f64)),
        DataType::Bytes => unreachable!("BYTES has no fixed size"),
    }
}

/// The `count` elements of BYTES input `name` from the KServe V2 binary layout: each a 4-byte
/// little-endian length, then its bytes; nothing may be left over.
pub fn decode_v2_bytes(name: &str, bytes: &[u8], count: usize) -> Result<ByteStrings, Error> {
    ByteStrings::from_length_prefixed(bytes, count).map_err(|what| {
        Error::invalid_input(format!(
            "input '{name}': BYTES data is not {count} elements in the V2 layout (a 4-byte \
             little-endian length before each): {what}"
        ))
    })
}

/// `elements` in the KServe V2 binary layout (see [`decode_v2_bytes`]). An element longer than
/// a 4-byte length can say is an error naming `name`.
pub fn encode_v2_bytes(name: &str, elements: &ByteStrings) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    elements.write_length_prefixed(&mut out).map_err(|what| {
        Error::new(
            crate::types::FerroserveStatus::PredictFailed,
            format!("output '{name}': {what}"),
        )
    })?;
    Ok(out)
}

/// The elements a library-owned tensor holds.
#[derive(Debug)]
enum Storage {
    /// No data: a signature's description of an input or output.
    None,
    /// Fixed-size elements, as C arrays of their type (never [`TensorData::Bytes`]).
    Native(TensorData),
    /// BYTES elements in the V2 layout.
    V2Bytes(Vec<u8>),
}

/// A tensor owned by the library in the form C reads: its name NUL-terminated, its shape as
/// `int64_t`, its elements as C arrays (BYTES in the V2 layout). Its [`FerroserveTensor`] view
/// points into it, so stays valid as long as it does; moving it moves no heap memory.
#[derive(Debug)]
pub struct OwnedTensor {
    name: CString,
    datatype: FerroserveDataType,
    shape: Vec<i64>,
    data: Storage,
}

/// `name` as a C string, or an error for the rare name with a NUL byte in it.
fn c_name(name: &str, error: fn(String) -> Error) -> Result<CString, Error> {
    CString::new(name).map_err(|_| error(format!("tensor name {name:?} contains a NUL byte")))
}

impl OwnedTensor {
    /// The description of a model's input or output: name, datatype and shape (-1 = dynamic),
    /// no data.
    pub fn from_spec(spec: &TensorSpec) -> Result<OwnedTensor, Error> {
        Ok(OwnedTensor {
            name: c_name(&spec.name, Error::load_failed)?,
            datatype: spec.datatype.into(),
            shape: spec.shape.clone(),
            data: Storage::None,
        })
    }

    /// An output of a prediction, its data kept (numbers) or re-encoded (BYTES).
    pub fn from_tensor(tensor: Tensor) -> Result<OwnedTensor, Error> {
        let failed = |m| Error::new(crate::types::FerroserveStatus::PredictFailed, m);
        let name = c_name(&tensor.name, failed)?;
        let datatype = tensor.datatype().into();
        let shape = tensor
            .shape
            .iter()
            .map(|&d| {
                i64::try_from(d).map_err(|_| {
                    failed(format!(
                        "output '{}': dimension {d} exceeds int64_t",
                        tensor.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tensor_name = tensor.name.clone();
        let data = match tensor.into_data() {
            TensorData::Bytes(elements) => {
                Storage::V2Bytes(encode_v2_bytes(&tensor_name, &elements)?)
            }
            other => Storage::Native(other),
        };
        Ok(OwnedTensor {
            name,
            datatype,
            shape,
            data,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or_default()
    }

    /// The shape.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// The datatype.
    pub fn datatype(&self) -> FerroserveDataType {
        self.datatype
    }

    /// The bytes of the elements (none for a description).
    pub fn byte_size(&self) -> usize {
        match &self.data {
            Storage::None => 0,
            Storage::Native(data) => data.byte_size(),
            Storage::V2Bytes(bytes) => bytes.len(),
        }
    }

    /// Where the elements start, as C reads them (NULL for a description).
    fn data_ptr(&self) -> *const c_void {
        match &self.data {
            Storage::None => ptr::null(),
            Storage::V2Bytes(bytes) => bytes.as_ptr().cast(),
            Storage::Native(data) => match data {
                // `bool` is one byte, 0 or 1: BOOL's layout.
                TensorData::Bool(v) => v.as_ptr().cast(),
                TensorData::U8(v) => v.as_ptr().cast(),
                TensorData::U16(v) => v.as_ptr().cast(),
                TensorData::U32(v) => v.as_ptr().cast(),
                TensorData::U64(v) => v.as_ptr().cast(),
                TensorData::I8(v) => v.as_ptr().cast(),
                TensorData::I16(v) => v.as_ptr().cast(),
                TensorData::I32(v) => v.as_ptr().cast(),
                TensorData::I64(v) => v.as_ptr().cast(),
                // `f16` and `bf16` are `repr(transparent)` over their 16 bits.
                TensorData::F16(v) => v.as_ptr().cast(),
                TensorData::Bf16(v) => v.as_ptr().cast(),
                TensorData::F32(v) => v.as_ptr().cast(),
                TensorData::F64(v) => v.as_ptr().cast(),
                TensorData::Bytes(_) => unreachable!("BYTES outputs are stored in the V2 layout"),
            },
        }
    }

    /// The view C reads; valid while `self` lives.
    pub fn view(&self) -> FerroserveTensor {
        FerroserveTensor {
            name: self.name.as_ptr(),
            datatype: self.datatype,
            shape: self.shape.as_ptr(),
            rank: self.shape.len(),
            data: self.data_ptr(),
            byte_size: self.byte_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FerroserveStatus;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn numbers_decode_from_unaligned_bytes() {
        let mut buffer = vec![0u8];
        buffer.extend(f32_bytes(&[1.5, -2.0, f32::NAN, 4.25]));
        let t = decode_tensor("x", DataType::Fp32, &[2, 2], &buffer[1..]).unwrap();
        assert_eq!(t.shape, [2, 2]);
        let TensorData::F32(v) = t.data() else {
            panic!("{:?}", t.datatype())
        };
        assert_eq!(v[..2], [1.5, -2.0]);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 4.25);

        let ints: Vec<u8> = [-3i64, 1 << 40]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let t = decode_tensor("n", DataType::Int64, &[2], &ints).unwrap();
        assert_eq!(t.data(), &TensorData::I64(vec![-3, 1 << 40]));
        let t = decode_tensor("b", DataType::Bool, &[3], &[0, 1, 2]).unwrap();
        assert_eq!(t.data(), &TensorData::Bool(vec![false, true, true]));
        let half = f16::from_f32(0.5).to_bits().to_ne_bytes();
        let t = decode_tensor("h", DataType::Fp16, &[], &half).unwrap();
        assert_eq!(t.data(), &TensorData::F16(vec![f16::from_f32(0.5)]));
        let t = decode_tensor("e", DataType::Fp64, &[0, 5], &[]).unwrap();
        assert!(t.is_empty());
    }

    #[test]
    fn sizes_that_do_not_fit_the_shape_are_refused_naming_the_tensor() {
        let err = decode_tensor("x", DataType::Fp32, &[2, 2], &f32_bytes(&[1.0; 3])).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::InvalidInput);
        assert!(
            err.message.contains("'x'")
                && err.message.contains("16 bytes")
                && err.message.contains("byte_size is 12"),
            "{}",
            err.message
        );
        let err = decode_tensor("x", DataType::Fp32, &[2, -1], &[]).unwrap_err();
        assert_eq!(err.status, FerroserveStatus::InvalidInput);
        assert!(
            err.message.contains("'x'") && err.message.contains("negative"),
            "{}",
            err.message
        );
        let huge = [i64::MAX, i64::MAX];
        let err = decode_tensor("x", DataType::Fp32, &huge, &[]).unwrap_err();
        assert!(err.message.contains("more elements"), "{}", err.message);
        let err = decode_tensor("x", DataType::Fp64, &[i64::MAX / 4], &[]).unwrap_err();
        assert!(err.message.contains("byte_size is 0"), "{}", err.message);
    }

    #[test]
    fn bytes_use_the_v2_layout_both_ways() {
        let elements: ByteStrings = vec![b"cat".to_vec(), vec![], vec![0, 255]].into();
        let encoded = encode_v2_bytes("s", &elements).unwrap();
        assert_eq!(encoded, b"\x03\0\0\0cat\0\0\0\0\x02\0\0\0\x00\xff");
        assert_eq!(decode_v2_bytes("s", &encoded, 3).unwrap(), elements);
        let t = decode_tensor("s", DataType::Bytes, &[1, 3], &encoded).unwrap();
        assert_eq!(t.data(), &TensorData::Bytes(elements));

        for (bytes, count, problem) in [
            (&encoded[..], 2, "left over"),
            (&encoded[..], 4, "cut off"),
            (&encoded[..encoded.len() - 1], 3, "only 1 remain"),
            (&b"\x01\0"[..], 1, "cut off"),
        ] {
            let err = decode_v2_bytes("s", bytes, count).unwrap_err();
            assert_eq!(err.status, FerroserveStatus::InvalidInput);
            assert!(
                err.message.contains("'s'") && err.message.contains(problem),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn outputs_are_viewed_as_c_arrays() {
        let t = Tensor::new("y", vec![2], TensorData::F64(vec![0.25, -1.0])).unwrap();
        let owned = OwnedTensor::from_tensor(t).unwrap();
        let view = owned.view();
        assert_eq!(view.datatype, FerroserveDataType::Fp64);
        assert_eq!((view.rank, view.byte_size), (1, 16));
        assert_eq!(owned.shape(), [2]);
        assert_eq!(owned.name(), "y");
        assert_eq!(view.data.align_offset(std::mem::align_of::<f64>()), 0);

        let words = Tensor::new(
            "w",
            vec![2],
            TensorData::Bytes(vec![b"ab".to_vec(), b"c".to_vec()].into()),
        );
        let owned = OwnedTensor::from_tensor(words.unwrap()).unwrap();
        assert_eq!(owned.datatype(), FerroserveDataType::Bytes);
        assert_eq!(owned.byte_size(), 4 + 2 + 4 + 1);

        let spec = TensorSpec::new("input", DataType::Fp32, vec![-1, 4]);
        let owned = OwnedTensor::from_spec(&spec).unwrap();
        let view = owned.view();
        assert!(view.data.is_null());
        assert_eq!((view.rank, view.byte_size), (2, 0));
        assert_eq!(owned.shape(), [-1, 4]);
    }
}
