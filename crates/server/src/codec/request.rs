//! Decoding a V2 inference request body: the JSON header, then (binary tensor data extension)
//! the bytes of each input that declares `binary_data_size`, in the order of `inputs`.

use std::collections::HashMap;

use ferroserve_core::tensor::element_count;
use ferroserve_core::{DataType, InputHeader, Signature, Tensor, TensorSpec, ValidationError};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ProtocolError, RequestedOutput, V2Request, binary, json};

/// Limits checked while decoding, before any large allocation.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Most elements one tensor may have.
    pub max_tensor_elements: usize,
    /// Most bytes the decoded input tensors of one request may take together (their binary
    /// form; BYTES elements count their length plus a 4-byte prefix). A JSON body decodes to
    /// no more than the largest binary body allowed, so one request holds at most about twice
    /// `--max-request-bytes`.
    pub max_decoded_bytes: usize,
}

impl RequestLimits {
    /// The bytes inputs will take decoded, each given as its datatype, element count and
    /// bytes on the wire, checked against [`RequestLimits::max_decoded_bytes`]: fixed-size
    /// elements their size, BYTES a 4-byte length per element and at most the bytes sent.
    pub(crate) fn check_decoded(
        &self,
        inputs: impl IntoIterator<Item = (DataType, usize, usize)>,
    ) -> Result<usize, ProtocolError> {
        let bytes = inputs
            .into_iter()
            .map(|(datatype, count, wire)| match datatype.size() {
                Some(size) => count.saturating_mul(size),
                None => count.saturating_mul(4).saturating_add(wire),
            })
            .fold(0usize, usize::saturating_add);
        if bytes > self.max_decoded_bytes {
            return Err(ProtocolError::DecodedTooLarge {
                bytes,
                limit: self.max_decoded_bytes,
            });
        }
        Ok(bytes)
    }
}

/// What a request must fit, checked from its JSON header before any tensor data is decoded:
/// the served version's signature and batch limit (0 = not checked here).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    /// The signature the inputs must match (names, datatypes, shapes).
    pub signature: &'a Signature,
    /// Largest batch; 0 leaves the batch to be checked where the request runs (composites).
    pub max_batch_size: usize,
}

impl<'a> Expected<'a> {
    /// What a request to `version` must fit: a model's signature and batch limit; for a
    /// composite only its signature (its targets check the batch).
    pub(crate) fn of(version: &'a crate::repository::LoadedVersion) -> Expected<'a> {
        Expected {
            signature: &version.signature,
            max_batch_size: match version.executor.composite() {
                Some(_) => 0,
                None => version.max_batch_size,
            },
        }
    }
}

/// Most inputs, or outputs, one request may list (JSON and gRPC).
pub(crate) const MAX_TENSORS: usize = 4096;
/// Most dimensions a shape may have (numpy's limit).
pub(crate) const MAX_RANK: usize = 64;
/// Most parameters one `parameters` object may hold.
pub(crate) const MAX_PARAMETERS: usize = 64;

/// The JSON header as sent. Its lists and maps are bounded while they are read, and parameter
/// values must be scalars (as the protocol defines them), so a header of a few megabytes cannot
/// become a tree many times its size.
#[derive(Debug, Deserialize)]
struct RawRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, deserialize_with = "parameters")]
    parameters: HashMap<String, Value>,
    #[serde(borrow, deserialize_with = "bounded::<_, _, MAX_TENSORS>")]
    inputs: Vec<RawInput<'a>>,
    #[serde(default, deserialize_with = "bounded::<_, _, MAX_TENSORS>")]
    outputs: Vec<RawOutput>,
}

#[derive(Debug, Deserialize)]
struct RawInput<'a> {
    name: String,
    #[serde(deserialize_with = "bounded::<_, _, MAX_RANK>")]
    shape: Vec<u64>,
    datatype: String,
    #[serde(default, deserialize_with = "parameters")]
    parameters: HashMap<String, Value>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct RawOutput {
    name: String,
    #[serde(default, deserialize_with = "parameters")]
    parameters: HashMap<String, Value>,
}

