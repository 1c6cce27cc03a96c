//! Tensors between ferroserve's [`Tensor`] and ONNX Runtime's values.
//!
//! Numeric inputs are lent to ONNX Runtime without a copy (`TensorRef` over the request's
//! buffer); BYTES inputs become ONNX string tensors (UTF-8, copied, as ORT stores them).
//! Outputs are copied once out of ONNX Runtime's memory into the response tensor.

use std::borrow::Cow;

use ferroserve_core::{DataType, ModelError, Tensor, TensorData};
use ort::session::SessionInputValue;
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef};

/// The name this engine reports in errors.
pub(crate) const ENGINE: &str = "onnxruntime";

fn execution(e: impl std::fmt::Display) -> ModelError {
    ModelError::Execution {
        message: format!("ONNX Runtime: {e}"),
    }
}

/// The V2 datatype of an ONNX Runtime element type, if it has one.
pub(crate) fn datatype_of(t: TensorElementType) -> Option<DataType> {
    use TensorElementType as E;
    Some(match t {
        E::Bool => DataType::Bool,
        E::Uint8 => DataType::Uint8,
        E::Uint16 => DataType::Uint16,
        E::Uint32 => DataType::Uint32,
        E::Uint64 => DataType::Uint64,
        E::Int8 => DataType::Int8,
        E::Int16 => DataType::Int16,
        E::Int32 => DataType::Int32,
        E::Int64 => DataType::Int64,
        E::Float16 => DataType::Fp16,
        E::Bfloat16 => DataType::Bf16,
        E::Float32 => DataType::Fp32,
        E::Float64 => DataType::Fp64,
        E::String => DataType::Bytes,
        _ => return None,
    })
}

/// `tensor` as a session input named after it, borrowing its buffer where ORT allows.
pub(crate) fn to_ort(tensor: &Tensor) -> Result<(Cow<'_, str>, SessionInputValue<'_>), ModelError> {
    fn view<'a, T: PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static>(
        shape: &'a [usize],
        v: &'a [T],
    ) -> Result<SessionInputValue<'a>, ModelError> {
        TensorRef::from_array_view((shape, v))
            .map(SessionInputValue::from)
            .map_err(execution)
    }
    let shape = tensor.shape.as_slice();
    let value = match tensor.data() {
        TensorData::Bool(v) => view(shape, v)?,
        TensorData::U8(v) => view(shape, v)?,
        TensorData::U16(v) => view(shape, v)?,
        TensorData::U32(v) => view(shape, v)?,
        TensorData::U64(v) => view(shape, v)?,
        TensorData::I8(v) => view(shape, v)?,
        TensorData::I16(v) => view(shape, v)?,
        TensorData::I32(v) => view(shape, v)?,
        TensorData::I64(v) => view(shape, v)?,
        TensorData::F16(v) => view(shape, v)?,
        TensorData::Bf16(v) => view(shape, v)?,
        TensorData::F32(v) => view(shape, v)?,
        TensorData::F64(v) => view(shape, v)?,
        TensorData::Bytes(v) => {
            let strings = crate::strings::utf8_strings(&tensor.name, v)?;
            ort::value::Tensor::from_string_array((shape, strings.as_slice()))
                .map(SessionInputValue::from)
                .map_err(execution)?
        }
    };
    Ok((Cow::Borrowed(tensor.name.as_str()), value))
}

/// Copies the ONNX Runtime output `value` into a ferroserve tensor called `name`.
pub(crate) fn from_ort(name: &str, value: &DynValue) -> Result<Tensor, ModelError> {
    let bad = |reason: String| ModelError::Output {
        tensor: name.to_owned(),
        reason,
    };
    fn copy<T: PrimitiveTensorElementType + Clone>(
        value: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>), ort::Error> {
        let (shape, data) = value.try_extract_tensor::<T>()?;
        Ok((dims(shape), data.to_vec()))
    }
    fn dims(shape: &[i64]) -> Vec<usize> {
        shape.iter().map(|&d| d.max(0) as usize).collect()
    }
    let element = value.dtype().tensor_type().ok_or_else(|| {
        bad(format!(
            "is a {}, not a tensor; V2 carries tensors only",
            value.dtype()
        ))
    })?;
    use TensorElementType as E;
    let (shape, data) = match element {
        E::Bool => copy::<bool>(value).map(|(s, d)| (s, TensorData::Bool(d))),
        E::Uint8 => copy::<u8>(value).map(|(s, d)| (s, TensorData::U8(d))),
        E::Uint16 => copy::<u16>(value).map(|(s, d)| (s, TensorData::U16(d))),
        E::Uint32 => copy::<u32>(value).map(|(s, d)| (s, TensorData::U32(d))),
        E::Uint64 => copy::<u64>(value).map(|(s, d)| (s, TensorData::U64(d))),
        E::Int8 => copy::<i8>(value).map(|(s, d)| (s, TensorData::I8(d))),
        E::Int16 => copy::<i16>(value).map(|(s, d)| (s, TensorData::I16(d))),
        E::Int32 => copy::<i32>(value).map(|(s, d)| (s, TensorData::I32(d))),
        E::Int64 => copy::<i64>(value).map(|(s, d)| (s, TensorData::I64(d))),
        E::Float16 => copy::<half::f16>(value).map(|(s, d)| (s, TensorData::F16(d))),
        E::Bfloat16 => copy::<half::bf16>(value).map(|(s, d)| (s, TensorData::Bf16(d))),
        E::Float32 => copy::<f32>(value).map(|(s, d)| (s, TensorData::F32(d))),
        E::Float64 => copy::<f64>(value).map(|(s, d)| (s, TensorData::F64(d))),
        E::String => value.try_extract_strings().map(|(s, d)| {
            (
                dims(s),
                TensorData::Bytes(d.into_iter().map(String::into_bytes).collect()),
            )
        }),
        other => return Err(bad(format!("ONNX type {other:?} has no V2 counterpart"))),
    }
    .map_err(|e| bad(e.to_string()))?;
    Tensor::new(name, shape, data).map_err(|e| bad(e.to_string()))
}
