//! TensorFlow Serving's REST bodies: the row (`instances`) and columnar (`inputs`) request
//! formats turned into tensors, and outputs back into `predictions` / `outputs`; the
//! `examples` of `:classify` and `:regress`. Shapes come from the nesting of the JSON lists, as
//! TF Serving infers them; strings are UTF-8 or `{"b64": "..."}`.

use base64::Engine;
use ferroserve_core::{DataType, Signature, Tensor, TensorData};
use half::{bf16, f16};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::protocol::v2::codec::ProtocolError;

/// Which request format was used, so the answer comes back in the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// `instances`: one entry per row; answered as `predictions`.
    Row,
    /// `inputs`: whole tensors; answered as `outputs`.
    Columnar,
}

fn error(message: impl Into<String>) -> ProtocolError {
    ProtocolError::Json {
        message: message.into(),
    }
}

/// The body of `:predict` as tensors named after `signature`'s inputs.
pub(super) fn decode_predict(
    body: &Value,
    signature: &Signature,
) -> Result<(Vec<Tensor>, Format), ProtocolError> {
    let Value::Object(body) = body else {
        return Err(error(
            "the body must be a JSON object with \"instances\" or \"inputs\"",
        ));
    };
    if let Some(name) = body.get("signature_name").and_then(Value::as_str)
        && !name.is_empty()
        && name != "serving_default"
    {
        return Err(error(format!(
            "signature_name '{name}': the model has one signature, \"serving_default\""
        )));
    }
    match (body.get("instances"), body.get("inputs")) {
        (Some(_), Some(_)) => Err(error("give either \"instances\" or \"inputs\", not both")),
        (Some(Value::Array(rows)), None) => Ok((decode_rows(rows, signature)?, Format::Row)),
        (Some(_), None) => Err(error("\"instances\" must be a list, one entry per row")),
        (None, Some(inputs)) => Ok((decode_columns(inputs, signature)?, Format::Columnar)),
        (None, None) => Err(error(
            "the body needs \"instances\" (rows) or \"inputs\" (columns)",
        )),
    }
}

/// Whether `v` is a list of named inputs rather than a value (a `{"b64": ...}` is a value).
fn is_named(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !(m.len() == 1 && m.contains_key("b64")))
}

/// `instances`: each entry one row, of the single input or an object of every input.
fn decode_rows(rows: &[Value], signature: &Signature) -> Result<Vec<Tensor>, ProtocolError> {
    let named = rows.first().is_some_and(is_named);
    signature
        .inputs
        .iter()
        .map(|spec| {
            let values: Vec<&Value> = if named {
                rows.iter()
                    .enumerate()
                    .map(|(i, row)| {
                        row.get(&spec.name).ok_or_else(|| {
                            error(format!("instances[{i}] has no input '{}'", spec.name))
                        })
                    })
                    .collect::<Result<_, _>>()?
            } else if signature.inputs.len() == 1 {
                rows.iter().collect()
            } else {
                return Err(error(format!(
                    "the model has {} inputs: each instance must be an object naming them",
                    signature.inputs.len()
                )));
            };
            let mut shape = vec![values.len()];
            let mut leaves = Vec::new();
            let row_shape = values.first().map(|v| shape_of(v)).unwrap_or_default();
            for (i, v) in values.iter().enumerate() {
                flatten(v, &row_shape, &mut leaves)
                    .map_err(|m| error(format!("instances[{i}] '{}': {m}", spec.name)))?;
            }
            shape.extend(row_shape);
            tensor(&spec.name, spec.datatype, shape, &leaves)
        })
        .collect()
}

/// `inputs`: the single input's value, or an object of every input's.
fn decode_columns(inputs: &Value, signature: &Signature) -> Result<Vec<Tensor>, ProtocolError> {
    signature
        .inputs
        .iter()
        .map(|spec| {
            let value = if is_named(inputs) {
                inputs
                    .get(&spec.name)
                    .ok_or_else(|| error(format!("inputs has no input '{}'", spec.name)))?
            } else if signature.inputs.len() == 1 {
                inputs
            } else {
                return Err(error(format!(
                    "the model has {} inputs: \"inputs\" must be an object naming them",
                    signature.inputs.len()
                )));
            };
            let shape = shape_of(value);
            let mut leaves = Vec::new();
            flatten(value, &shape, &mut leaves)
                .map_err(|m| error(format!("inputs '{}': {m}", spec.name)))?;
            tensor(&spec.name, spec.datatype, shape, &leaves)
        })
        .collect()
}

