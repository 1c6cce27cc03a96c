//! JavaScript values to and from [`Tensor`]s.
//!
//! Inputs: a typed array of the input's own datatype (`Float32Array` for `FP32`,
//! `BigInt64Array` for `INT64`, ...), or a plain array of numbers (converted to the datatype;
//! integers must be whole) or of strings (`BYTES`), or `{data, shape}` with either. A typed
//! array of another element type is refused rather than converted, so a `Float64Array` given to
//! an `FP32` input says so instead of silently rounding.
//!
//! Outputs: `{datatype, shape, data}` with `data` a typed array of the datatype (`FP16`/`BF16`
//! widened to `Float32Array`), an array of booleans for `BOOL`, of strings for `BYTES`.

use ferroserve_core::signature::TensorSpec;
use ferroserve_core::{DataType, Tensor, TensorData};
use ferroserve_loader::EmbeddedModel;
use half::{bf16, f16};
use js_sys::{
    Array, BigInt64Array, BigUint64Array, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Object, Reflect, Uint8Array, Uint16Array, Uint32Array,
};
use wasm_bindgen::{JsCast, JsError, JsValue};

/// The tensor for input `name` from its JavaScript value.
pub(crate) fn input(model: &EmbeddedModel, name: &str, value: &JsValue) -> Result<Tensor, JsError> {
    let spec = model.input(name)?;
    let (data, shape) = split_data_and_shape(name, value)?;
    let data = tensor_data(spec, &data)?;
    let shape = match shape {
        Some(shape) => shape,
        None => model.infer_shape(name, data.len())?,
    };
    Ok(Tensor::new(name, shape, data)?)
}