/// A JSON list of at most `N` elements: reading stops with an error at element `N + 1`.
fn bounded<'de, D, T, const N: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {N} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(serde::de::Error::custom(format_args!(
                        "more than {N} entries"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded::<T, N>(std::marker::PhantomData))
}

/// A `parameters` object: at most [`MAX_PARAMETERS`] entries, each a boolean, number or
/// string (a list or an object is refused where it starts, unread).
fn parameters<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashMap<String, Value>, D::Error> {
    use serde::de::{Error, MapAccess, Visitor};
    struct Scalar;
    impl<'de> serde::de::DeserializeSeed<'de> for Scalar {
        type Value = Value;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl Visitor<'_> for Scalar {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a boolean, number or string")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            Ok(v.into())
        }
    }
    struct Parameters;
    impl<'de> Visitor<'de> for Parameters {
        type Value = HashMap<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an object of at most {MAX_PARAMETERS} parameters")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = HashMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.len() == MAX_PARAMETERS {
                    return Err(A::Error::custom(format_args!(
                        "more than {MAX_PARAMETERS} parameters"
                    )));
                }
                let value = map.next_value_seed(Scalar)?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Parameters)
}

/// Where an input's data is: its JSON `data`, or a range of the binary part.
#[derive(Debug)]
enum Source<'a> {
    Json(&'a RawValue),
    Binary(std::ops::Range<usize>),
}

impl Source<'_> {
    /// Bytes the data takes on the wire.
    fn len(&self) -> usize {
        match self {
            Source::Json(raw) => raw.get().len(),
            Source::Binary(range) => range.len(),
        }
    }
}

/// Decodes a body whose first `header_length` bytes are JSON (all of it when `None`). Every
/// input's name, datatype and shape are checked against `expected`, and the bytes its data
/// will take against `limits`, before any data is decoded.
pub(crate) fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
    limits: RequestLimits,
    expected: Option<Expected<'_>>,
) -> Result<V2Request, ProtocolError> {
    plan_request(body, header_length, limits, expected)?.decode()
}

/// A request whose JSON header was read and checked (names, shapes, limits) and whose tensor
/// data is not decoded yet, so the caller can reserve the memory it will take first.
#[derive(Debug)]
pub(crate) struct PlannedRequest<'a> {
    raw: RawRequest<'a>,
    declared: Vec<(DataType, Vec<usize>, usize, Source<'a>)>,
    binary: &'a [u8],
    decoded_bytes: usize,
}

/// The first half of [`decode_request`]: reads the JSON header and checks every input against
/// `expected` and `limits`; nothing is allocated for tensor data.
pub(crate) fn plan_request<'a>(
    body: &'a [u8],
    header_length: Option<usize>,
    limits: RequestLimits,
    expected: Option<Expected<'_>>,
) -> Result<PlannedRequest<'a>, ProtocolError> {
    let split = header_length.unwrap_or(body.len());
    if split > body.len() {
        return Err(ProtocolError::Header {
            header: "Inference-Header-Content-Length",
            message: format!("{split} is larger than the body ({} bytes)", body.len()),
        });
    }
    let (header, binary) = body.split_at(split);
    let raw: RawRequest<'_> =
        super::json_document(header).map_err(|message| ProtocolError::Json { message })?;

    // Every input's header first: datatype, shape and where its data is.
    let mut declared = Vec::with_capacity(raw.inputs.len());
    let mut at = 0usize;
    for (ix, input) in raw.inputs.iter().enumerate() {
        let name = &input.name;
        let (datatype, shape, count) = input_header(name, &input.datatype, &input.shape, limits)?;
        let binary_size = input
            .parameters
            .get("binary_data_size")
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    ProtocolError::tensor(
                        name,
                        format!(
                            "parameter binary_data_size must be a non-negative integer, got {v}"
                        ),
                    )
                })
            })
            .transpose()?;
        let source = match (binary_size, input.data) {
            (Some(_), Some(_)) => {
                return Err(ProtocolError::tensor(
                    name,
                    "has both JSON data and binary_data_size; give one",
                ));
            }
            (Some(size), None) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > binary.len() - at {
                    return Err(ProtocolError::BinaryTruncated {
                        tensor: name.clone(),
                        needed: size,
                        available: binary.len() - at,
                    });
                }
                at += size;
                Source::Binary(at - size..at)
            }
            (None, Some(raw)) => Source::Json(raw),
            (None, None) => {
                return Err(ProtocolError::Json {
                    message: format!(
                        "inputs[{ix}] ('{name}'): no data and no binary_data_size parameter"
                    ),
                });
            }
        };
        declared.push((datatype, shape, count, source));
    }
    if let Some(expected) = expected {
        expected.signature.validate_headers(
            raw.inputs
                .iter()
                .zip(&declared)
                .map(|(input, (datatype, shape, ..))| {
                    InputHeader::new(&input.name, *datatype, shape)
                }),
            expected.max_batch_size,
        )?;
    }
    let decoded = limits.check_decoded(
        declared
            .iter()
            .map(|(datatype, _, count, source)| (*datatype, *count, source.len())),
    )?;

    if at < binary.len() {
        return Err(ProtocolError::BinaryTrailing {
            extra: binary.len() - at,
        });
    }
    Ok(PlannedRequest {
        raw,
        declared,
        binary,
        decoded_bytes: decoded,
    })
}