/// `examples` (with `context` features shared by all) as one row each of every input.
pub(super) fn decode_examples(
    body: &Value,
    signature: &Signature,
) -> Result<Vec<Tensor>, ProtocolError> {
    let Some(Value::Array(examples)) = body.get("examples") else {
        return Err(error(
            "the body needs \"examples\": a list of feature objects",
        ));
    };
    let empty = Map::new();
    let context = body
        .get("context")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let rows: Vec<Value> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let Value::Object(features) = e else {
                return Err(error(format!(
                    "examples[{i}] must be an object of features"
                )));
            };
            let mut row = context.clone();
            row.extend(features.clone());
            Ok(Value::Object(row))
        })
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Err(error("\"examples\" is empty"));
    }
    decode_rows(&rows, signature)
}

/// The dimensions implied by the nesting of `v` (following first elements).
fn shape_of(v: &Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut at = v;
    while let Value::Array(items) = at {
        shape.push(items.len());
        match items.first() {
            Some(first) => at = first,
            None => break,
        }
    }
    shape
}

/// Appends the scalars of `v`, checking that it has exactly `shape`.
fn flatten<'a>(v: &'a Value, shape: &[usize], out: &mut Vec<&'a Value>) -> Result<(), String> {
    match (v, shape.split_first()) {
        (Value::Array(items), Some((&n, rest))) if items.len() == n => {
            items.iter().try_for_each(|item| flatten(item, rest, out))
        }
        (Value::Array(items), _) => Err(format!(
            "ragged lists: a list of {} where the first rows imply {shape:?}",
            items.len()
        )),
        (_, None) => {
            out.push(v);
            Ok(())
        }
        (_, Some(_)) => Err(format!(
            "a scalar where the first rows imply a list {shape:?}"
        )),
    }
}

/// The scalars `leaves` as a tensor of `datatype`.
fn tensor(
    name: &str,
    datatype: DataType,
    shape: Vec<usize>,
    leaves: &[&Value],
) -> Result<Tensor, ProtocolError> {
    let bad = |v: &Value| {
        error(format!(
            "input '{name}': {v} is not a {} value",
            tf_dtype(datatype)
        ))
    };
    macro_rules! ints {
        ($variant:ident, $t:ty) => {
            TensorData::$variant(
                leaves
                    .iter()
                    .map(|v| {
                        v.as_i64()
                            .and_then(|i| <$t>::try_from(i).ok())
                            .or_else(|| v.as_u64().and_then(|u| <$t>::try_from(u).ok()))
                            .ok_or_else(|| bad(v))
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    let floats = || -> Result<Vec<f64>, ProtocolError> {
        leaves
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| bad(v)))
            .collect()
    };
    let data = match datatype {
        DataType::Bool => TensorData::Bool(
            leaves
                .iter()
                .map(|v| v.as_bool().ok_or_else(|| bad(v)))
                .collect::<Result<_, _>>()?,
        ),
        DataType::Uint8 => ints!(U8, u8),
        DataType::Uint16 => ints!(U16, u16),
        DataType::Uint32 => ints!(U32, u32),
        DataType::Uint64 => ints!(U64, u64),
        DataType::Int8 => ints!(I8, i8),
        DataType::Int16 => ints!(I16, i16),
        DataType::Int32 => ints!(I32, i32),
        DataType::Int64 => ints!(I64, i64),
        DataType::Fp16 => TensorData::F16(floats()?.into_iter().map(f16::from_f64).collect()),
        DataType::Bf16 => TensorData::Bf16(floats()?.into_iter().map(bf16::from_f64).collect()),
        DataType::Fp32 => TensorData::F32(floats()?.into_iter().map(|f| f as f32).collect()),
        DataType::Fp64 => TensorData::F64(floats()?),
        DataType::Bytes => TensorData::Bytes(
            leaves
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_bytes().to_vec()),
                    Value::Object(m) => m
                        .get("b64")
                        .and_then(Value::as_str)
                        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                        .ok_or_else(|| bad(v)),
                    _ => Err(bad(v)),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Tensor::new(name, shape, data)?)
}

/// TensorFlow's name of a datatype (`DT_FLOAT`, ...).
pub(super) fn tf_dtype(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Bool => "DT_BOOL",
        DataType::Uint8 => "DT_UINT8",
        DataType::Uint16 => "DT_UINT16",
        DataType::Uint32 => "DT_UINT32",
        DataType::Uint64 => "DT_UINT64",
        DataType::Int8 => "DT_INT8",
        DataType::Int16 => "DT_INT16",
        DataType::Int32 => "DT_INT32",
        DataType::Int64 => "DT_INT64",
        DataType::Fp16 => "DT_HALF",
        DataType::Bf16 => "DT_BFLOAT16",
        DataType::Fp32 => "DT_FLOAT",
        DataType::Fp64 => "DT_DOUBLE",
        DataType::Bytes => "DT_STRING",
    }
}

/// The `:predict` answer in `format`.
pub(super) fn encode_predict(outputs: &[Tensor], format: Format) -> Result<Vec<u8>, ProtocolError> {
    struct Body<'a>(&'a [Tensor], Format);
    impl Serialize for Body<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(1))?;
            match (self.1, self.0) {
                (Format::Row, [only]) => map.serialize_entry("predictions", &Rows(only))?,
                (Format::Row, outputs) => {
                    map.serialize_entry("predictions", &NamedRows(outputs))?
                }
                (Format::Columnar, [only]) => map.serialize_entry("outputs", &whole(only))?,
                (Format::Columnar, outputs) => {
                    map.serialize_entry("outputs", &Named(outputs))?;
                }
            }
            map.end()
        }
    }
    if format == Format::Row
        && let Some(t) = outputs.iter().find(|t| t.shape.is_empty())
    {
        return Err(error(format!(
            "output '{}' is a scalar: ask in the columnar format (\"inputs\")",
            t.name
        )));
    }
    serde_json::to_vec(&Body(outputs, format)).map_err(|e| error(e.to_string()))
}

