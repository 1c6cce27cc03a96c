//! Tensors between ferroserve's [`Tensor`] and tract's.
//!
//! BYTES elements become tract `String`s (ONNX string tensors), which must be UTF-8. BF16 has no
//! tract counterpart and is rejected with a typed error.

use ferroserve_core::{ModelError, Tensor, TensorData};
use tract_onnx::prelude::{DatumType, Tensor as TractTensor, tract_ndarray};

use crate::strings::utf8_strings;

/// The name this runtime reports in errors.
pub(crate) const RUNTIME: &str = "onnx";

/// Copies a ferroserve tensor into a tract tensor.
pub(crate) fn to_tract(tensor: &Tensor) -> Result<TractTensor, ModelError> {
    fn array<T: tract_onnx::prelude::Datum + Clone>(
        shape: &[usize],
        v: &[T],
    ) -> Result<TractTensor, ModelError> {
        tract_ndarray::ArrayD::from_shape_vec(shape, v.to_vec())
            .map(TractTensor::from)
            .map_err(|e| ModelError::Execution {
                message: e.to_string(),
            })
    }
    let shape = &tensor.shape;
    match tensor.data() {
        TensorData::Bool(v) => array(shape, v),
        TensorData::U8(v) => array(shape, v),
        TensorData::U16(v) => array(shape, v),
        TensorData::U32(v) => array(shape, v),
        TensorData::U64(v) => array(shape, v),
        TensorData::I8(v) => array(shape, v),
        TensorData::I16(v) => array(shape, v),
        TensorData::I32(v) => array(shape, v),
        TensorData::I64(v) => array(shape, v),
        TensorData::F16(v) => array(shape, v),
        TensorData::F32(v) => array(shape, v),
        TensorData::F64(v) => array(shape, v),
        TensorData::Bytes(v) => array(shape, &utf8_strings(&tensor.name, v)?),
        TensorData::Bf16(_) => Err(ModelError::UnsupportedDatatype {
            tensor: tensor.name.clone(),
            datatype: tensor.datatype(),
            runtime: RUNTIME,
        }),
    }
}

/// Copies a tract tensor into a ferroserve tensor called `name`.
pub(crate) fn from_tract(name: &str, t: &TractTensor) -> Result<Tensor, ModelError> {
    fn elems<T: tract_onnx::prelude::Datum + Clone>(
        name: &str,
        t: &TractTensor,
    ) -> Result<Vec<T>, ModelError> {
        let view = t
            .to_plain_array_view::<T>()
            .map_err(|e| ModelError::Output {
                tensor: name.to_owned(),
                reason: format!("{e:#}"),
            })?;
        Ok(view.iter().cloned().collect())
    }
    let data = match t.datum_type() {
        DatumType::Bool => TensorData::Bool(elems(name, t)?),
        DatumType::U8 => TensorData::U8(elems(name, t)?),
        DatumType::U16 => TensorData::U16(elems(name, t)?),
        DatumType::U32 => TensorData::U32(elems(name, t)?),
        DatumType::U64 => TensorData::U64(elems(name, t)?),
        DatumType::I8 => TensorData::I8(elems(name, t)?),
        DatumType::I16 => TensorData::I16(elems(name, t)?),
        DatumType::I32 => TensorData::I32(elems(name, t)?),
        DatumType::I64 => TensorData::I64(elems(name, t)?),
        DatumType::F16 => TensorData::F16(elems(name, t)?),
        DatumType::F32 => TensorData::F32(elems(name, t)?),
        DatumType::F64 => TensorData::F64(elems(name, t)?),
        DatumType::String => TensorData::Bytes(
            elems::<String>(name, t)?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        ),
        DatumType::TDim => {
            let cast = t.cast_to::<i64>().map_err(|e| ModelError::Output {
                tensor: name.to_owned(),
                reason: format!("{e:#}"),
            })?;
            TensorData::I64(elems(name, &cast)?)
        }
        other => {
            return Err(ModelError::Output {
                tensor: name.to_owned(),
                reason: format!("tract datatype {other:?} has no V2 counterpart"),
            });
        }
    };
    Tensor::new(name, t.shape().to_vec(), data).map_err(|e| ModelError::Output {
        tensor: name.to_owned(),
        reason: e.to_string(),
    })
}

/// The V2 datatype of a tract datum type, if it has one.
pub(crate) fn datatype_of(dt: DatumType) -> Option<ferroserve_core::DataType> {
    use ferroserve_core::DataType as D;
    Some(match dt {
        DatumType::Bool => D::Bool,
        DatumType::U8 => D::Uint8,
        DatumType::U16 => D::Uint16,
        DatumType::U32 => D::Uint32,
        DatumType::U64 => D::Uint64,
        DatumType::I8 => D::Int8,
        DatumType::I16 => D::Int16,
        DatumType::I32 => D::Int32,
        DatumType::I64 | DatumType::TDim => D::Int64,
        DatumType::F16 => D::Fp16,
        DatumType::F32 => D::Fp32,
        DatumType::F64 => D::Fp64,
        DatumType::String => D::Bytes,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_supported_type() {
        let cases = vec![
            TensorData::Bool(vec![true, false]),
            TensorData::U8(vec![1, 2]),
            TensorData::I64(vec![-1, 5]),
            TensorData::F16(vec![half::f16::from_f32(0.5), half::f16::from_f32(-2.0)]),
            TensorData::F32(vec![0.25, -1.5]),
            TensorData::F64(vec![1e300, -0.0]),
            TensorData::Bytes(vec![b"ab".to_vec(), "é".as_bytes().to_vec()].into()),
        ];
        for data in cases {
            let t = Tensor::new("x", vec![2, 1], data).unwrap();
            let back = from_tract("x", &to_tract(&t).unwrap()).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn rejects_bf16_naming_the_tensor() {
        let t = Tensor::new("x", vec![1], TensorData::Bf16(vec![half::bf16::ONE])).unwrap();
        let err = to_tract(&t).unwrap_err();
        assert!(err.to_string().contains("'x'") && err.to_string().contains("BF16"));
    }

    #[test]
    fn rejects_non_utf8_bytes() {
        let t = Tensor::new(
            "s",
            vec![1],
            TensorData::Bytes(vec![vec![0xff, 0xfe]].into()),
        )
        .unwrap();
        assert!(to_tract(&t).unwrap_err().to_string().contains("UTF-8"));
    }
}