impl PlannedRequest<'_> {
    /// Bytes the inputs will take once decoded (their binary form).
    pub(crate) fn decoded_bytes(&self) -> usize {
        self.decoded_bytes
    }

    /// The second half of [`decode_request`]: decodes the tensor data.
    pub(crate) fn decode(self) -> Result<V2Request, ProtocolError> {
        let PlannedRequest {
            mut raw,
            declared,
            binary,
            ..
        } = self;
        let mut inputs = Vec::with_capacity(raw.inputs.len());
        for (input, (datatype, shape, count, source)) in
            std::mem::take(&mut raw.inputs).into_iter().zip(declared)
        {
            let name = input.name;
            let data = match source {
                Source::Binary(range) => binary::decode(&name, datatype, &binary[range], count)?,
                Source::Json(raw) => json::parse_data(&name, datatype, raw, count)?,
            };
            inputs.push(Tensor::new(name, shape, data)?);
        }
        finish(raw, inputs)
    }
}

/// The request around its decoded `inputs`: outputs asked for and parameters.
fn finish(raw: RawRequest<'_>, inputs: Vec<Tensor>) -> Result<V2Request, ProtocolError> {
    let mut outputs = Vec::with_capacity(raw.outputs.len());
    for output in raw.outputs {
        if output.parameters.contains_key("classification") {
            return Err(ProtocolError::UnsupportedParameter {
                parameter: format!("outputs['{}'].classification", output.name),
                message: "the classification extension is not implemented; request the raw output"
                    .into(),
            });
        }
        let binary = bool_parameter(&output.parameters, "binary_data", &output.name)?;
        outputs.push(RequestedOutput {
            name: output.name,
            binary,
        });
    }
    let binary_output =
        bool_parameter(&raw.parameters, "binary_data_output", "request")?.unwrap_or(false);
    Ok(V2Request {
        id: raw.id,
        inputs,
        outputs,
        binary_output,
        priority: uint_parameter(&raw.parameters, "priority")?,
        timeout: uint_parameter(&raw.parameters, "timeout")?
            .filter(|&us| us > 0)
            .map(std::time::Duration::from_micros),
        parameters: raw.parameters.into_iter().collect(),
    })
}

