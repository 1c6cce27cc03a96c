//! Output tensors → Arrow arrays: the Arrow type of each output column and its values,
//! scored rows in place and null for the rows not scored.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, StringArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::DataType as Arrow;
use ferroserve_core::{DataType, TensorData};

/// The Arrow type of an output column.
pub(super) fn arrow_type(datatype: DataType) -> Arrow {
    match datatype {
        DataType::Bool => Arrow::Boolean,
        DataType::Uint8 => Arrow::UInt8,
        DataType::Uint16 => Arrow::UInt16,
        DataType::Uint32 => Arrow::UInt32,
        DataType::Uint64 => Arrow::UInt64,
        DataType::Int8 => Arrow::Int8,
        DataType::Int16 => Arrow::Int16,
        DataType::Int32 => Arrow::Int32,
        DataType::Int64 => Arrow::Int64,
        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 => Arrow::Float32,
        DataType::Fp64 => Arrow::Float64,
        DataType::Bytes => Arrow::Utf8,
    }
}

/// Column `k` of an output with `width` values a row, over every input row: row `r` is
/// scored row `place[r]` of the concatenated `parts`, or null.
pub(super) fn output_array(
    datatype: DataType,
    parts: &[&TensorData],
    width: usize,
    k: usize,
    place: &[Option<usize>],
) -> ArrayRef {
    // Values of scored row i, column k, across the parts of several calls.
    let mut offsets = Vec::with_capacity(parts.len());
    let mut total = 0;
    for p in parts {
        offsets.push(total);
        total += p.len() / width.max(1);
    }
    let locate = |i: usize| {
        let part = offsets.partition_point(|&o| o <= i) - 1;
        (parts[part], (i - offsets[part]) * width + k)
    };
    macro_rules! column {
        ($array:ty, $variant:ident, $conv:expr) => {
            Arc::new(
                place
                    .iter()
                    .map(|p| {
                        p.map(|i| match locate(i) {
                            (TensorData::$variant(d), at) => $conv(&d[at]),
                            _ => unreachable!("an output keeps its datatype"),
                        })
                    })
                    .collect::<$array>(),
            ) as ArrayRef
        };
    }
    match datatype {
        DataType::Bool => column!(BooleanArray, Bool, |v: &bool| *v),
        DataType::Uint8 => column!(UInt8Array, U8, |v: &u8| *v),
        DataType::Uint16 => column!(UInt16Array, U16, |v: &u16| *v),
        DataType::Uint32 => column!(UInt32Array, U32, |v: &u32| *v),
        DataType::Uint64 => column!(UInt64Array, U64, |v: &u64| *v),
        DataType::Int8 => column!(Int8Array, I8, |v: &i8| *v),
        DataType::Int16 => column!(Int16Array, I16, |v: &i16| *v),
        DataType::Int32 => column!(Int32Array, I32, |v: &i32| *v),
        DataType::Int64 => column!(Int64Array, I64, |v: &i64| *v),
        DataType::Fp16 => column!(Float32Array, F16, |v: &half::f16| v.to_f32()),
        DataType::Bf16 => column!(Float32Array, Bf16, |v: &half::bf16| v.to_f32()),
        DataType::Fp32 => column!(Float32Array, F32, |v: &f32| *v),
        DataType::Fp64 => column!(Float64Array, F64, |v: &f64| *v),
        DataType::Bytes => Arc::new(
            place
                .iter()
                .map(|p| {
                    p.map(|i| match locate(i) {
                        (TensorData::Bytes(d), at) => String::from_utf8_lossy(&d[at]).into_owned(),
                        _ => unreachable!("an output keeps its datatype"),
                    })
                })
                .collect::<StringArray>(),
        ),
    }
}