/// A whole tensor as nested lists.
fn whole(t: &Tensor) -> Nested<'_> {
    Nested {
        data: t.data(),
        shape: &t.shape,
        start: 0,
    }
}

/// Elements `start..` of `data` nested as `shape`.
struct Nested<'a> {
    data: &'a TensorData,
    shape: &'a [usize],
    start: usize,
}

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((&n, inner)) = self.shape.split_first() else {
            return scalar(self.data, self.start, s);
        };
        let stride: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Nested {
                data: self.data,
                shape: inner,
                start: self.start + i * stride,
            })?;
        }
        seq.end()
    }
}

/// Element `i` of `data` as a JSON scalar (strings as UTF-8, else `{"b64": ...}`).
fn scalar<S: Serializer>(data: &TensorData, i: usize, s: S) -> Result<S::Ok, S::Error> {
    match data {
        TensorData::Bool(v) => s.serialize_bool(v[i]),
        TensorData::U8(v) => s.serialize_u8(v[i]),
        TensorData::U16(v) => s.serialize_u16(v[i]),
        TensorData::U32(v) => s.serialize_u32(v[i]),
        TensorData::U64(v) => s.serialize_u64(v[i]),
        TensorData::I8(v) => s.serialize_i8(v[i]),
        TensorData::I16(v) => s.serialize_i16(v[i]),
        TensorData::I32(v) => s.serialize_i32(v[i]),
        TensorData::I64(v) => s.serialize_i64(v[i]),
        TensorData::F16(v) => s.serialize_f32(v[i].to_f32()),
        TensorData::Bf16(v) => s.serialize_f32(v[i].to_f32()),
        TensorData::F32(v) => s.serialize_f32(v[i]),
        TensorData::F64(v) => s.serialize_f64(v[i]),
        TensorData::Bytes(v) => match std::str::from_utf8(&v[i]) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "b64",
                    &base64::engine::general_purpose::STANDARD.encode(&v[i]),
                )?;
                map.end()
            }
        },
    }
}

/// One output's rows: `[row 0, row 1, ...]`.
struct Rows<'a>(&'a Tensor);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let (n, inner) = t.shape.split_first().expect("scalars are refused earlier");
        let stride: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(*n))?;
        for i in 0..*n {
            seq.serialize_element(&Nested {
                data: t.data(),
                shape: inner,
                start: i * stride,
            })?;
        }
        seq.end()
    }
}