/// The datatype, shape and element count input `name` declares, checked against `limits`
/// before anything is allocated for its data. Every V2 front-end (HTTP JSON, gRPC) reads its
/// inputs' headers through this; `D` is the wire's dimension type (`u64` in JSON, `i64` in
/// protobuf).
pub(crate) fn input_header<D: Copy + std::fmt::Debug>(
    name: &str,
    datatype: &str,
    dims: &[D],
    limits: RequestLimits,
) -> Result<(DataType, Vec<usize>, usize), ProtocolError>
where
    usize: TryFrom<D>,
{
    let datatype: DataType = datatype
        .parse()
        .map_err(|e| ProtocolError::tensor(name, format!("{e}")))?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ProtocolError::tensor(
                name,
                format!("shape {dims:?} has a dimension that is negative or too large"),
            )
        })?;
    let count = element_count(&shape)
        .ok_or_else(|| ProtocolError::tensor(name, format!("shape {shape:?} is too large")))?;
    if count > limits.max_tensor_elements {
        return Err(ValidationError::TooManyElements {
            tensor: name.to_owned(),
            limit: limits.max_tensor_elements,
            got: count,
        }
        .into());
    }
    Ok((datatype, shape, count))
}

/// A raw binary request (`Inference-Header-Content-Length: 0`): the body is the bytes of the
/// model's single input, batch 1, and every output comes back binary.
pub(crate) fn decode_raw_binary(
    spec: &TensorSpec,
    batched: bool,
    body: &[u8],
    limits: RequestLimits,
) -> Result<V2Request, ProtocolError> {
    let mut shape: Vec<i64> = spec.shape.clone();
    if batched && !shape.is_empty() {
        shape[0] = 1;
    }
    let unknown: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] < 0).collect();
    let fixed: usize = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    match (unknown.as_slice(), spec.datatype.size()) {
        ([], _) => {}
        ([axis], Some(size)) if fixed > 0 && body.len().is_multiple_of(fixed * size) => {
            shape[*axis] = (body.len() / (fixed * size)) as i64;
        }
        ([_], None) if fixed == 1 => {
            // One BYTES element holding the whole body.
            let shape: Vec<usize> = shape.iter().map(|&d| d.max(1) as usize).collect();
            let data = ferroserve_core::TensorData::Bytes([body].into_iter().collect());
            return Ok(V2Request {
                inputs: vec![Tensor::new(spec.name.clone(), shape, data)?],
                binary_output: true,
                ..V2Request::default()
            });
        }
        _ => {
            return Err(ProtocolError::tensor(
                &spec.name,
                format!(
                    "a raw binary request (Inference-Header-Content-Length: 0) needs an input shape with at most one variable dimension besides the batch; the model's is {:?} and the body has {} bytes",
                    spec.shape,
                    body.len()
                ),
            ));
        }
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let count = element_count(&shape).unwrap_or(usize::MAX);
    if count > limits.max_tensor_elements {
        return Err(ValidationError::TooManyElements {
            tensor: spec.name.clone(),
            limit: limits.max_tensor_elements,
            got: count,
        }
        .into());
    }
    if let Some(size) = spec.datatype.size()
        && body.len() != count * size
    {
        return Err(ProtocolError::tensor(
            &spec.name,
            format!(
                "a raw binary request (Inference-Header-Content-Length: 0) has {} bytes but shape {shape:?} of {} needs {}",
                body.len(),
                spec.datatype,
                count * size
            ),
        ));
    }
    let data = binary::decode(&spec.name, spec.datatype, body, count)?;
    Ok(V2Request {
        inputs: vec![Tensor::new(spec.name.clone(), shape, data)?],
        binary_output: true,
        ..V2Request::default()
    })
}