/// `{data, shape}` apart, or the value itself as data with no shape.
fn split_data_and_shape(
    name: &str,
    value: &JsValue,
) -> Result<(JsValue, Option<Vec<usize>>), JsError> {
    let is_wrapper = value.is_object()
        && !Array::is_array(value)
        && !value.has_type::<js_sys::Uint8Array>()
        && value
            .dyn_ref::<Object>()
            .is_some_and(|o| Object::has_own(o, &"data".into()));
    if !is_wrapper {
        return Ok((value.clone(), None));
    }
    let data = Reflect::get(value, &"data".into()).unwrap_or(JsValue::UNDEFINED);
    let shape = Reflect::get(value, &"shape".into()).unwrap_or(JsValue::UNDEFINED);
    if shape.is_undefined() || shape.is_null() {
        return Ok((data, None));
    }
    let bad = || {
        JsError::new(&format!(
            "input '{name}': shape must be an array of non-negative integers"
        ))
    };
    let dims = shape.dyn_into::<Array>().map_err(|_| bad())?;
    let shape = dims
        .iter()
        .map(|d| {
            d.as_f64()
                .filter(|v| *v >= 0.0 && v.fract() == 0.0 && *v <= u32::MAX as f64)
                .map(|v| v as usize)
                .ok_or_else(bad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((data, Some(shape)))
}

/// The elements of `value` as `spec`'s datatype.
fn tensor_data(spec: &TensorSpec, value: &JsValue) -> Result<TensorData, JsError> {
    let name = &spec.name;
    let datatype = spec.datatype;
    macro_rules! typed_or_numbers {
        ($array:ty, $variant:ident, $convert:expr) => {
            typed_or_numbers!($array, $variant, |v| v, $convert)
        };
        ($array:ty, $variant:ident, $from_typed:expr, $convert:expr) => {
            if let Some(typed) = value.dyn_ref::<$array>() {
                return Ok(TensorData::$variant(
                    typed.to_vec().into_iter().map($from_typed).collect(),
                ));
            } else if let Some(array) = value.dyn_ref::<Array>() {
                let convert = $convert;
                return Ok(TensorData::$variant(
                    numbers(name, datatype, array)?
                        .into_iter()
                        .map(convert)
                        .collect(),
                ));
            }
        };
    }
    match datatype {
        DataType::Fp32 => typed_or_numbers!(Float32Array, F32, |v: f64| v as f32),
        DataType::Fp64 => typed_or_numbers!(Float64Array, F64, |v: f64| v),
        DataType::Fp16 => typed_or_numbers!(Float32Array, F16, f16::from_f32, f16::from_f64),
        DataType::Bf16 => typed_or_numbers!(Float32Array, Bf16, bf16::from_f32, bf16::from_f64),
        DataType::Int8 => typed_or_numbers!(Int8Array, I8, |v: f64| v as i8),
        DataType::Int16 => typed_or_numbers!(Int16Array, I16, |v: f64| v as i16),
        DataType::Int32 => typed_or_numbers!(Int32Array, I32, |v: f64| v as i32),
        DataType::Int64 => typed_or_numbers!(BigInt64Array, I64, |v: f64| v as i64),
        DataType::Uint8 => typed_or_numbers!(Uint8Array, U8, |v: f64| v as u8),
        DataType::Uint16 => typed_or_numbers!(Uint16Array, U16, |v: f64| v as u16),
        DataType::Uint32 => typed_or_numbers!(Uint32Array, U32, |v: f64| v as u32),
        DataType::Uint64 => typed_or_numbers!(BigUint64Array, U64, |v: f64| v as u64),
        DataType::Bool => {
            if let Some(typed) = value.dyn_ref::<Uint8Array>() {
                return Ok(TensorData::Bool(
                    typed.to_vec().into_iter().map(|b| b != 0).collect(),
                ));
            } else if let Some(array) = value.dyn_ref::<Array>() {
                return array
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_bool().ok_or_else(|| {
                            JsError::new(&format!(
                                "input '{name}': element {i} is not a boolean (BOOL)"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map(TensorData::Bool);
            }
        }
        DataType::Bytes => {
            if let Some(array) = value.dyn_ref::<Array>() {
                return array
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if let Some(s) = v.as_string() {
                            Ok(s.into_bytes())
                        } else if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
                            Ok(bytes.to_vec())
                        } else {
                            Err(JsError::new(&format!(
                                "input '{name}': element {i} is neither a string nor a Uint8Array (BYTES)"
                            )))
                        }
                    })
                    .collect::<Result<_, _>>()
                    .map(TensorData::Bytes);
            }
        }
    }
    Err(JsError::new(&format!(
        "input '{name}' is {datatype}: pass {}, not {}",
        expected_js(datatype),
        describe(value)
    )))
}

/// The numbers of a plain array, refusing non-numbers and, for integer datatypes, fractions.
fn numbers(name: &str, datatype: DataType, array: &Array) -> Result<Vec<f64>, JsError> {
    let integer = !matches!(
        datatype,
        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64
    );
    array
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let number = v.as_f64().or_else(|| {
                // BigInts in a plain array, for 64-bit integer inputs.
                v.is_bigint()
                    .then(|| js_sys::Number::from(v.clone()).value_of())
            });
            match number {
                Some(n) if integer && n.fract() != 0.0 => Err(JsError::new(&format!(
                    "input '{name}': element {i} is {n}, but {datatype} needs whole numbers"
                ))),
                Some(n) => Ok(n),
                None => Err(JsError::new(&format!(
                    "input '{name}': element {i} is {}, not a number ({datatype})",
                    describe(&v)
                ))),
            }
        })
        .collect()
}

/// What JavaScript value a datatype takes, for messages.
fn expected_js(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Fp32 | DataType::Fp16 | DataType::Bf16 => "a Float32Array or an array of numbers",
        DataType::Fp64 => "a Float64Array or an array of numbers",
        DataType::Int8 => "an Int8Array or an array of numbers",
        DataType::Int16 => "an Int16Array or an array of numbers",
        DataType::Int32 => "an Int32Array or an array of numbers",
        DataType::Int64 => "a BigInt64Array or an array of numbers",
        DataType::Uint8 => "a Uint8Array or an array of numbers",
        DataType::Uint16 => "a Uint16Array or an array of numbers",
        DataType::Uint32 => "a Uint32Array or an array of numbers",
        DataType::Uint64 => "a BigUint64Array or an array of numbers",
        DataType::Bool => "a Uint8Array or an array of booleans",
        DataType::Bytes => "an array of strings or Uint8Arrays",
    }
}

/// A short description of a JavaScript value's type (`Float64Array`, `string`, ...).
fn describe(value: &JsValue) -> String {
    if let Some(object) = value.dyn_ref::<Object>()
        && let Some(name) = object.constructor().name().as_string()
        && !name.is_empty()
    {
        return name;
    }
    value
        .js_typeof()
        .as_string()
        .unwrap_or_else(|| "a value".to_owned())
}

/// `{datatype, shape, data}` for an output tensor.
pub(crate) fn output(tensor: Tensor) -> Result<JsValue, JsError> {
    let object = Object::new();
    let shape: Array = tensor
        .shape
        .iter()
        .map(|&d| JsValue::from(d as f64))
        .collect();
    let datatype = tensor.datatype();
    let data: JsValue = match tensor.into_data() {
        TensorData::F32(v) => Float32Array::from(v.as_slice()).into(),
        TensorData::F64(v) => Float64Array::from(v.as_slice()).into(),
        TensorData::F16(v) => {
            Float32Array::from(v.iter().map(|x| x.to_f32()).collect::<Vec<_>>().as_slice()).into()
        }
        TensorData::Bf16(v) => {
            Float32Array::from(v.iter().map(|x| x.to_f32()).collect::<Vec<_>>().as_slice()).into()
        }
        TensorData::I8(v) => Int8Array::from(v.as_slice()).into(),
        TensorData::I16(v) => Int16Array::from(v.as_slice()).into(),
        TensorData::I32(v) => Int32Array::from(v.as_slice()).into(),
        TensorData::I64(v) => BigInt64Array::from(v.as_slice()).into(),
        TensorData::U8(v) => Uint8Array::from(v.as_slice()).into(),
        TensorData::U16(v) => Uint16Array::from(v.as_slice()).into(),
        TensorData::U32(v) => Uint32Array::from(v.as_slice()).into(),
        TensorData::U64(v) => BigUint64Array::from(v.as_slice()).into(),
        TensorData::Bool(v) => v
            .into_iter()
            .map(JsValue::from_bool)
            .collect::<Array>()
            .into(),
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| match std::str::from_utf8(b) {
                Ok(s) => JsValue::from(s),
                Err(_) => Uint8Array::from(b).into(),
            })
            .collect::<Array>()
            .into(),
    };
    let set = |key: &str, value: &JsValue| Reflect::set(&object, &key.into(), value);
    set("datatype", &datatype.name().into())
        .and_then(|_| set("shape", &shape))
        .and_then(|_| set("data", &data))
        .map_err(|e| JsError::new(&format!("{e:?}")))?;
    Ok(object.into())
}

/// `[{name, datatype, shape}]` for a signature's tensors.
pub(crate) fn specs(specs: &[TensorSpec]) -> Result<Array, JsError> {
    let array = Array::new();
    for spec in specs {
        let object = Object::new();
        let shape: Array = spec
            .shape
            .iter()
            .map(|&d| JsValue::from(d as f64))
            .collect();
        let set = |key: &str, value: &JsValue| Reflect::set(&object, &key.into(), value);
        set("name", &spec.name.as_str().into())
            .and_then(|_| set("datatype", &spec.datatype.name().into()))
            .and_then(|_| set("shape", &shape))
            .map_err(|e| JsError::new(&format!("{e:?}")))?;
        array.push(&object);
    }
    Ok(array)
}