/// Several outputs' rows: `[{name: row 0, ...}, ...]`.
struct NamedRows<'a>(&'a [Tensor]);

impl Serialize for NamedRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self
            .0
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(0);
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Row(self.0, i))?;
        }
        seq.end()
    }
}

/// Row `i` of every output.
struct Row<'a>(&'a [Tensor], usize);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for t in self.0 {
            let inner = &t.shape[1..];
            let stride: usize = inner.iter().product();
            map.serialize_entry(
                &t.name,
                &Nested {
                    data: t.data(),
                    shape: inner,
                    start: self.1 * stride,
                },
            )?;
        }
        map.end()
    }
}

/// Several whole outputs: `{name: nested lists, ...}`.
struct Named<'a>(&'a [Tensor]);

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for t in self.0 {
            map.serialize_entry(&t.name, &whole(t))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::TensorSpec;
    use serde_json::json;

    fn signature(inputs: &[(&str, DataType)]) -> Signature {
        Signature {
            inputs: inputs
                .iter()
                .map(|(n, d)| TensorSpec::new(*n, *d, vec![-1, -1]))
                .collect(),
            outputs: vec![],
        }
    }

    #[test]
    fn row_and_columnar_bodies_give_the_same_tensor() {
        let sig = signature(&[("x", DataType::Fp32)]);
        let (rows, f) = decode_predict(&json!({"instances": [[1, 2], [3, 4.5]]}), &sig).unwrap();
        assert_eq!(f, Format::Row);
        let (cols, f) =
            decode_predict(&json!({"inputs": {"x": [[1, 2], [3, 4.5]]}}), &sig).unwrap();
        assert_eq!(f, Format::Columnar);
        assert_eq!(rows, cols);
        assert_eq!(rows[0].shape, [2, 2]);
        assert_eq!(rows[0].data(), &TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]));
    }

    #[test]
    fn named_instances_feed_several_inputs_and_b64_strings_decode() {
        let sig = signature(&[("n", DataType::Int64), ("s", DataType::Bytes)]);
        let body = json!({"instances": [{"n": 1, "s": "a"}, {"n": 2, "s": {"b64": "/w=="}}]});
        let (t, _) = decode_predict(&body, &sig).unwrap();
        assert_eq!(t[0].data(), &TensorData::I64(vec![1, 2]));
        assert_eq!(
            t[1].data(),
            &TensorData::Bytes(vec![b"a".to_vec(), vec![0xff]].into())
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let sig = signature(&[("x", DataType::Int32)]);
        for (body, needle) in [
            (json!({"instances": [[1, 2], [3]]}), "ragged"),
            (json!({"instances": [[1.5]]}), "1.5 is not a DT_INT32"),
            (json!({"rows": []}), "\"instances\""),
            (json!({"instances": [], "inputs": []}), "not both"),
            (
                json!({"signature_name": "other", "instances": []}),
                "serving_default",
            ),
            (json!({"instances": [{"y": 1}]}), "no input 'x'"),
        ] {
            let err = decode_predict(&body, &sig).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn outputs_come_back_in_the_request_format() {
        let y = Tensor::new("y", vec![2, 2], TensorData::F32(vec![0.1, 0.2, 0.3, 0.4])).unwrap();
        let l = Tensor::new("l", vec![2], TensorData::I64(vec![1, 0])).unwrap();
        let text = |o: &[Tensor], f| String::from_utf8(encode_predict(o, f).unwrap()).unwrap();
        assert_eq!(
            text(std::slice::from_ref(&y), Format::Row),
            r#"{"predictions":[[0.1,0.2],[0.3,0.4]]}"#
        );
        assert_eq!(
            text(&[l.clone(), y.clone()], Format::Row),
            r#"{"predictions":[{"l":1,"y":[0.1,0.2]},{"l":0,"y":[0.3,0.4]}]}"#
        );
        assert_eq!(
            text(&[l, y], Format::Columnar),
            r#"{"outputs":{"l":[1,0],"y":[[0.1,0.2],[0.3,0.4]]}}"#
        );
    }
}