/// Parameter `key` of `owner` (`request`, an output's name), when given, as `pick` reads it;
/// a value it does not read is refused, saying it should be `expected`.
fn typed_parameter<T>(
    parameters: &HashMap<String, Value>,
    key: &str,
    owner: &str,
    expected: &str,
    pick: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, ProtocolError> {
    parameters
        .get(key)
        .map(|v| {
            pick(v).ok_or_else(|| ProtocolError::Json {
                message: format!("{owner}: parameter {key} must be {expected}, got {v}"),
            })
        })
        .transpose()
}

/// A parameter that must be a non-negative integer.
fn uint_parameter(
    parameters: &HashMap<String, Value>,
    key: &str,
) -> Result<Option<u64>, ProtocolError> {
    let expected = "a non-negative integer";
    typed_parameter(parameters, key, "request", expected, Value::as_u64)
}

/// A parameter that must be a boolean.
fn bool_parameter(
    parameters: &HashMap<String, Value>,
    key: &str,
    owner: &str,
) -> Result<Option<bool>, ProtocolError> {
    typed_parameter(parameters, key, owner, "true or false", Value::as_bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_core::TensorData;

    const LIMITS: RequestLimits = RequestLimits {
        max_tensor_elements: 1000,
        max_decoded_bytes: 1 << 20,
    };

    fn decode(body: &[u8], header: Option<usize>) -> Result<V2Request, ProtocolError> {
        decode_request(body, header, LIMITS, None)
    }

    #[test]
    fn decodes_json_request() {
        let r = decode(
            br#"{"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],
                "outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(
            r.inputs[0].data(),
            &TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])
        );
        assert_eq!(
            r.outputs,
            vec![RequestedOutput {
                name: "y".into(),
                binary: Some(true)
            }]
        );
        assert!(!r.binary_output);
    }

    #[test]
    fn decodes_binary_parts_in_input_order() {
        let header = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}},{"name":"b","shape":[2],"datatype":"UINT8","parameters":{"binary_data_size":2}}],"parameters":{"binary_data_output":true}}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&5i32.to_le_bytes());
        body.extend_from_slice(&[9, 8]);
        let r = decode(&body, Some(header.len())).unwrap();
        assert_eq!(r.inputs[0].data(), &TensorData::I32(vec![5]));
        assert_eq!(r.inputs[1].data(), &TensorData::U8(vec![9, 8]));
        assert!(r.binary_output);
    }

    #[test]
    fn header_length_equal_to_body_means_json_only() {
        let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1]}]}"#;
        assert!(decode(body, Some(body.len())).is_ok());
    }

    #[test]
    fn rejects_malformed_bodies_naming_the_fault() {
        let err = |body: &[u8], header| decode(body, header).unwrap_err().to_string();
        assert!(err(b"{not json", None).contains("malformed"));
        let e = err(
            br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#,
            None,
        );
        assert!(e.contains("inputs[0].shape"), "{e}");
        let e = err(
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP31","data":[1]}]}"#,
            None,
        );
        assert!(e.contains("'x'") && e.contains("FP31"), "{e}");
        let e = err(
            br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1]}]}"#,
            None,
        );
        assert!(
            e.contains("'x'") && e.contains("3") && e.contains("1"),
            "{e}"
        );
        let e = err(
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
            None,
        );
        assert!(e.contains("no data"), "{e}");
        let e = err(br#"{"inputs":[]}"#, Some(100));
        assert!(e.contains("Inference-Header-Content-Length"), "{e}");
        let e = err(
            br#"{"inputs":[{"name":"x","shape":[2000],"datatype":"FP32","data":[]}]}"#,
            None,
        );
        assert!(e.contains("limit of 1000"), "{e}");
    }

    #[test]
    fn rejects_truncated_and_trailing_binary() {
        let header = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[0; 5]);
        let e = decode(&body, Some(header.len())).unwrap_err();
        assert!(
            matches!(
                e,
                ProtocolError::BinaryTruncated {
                    needed: 8,
                    available: 5,
                    ..
                }
            ),
            "{e}"
        );
        body.extend_from_slice(&[0; 4]);
        let e = decode(&body, Some(header.len())).unwrap_err();
        assert!(
            matches!(e, ProtocolError::BinaryTrailing { extra: 1 }),
            "{e}"
        );
    }

    #[test]
    fn raw_binary_fills_the_batch_dimension() {
        let spec = TensorSpec::new("x", DataType::Fp32, vec![-1, 2]);
        let body: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        let r = decode_raw_binary(&spec, true, &body, LIMITS).unwrap();
        assert_eq!(r.inputs[0].shape, vec![1, 2]);
        assert!(r.binary_output);
        assert!(decode_raw_binary(&spec, true, &body[..4], LIMITS).is_err());
    }

    #[test]
    fn the_header_is_checked_against_the_signature_before_any_data_is_read() {
        let signature = Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
            outputs: vec![],
        };
        let expected = Some(Expected {
            signature: &signature,
            max_batch_size: 4,
        });
        // The data is not even valid: an error about it would mean it was parsed.
        let input = |name: &str, shape: &str, datatype: &str| {
            format!(
                r#"{{"inputs":[{{"name":"{name}","shape":{shape},"datatype":"{datatype}","data":["nope"]}}]}}"#
            )
        };
        for (body, needle) in [
            (
                input("z", "[1,2]", "FP32"),
                "unexpected input 'z': the model's inputs are [\"x\"]",
            ),
            (input("x", "[5,2]", "FP32"), "max_batch_size 4"),
            (input("x", "[1,2]", "INT8"), "datatype INT8"),
        ] {
            let e = plan_request(body.as_bytes(), None, LIMITS, expected)
                .err()
                .unwrap();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let good = br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#;
        let planned = plan_request(good, None, LIMITS, expected).unwrap();
        assert_eq!(planned.decoded_bytes(), 8);
        assert_eq!(planned.decode().unwrap().inputs[0].shape, vec![1, 2]);
    }

    #[test]
    fn the_inputs_of_one_request_together_stay_within_the_decoded_byte_limit() {
        let limits = RequestLimits {
            max_tensor_elements: 1000,
            max_decoded_bytes: 4000,
        };
        // Two tensors of 600 FP32 elements each: each under the element limit, 4,800 bytes
        // together.
        let input = |name: &str| {
            format!(r#"{{"name":"{name}","shape":[600],"datatype":"FP32","data":["nope"]}}"#)
        };
        let body = format!(r#"{{"inputs":[{},{}]}}"#, input("a"), input("b"));
        let e = plan_request(body.as_bytes(), None, limits, None)
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                ProtocolError::DecodedTooLarge {
                    bytes: 4800,
                    limit: 4000
                }
            ),
            "{e}"
        );
        // BYTES count their length prefixes and at most the bytes sent.
        let strings = format!(
            r#"{{"inputs":[{{"name":"s","shape":[900],"datatype":"BYTES","data":[{}]}}]}}"#,
            vec!["\"\""; 900].join(",")
        );
        let e = plan_request(strings.as_bytes(), None, limits, None)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("over the limit of 4000 bytes"),
            "{e}"
        );
    }

    #[test]
    fn the_header_cannot_grow_past_its_bounds() {
        let err = |body: String| decode(body.as_bytes(), None).unwrap_err().to_string();
        let input = r#"{"name":"x","shape":[1],"datatype":"FP32","data":[1]}"#;
        let many = vec![input; MAX_TENSORS + 1].join(",");
        let e = err(format!(r#"{{"inputs":[{many}]}}"#));
        assert!(
            e.contains("inputs") && e.contains("more than 4096 entries"),
            "{e}"
        );
        let rank = vec!["1"; MAX_RANK + 1].join(",");
        let e = err(format!(
            r#"{{"inputs":[{{"name":"x","shape":[{rank}],"datatype":"FP32","data":[1]}}]}}"#
        ));
        assert!(
            e.contains("shape") && e.contains("more than 64 entries"),
            "{e}"
        );
        // A list where a parameter's value goes is refused where it starts.
        let e = err(format!(
            r#"{{"parameters":{{"p":[{}0]}},"inputs":[{input}]}}"#,
            "0,".repeat(100_000)
        ));
        assert!(
            e.contains("parameters.p") && e.contains("a boolean, number or string"),
            "{e}"
        );
        let params: Vec<String> = (0..=MAX_PARAMETERS)
            .map(|i| format!(r#""p{i}":1"#))
            .collect();
        let e = err(format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{{{}}}}}]}}"#,
            params.join(",")
        ));
        assert!(e.contains("more than 64 parameters"), "{e}");
        // Scalars of every kind are parameters.
        let r = decode(
            format!(r#"{{"parameters":{{"a":true,"b":-1,"c":2.5,"d":"s"}},"inputs":[{input}]}}"#)
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(r.parameters.len(), 4);
    }
}
