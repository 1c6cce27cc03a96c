//! The plain C types of the ABI: [`FerroserveStatus`], [`FerroserveDataType`] and
//! [`FerroserveTensor`], and their mapping to ferroserve's own [`DataType`].

use std::ffi::{c_char, c_void};

use ferroserve_core::DataType;

/// What a call returned. Every function that can fail returns one of these; on anything but
/// `FERROSERVE_STATUS_OK`, `ferroserve_last_error()` says why on the calling thread.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerroserveStatus {
    /// Success.
    Ok = 0,
    /// The call itself was malformed: a NULL pointer where one is required, a string that is not
    /// UTF-8, an unknown format name or datatype code, an index out of range, an unknown output
    /// name.
    InvalidArgument = 1,
    /// The model did not load: the file is unreadable, not a model of its format, or needs
    /// something this build lacks.
    LoadFailed = 2,
    /// The inputs do not fit the model's signature or are inconsistent (a name the model does not
    /// have, a missing input, a wrong datatype or shape, `byte_size` not matching the shape, a
    /// negative dimension, malformed BYTES data). The message names the tensor.
    InvalidInput = 3,
    /// The model failed while computing.
    PredictFailed = 4,
    /// A Rust panic was caught at the boundary of the library; only this call failed. (A build
    /// with `panic = "abort"` aborts the process instead.)
    Panic = 5,
}

/// A tensor element type, mirroring the KServe V2 datatypes. Numeric data is laid out as a
/// C array of the element type (the platform's native byte order, little-endian on every
/// supported target); BOOL is one byte per element, 0 or 1; FP16 and BF16 are the 16-bit
/// patterns as `uint16_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FerroserveDataType {
    /// `BOOL`: one byte per element, 0 or 1.
    Bool = 0,
    /// `UINT8`: `uint8_t`.
    Uint8 = 1,
    /// `UINT16`: `uint16_t`.
    Uint16 = 2,
    /// `UINT32`: `uint32_t`.
    Uint32 = 3,
    /// `UINT64`: `uint64_t`.
    Uint64 = 4,
    /// `INT8`: `int8_t`.
    Int8 = 5,
    /// `INT16`: `int16_t`.
    Int16 = 6,
    /// `INT32`: `int32_t`.
    Int32 = 7,
    /// `INT64`: `int64_t`.
    Int64 = 8,
    /// `FP16`: IEEE 754 half precision, as its 16 bits.
    Fp16 = 9,
    /// `BF16`: bfloat16, as its 16 bits.
    Bf16 = 10,
    /// `FP32`: `float`.
    Fp32 = 11,
    /// `FP64`: `double`.
    Fp64 = 12,
    /// `BYTES`: variable-length byte strings in the KServe V2 binary layout: each element is a
    /// 4-byte little-endian length followed by that many bytes, elements back to back (no
    /// alignment: read the lengths with `memcpy`).
    Bytes = 13,
}

impl FerroserveDataType {
    /// The datatype whose code is `code`, if there is one: C may pass any `int32_t`.
    pub fn from_code(code: i32) -> Option<FerroserveDataType> {
        use FerroserveDataType as T;
        Some(match code {
            0 => T::Bool,
            1 => T::Uint8,
            2 => T::Uint16,
            3 => T::Uint32,
            4 => T::Uint64,
            5 => T::Int8,
            6 => T::Int16,
            7 => T::Int32,
            8 => T::Int64,
            9 => T::Fp16,
            10 => T::Bf16,
            11 => T::Fp32,
            12 => T::Fp64,
            13 => T::Bytes,
            _ => return None,
        })
    }
}

impl From<DataType> for FerroserveDataType {
    fn from(datatype: DataType) -> FerroserveDataType {
        use FerroserveDataType as T;
        match datatype {
            DataType::Bool => T::Bool,
            DataType::Uint8 => T::Uint8,
            DataType::Uint16 => T::Uint16,
            DataType::Uint32 => T::Uint32,
            DataType::Uint64 => T::Uint64,
            DataType::Int8 => T::Int8,
            DataType::Int16 => T::Int16,
            DataType::Int32 => T::Int32,
            DataType::Int64 => T::Int64,
            DataType::Fp16 => T::Fp16,
            DataType::Bf16 => T::Bf16,
            DataType::Fp32 => T::Fp32,
            DataType::Fp64 => T::Fp64,
            DataType::Bytes => T::Bytes,
        }
    }
}

impl From<FerroserveDataType> for DataType {
    fn from(datatype: FerroserveDataType) -> DataType {
        use FerroserveDataType as T;
        match datatype {
            T::Bool => DataType::Bool,
            T::Uint8 => DataType::Uint8,
            T::Uint16 => DataType::Uint16,
            T::Uint32 => DataType::Uint32,
            T::Uint64 => DataType::Uint64,
            T::Int8 => DataType::Int8,
            T::Int16 => DataType::Int16,
            T::Int32 => DataType::Int32,
            T::Int64 => DataType::Int64,
            T::Fp16 => DataType::Fp16,
            T::Bf16 => DataType::Bf16,
            T::Fp32 => DataType::Fp32,
            T::Fp64 => DataType::Fp64,
            T::Bytes => DataType::Bytes,
        }
    }
}

/// A tensor as C sees it: a view of memory owned by someone else.
///
/// As an input to `ferroserve_model_predict`, the caller owns everything it points to, which
/// needs to stay valid only for the duration of the call (the library copies the data).
///
/// Filled in by `ferroserve_model_input`, `ferroserve_model_output`, `ferroserve_outputs_get`
/// or `ferroserve_outputs_find`, the library owns everything it points to: it stays valid until
/// the model or outputs handle it came from is freed. Do not write through it or free it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FerroserveTensor {
    /// The tensor's name: a NUL-terminated UTF-8 string.
    pub name: *const c_char,
    /// The element type.
    pub datatype: FerroserveDataType,
    /// `rank` dimensions, outermost first. In a model's input and output descriptions, -1 marks
    /// a dynamic dimension (the batch, usually); in data, every dimension is >= 0. May be NULL
    /// when `rank` is 0 (a scalar).
    pub shape: *const i64,
    /// The number of dimensions.
    pub rank: usize,
    /// The elements, row-major (see `FerroserveDataType` for the layout of each type). NULL in
    /// a model's input and output descriptions; may be NULL when `byte_size` is 0. Input data
    /// needs no particular alignment; output data is aligned for its element type.
    pub data: *const c_void,
    /// Bytes at `data`: the element count times the element size, or for BYTES the whole V2
    /// layout, length prefixes included. 0 in a model's input and output descriptions.
    pub byte_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_round_trips_through_its_code() {
        for (code, datatype) in DataType::ALL.into_iter().enumerate() {
            let c = FerroserveDataType::from(datatype);
            assert_eq!(c as i32, code as i32, "{datatype}");
            assert_eq!(FerroserveDataType::from_code(code as i32), Some(c));
            assert_eq!(DataType::from(c), datatype);
        }
        assert_eq!(FerroserveDataType::from_code(14), None);
        assert_eq!(FerroserveDataType::from_code(-1), None);
    }
}
