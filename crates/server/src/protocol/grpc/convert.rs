//! Protobuf messages of the V2 gRPC protocol to and from core tensors, and the model config and
//! statistics messages built from a loaded version.

use std::collections::HashMap;
use std::time::Duration;

use ferroserve_core::{DataType, InputHeader, Tensor, TensorData, TensorSpec};

use super::proto;
use crate::codec::{
    Expected, ProtocolError, RequestLimits, RequestedOutput, V2Request, binary, input_header,
};
use crate::error::InferError;
use crate::protocol::status::ApiError;
use crate::repository::{LoadedVersion, VersionPolicy};
use crate::scheduler::BatchMode;
use crate::stats::DurationStat;

/// A `ModelInferRequest` as the V2 request every front-end runs. Inputs come from
/// `raw_input_contents` (all of them, in input order) or from each input's typed `contents`.
/// Names, datatypes and shapes are checked against `expected`, and the bytes the inputs take
/// decoded against `limits`, before any tensor is built; `reserve` is then asked for those
/// bytes.
pub(super) fn decode_request(
    request: proto::ModelInferRequest,
    limits: RequestLimits,
    expected: Expected<'_>,
    reserve: impl FnOnce(usize) -> Result<(), InferError>,
) -> Result<V2Request, ApiError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ProtocolError::Json {
            message: format!(
                "raw_input_contents has {} entries for {} inputs: give one per input, or none",
                raw.len(),
                request.inputs.len()
            ),
        }
        .into());
    }
    let declared = request
        .inputs
        .iter()
        .map(|input| input_header(&input.name, &input.datatype, &input.shape, limits))
        .collect::<Result<Vec<_>, _>>()?;
    expected
        .signature
        .validate_headers(
            request
                .inputs
                .iter()
                .zip(&declared)
                .map(|(input, (datatype, shape, _))| {
                    InputHeader::new(&input.name, *datatype, shape)
                }),
            expected.max_batch_size,
        )
        .map_err(ProtocolError::from)?;
    let decoded = limits.check_decoded(request.inputs.iter().zip(&declared).enumerate().map(
        |(i, (input, (datatype, _, count)))| {
            let wire = match raw.get(i) {
                Some(bytes) => bytes.len(),
                None => input
                    .contents
                    .as_ref()
                    .map_or(0, |c| c.bytes_contents.iter().map(Vec::len).sum()),
            };
            (*datatype, *count, wire)
        },
    ))?;
    reserve(decoded)?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for ((i, input), (datatype, shape, count)) in
        request.inputs.into_iter().enumerate().zip(declared)
    {
        let data = match raw.get(i) {
            Some(bytes) => binary::decode(&input.name, datatype, bytes, count)?,
            None => typed(&input.name, datatype, input.contents.unwrap_or_default())?,
        };
        inputs.push(Tensor::new(input.name, shape, data).map_err(ProtocolError::from)?);
    }
    let outputs = request
        .outputs
        .into_iter()
        .map(|o| RequestedOutput {
            name: o.name,
            binary: None,
        })
        .collect();
    Ok(V2Request {
        id: Some(request.id).filter(|id| !id.is_empty()),
        inputs,
        outputs,
        binary_output: true,
        priority: uint_parameter(&request.parameters, "priority")?,
        timeout: uint_parameter(&request.parameters, "timeout")?
            .filter(|&us| us > 0)
            .map(Duration::from_micros),
        parameters: request
            .parameters
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), parameter_value(p.parameter_choice.as_ref()?))))
            .collect(),
    })
}

/// The request's `label` parameter (a string): the version label to run, as
/// `/v2/models/{m}/labels/{label}/infer` names it over HTTP.
pub(super) fn label_parameter(
    parameters: &HashMap<String, proto::InferParameter>,
) -> Result<Option<&str>, ProtocolError> {
    use proto::infer_parameter::ParameterChoice;
    match parameters
        .get("label")
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => Ok(None),
        Some(ParameterChoice::StringParam(label)) => Ok(Some(label)),
        Some(other) => Err(ProtocolError::Json {
            message: format!("parameter label must be a string, got {other:?}"),
        }),
    }
}

/// A gRPC parameter as the JSON value the HTTP front-end would have.
pub(super) fn parameter_value(p: &proto::infer_parameter::ParameterChoice) -> serde_json::Value {
    use proto::infer_parameter::ParameterChoice;
    match p {
        ParameterChoice::BoolParam(b) => serde_json::Value::Bool(*b),
        ParameterChoice::Int64Param(i) => (*i).into(),
        ParameterChoice::Uint64Param(u) => (*u).into(),
        ParameterChoice::DoubleParam(d) => (*d).into(),
        ParameterChoice::StringParam(s) => s.clone().into(),
    }
}

/// A request parameter that must be a non-negative integer.
fn uint_parameter(
    parameters: &HashMap<String, proto::InferParameter>,
    key: &str,
) -> Result<Option<u64>, ProtocolError> {
    use proto::infer_parameter::ParameterChoice;
    let Some(p) = parameters
        .get(key)
        .and_then(|p| p.parameter_choice.as_ref())
    else {
        return Ok(None);
    };
    match p {
        ParameterChoice::Int64Param(v) => u64::try_from(*v).ok(),
        ParameterChoice::Uint64Param(v) => Some(*v),
        _ => None,
    }
    .map(Some)
    .ok_or_else(|| ProtocolError::Json {
        message: format!("parameter {key} must be a non-negative integer, got {p:?}"),
    })
}

/// An input's typed `contents` as elements of `datatype`.
fn typed(
    name: &str,
    datatype: DataType,
    c: proto::InferTensorContents,
) -> Result<TensorData, ProtocolError> {
    fn narrow<T: TryFrom<U>, U: Copy + std::fmt::Display>(
        name: &str,
        values: Vec<U>,
    ) -> Result<Vec<T>, ProtocolError> {
        values
            .into_iter()
            .map(|v| {
                T::try_from(v).map_err(|_| {
                    ProtocolError::tensor(name, format!("{v} is out of range of its datatype"))
                })
            })
            .collect()
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::Uint8 => TensorData::U8(narrow(name, c.uint_contents)?),
        DataType::Uint16 => TensorData::U16(narrow(name, c.uint_contents)?),
        DataType::Uint32 => TensorData::U32(c.uint_contents),
        DataType::Uint64 => TensorData::U64(c.uint64_contents),
        DataType::Int8 => TensorData::I8(narrow(name, c.int_contents)?),
        DataType::Int16 => TensorData::I16(narrow(name, c.int_contents)?),
        DataType::Int32 => TensorData::I32(c.int_contents),
        DataType::Int64 => TensorData::I64(c.int64_contents),
        DataType::Fp32 => TensorData::F32(c.fp32_contents),
        DataType::Fp64 => TensorData::F64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.into()),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(ProtocolError::tensor(
                name,
                format!("{datatype} has no typed contents field: send it in raw_input_contents"),
            ));
        }
    })
}

/// The answer: every output's bytes in `raw_output_contents` (tritonclient decodes numeric
/// outputs only from there).
pub(super) fn encode_response(
    version: &LoadedVersion,
    id: Option<String>,
    outputs: &[Tensor],
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> proto::ModelInferResponse {
    let mut raw = Vec::with_capacity(outputs.len());
    let tensors = outputs
        .iter()
        .map(|t| {
            let mut bytes = Vec::with_capacity(t.data().byte_size());
            t.data().write_binary(&mut bytes);
            raw.push(bytes);
            proto::model_infer_response::InferOutputTensor {
                name: t.name.clone(),
                datatype: t.datatype().name().to_owned(),
                shape: t.shape.iter().map(|&d| d as i64).collect(),
                ..Default::default()
            }
        })
        .collect();
    proto::ModelInferResponse {
        model_name: version.model_name.clone(),
        model_version: version.version.to_string(),
        id: id.unwrap_or_default(),
        outputs: tensors,
        raw_output_contents: raw,
        parameters: parameters
            .iter()
            .map(|(k, v)| {
                let choice = match v {
                    serde_json::Value::String(s) => {
                        proto::infer_parameter::ParameterChoice::StringParam(s.clone())
                    }
                    serde_json::Value::Bool(b) => {
                        proto::infer_parameter::ParameterChoice::BoolParam(*b)
                    }
                    other => {
                        proto::infer_parameter::ParameterChoice::StringParam(other.to_string())
                    }
                };
                (
                    k.clone(),
                    proto::InferParameter {
                        parameter_choice: Some(choice),
                    },
                )
            })
            .collect(),
    }
}

/// A tensor's metadata entry.
pub(super) fn tensor_metadata(spec: &TensorSpec) -> proto::model_metadata_response::TensorMetadata {
    proto::model_metadata_response::TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype.name().to_owned(),
        shape: spec.shape.clone(),
    }
}

/// Each spec's name, config datatype and `dims`, made into a config entry by `make`.
fn described<T>(
    specs: &[TensorSpec],
    dims: impl Fn(&TensorSpec) -> Vec<i64>,
    make: impl Fn(String, i32, Vec<i64>) -> T,
) -> Vec<T> {
    specs
        .iter()
        .map(|s| make(s.name.clone(), config_datatype(s.datatype), dims(s)))
        .collect()
}

/// Triton's `DataType` enum value of `datatype`.
fn config_datatype(datatype: DataType) -> i32 {
    use proto::DataType as T;
    (match datatype {
        DataType::Bool => T::TypeBool,
        DataType::Uint8 => T::TypeUint8,
        DataType::Uint16 => T::TypeUint16,
        DataType::Uint32 => T::TypeUint32,
        DataType::Uint64 => T::TypeUint64,
        DataType::Int8 => T::TypeInt8,
        DataType::Int16 => T::TypeInt16,
        DataType::Int32 => T::TypeInt32,
        DataType::Int64 => T::TypeInt64,
        DataType::Fp16 => T::TypeFp16,
        DataType::Bf16 => T::TypeBf16,
        DataType::Fp32 => T::TypeFp32,
        DataType::Fp64 => T::TypeFp64,
        DataType::Bytes => T::TypeString,
    }) as i32
}

/// The Triton `ModelConfig` of a loaded version (the same content as `GET …/config`).
pub(super) fn model_config(v: &LoadedVersion) -> proto::ModelConfig {
    use proto::model_version_policy::{All, Latest, PolicyChoice, Specific};
    let batched = v.max_batch_size > 0;
    let dims = |s: &TensorSpec| -> Vec<i64> {
        if batched {
            s.shape.iter().skip(1).copied().collect()
        } else {
            s.shape.clone()
        }
    };
    let policy = match v.config.version_policy() {
        VersionPolicy::Latest(n) => PolicyChoice::Latest(Latest { num_versions: n }),
        VersionPolicy::All => PolicyChoice::All(All {}),
        VersionPolicy::Specific(versions) => PolicyChoice::Specific(Specific {
            versions: versions.iter().map(|&n| n as i64).collect(),
        }),
    };
    let dynamic_batching = v
        .executor
        .policy()
        .filter(|scheduling| batched && scheduling.mode != BatchMode::Off)
        .map(|scheduling| proto::ModelDynamicBatching {
            preferred_batch_size: scheduling
                .preferred_batch_sizes
                .iter()
                .map(|&p| i32::try_from(p).unwrap_or(i32::MAX))
                .collect(),
            max_queue_delay_microseconds: scheduling.max_queue_delay.as_micros() as u64,
            priority_levels: scheduling.priority_levels as u64,
            default_priority_level: scheduling.default_priority as u64,
            default_queue_policy: Some(proto::ModelQueuePolicy {
                allow_timeout_override: true,
                max_queue_size: u32::try_from(scheduling.max_queue_size).unwrap_or(u32::MAX),
                ..Default::default()
            }),
            ..Default::default()
        });
    proto::ModelConfig {
        name: v.model_name.clone(),
        platform: v.platform.to_owned(),
        backend: v.runtime.to_owned(),
        version_policy: Some(proto::ModelVersionPolicy {
            policy_choice: Some(policy),
        }),
        max_batch_size: i32::try_from(v.max_batch_size).unwrap_or(i32::MAX),
        input: described(&v.signature.inputs, dims, |name, data_type, dims| {
            proto::ModelInput {
                name,
                data_type,
                dims,
                ..Default::default()
            }
        }),
        output: described(&v.signature.outputs, dims, |name, data_type, dims| {
            proto::ModelOutput {
                name,
                data_type,
                dims,
                ..Default::default()
            }
        }),
        instance_group: vec![proto::ModelInstanceGroup {
            name: format!("{}_0", v.model_name),
            kind: proto::model_instance_group::Kind::Cpu as i32,
            count: i32::try_from(v.instances).unwrap_or(i32::MAX),
            ..Default::default()
        }],
        default_model_filename: v
            .config
            .raw
            .default_model_filename
            .clone()
            .unwrap_or_else(|| "model.onnx".to_owned()),
        scheduling_choice: dynamic_batching
            .map(proto::model_config::SchedulingChoice::DynamicBatching),
        ..Default::default()
    }
}

fn duration(d: &DurationStat) -> Option<proto::StatisticDuration> {
    Some(proto::StatisticDuration {
        count: d.count,
        ns: d.ns,
    })
}

/// The statistics of a loaded version.
pub(super) fn model_statistics(v: &LoadedVersion) -> proto::ModelStatistics {
    let s = v.stats.snapshot();
    proto::ModelStatistics {
        name: v.model_name.clone(),
        version: v.version.to_string(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(proto::InferStatistics {
            success: duration(&s.success),
            fail: duration(&s.fail),
            queue: duration(&s.queue),
            compute_input: duration(&s.compute_input),
            compute_infer: duration(&s.compute_infer),
            compute_output: duration(&s.compute_output),
            cache_hit: duration(&s.cache_hit),
            cache_miss: duration(&s.cache_miss),
        }),
        batch_stats: s
            .batches
            .iter()
            .map(|(&size, b)| proto::InferBatchStatistics {
                batch_size: size as u64,
                compute_input: duration(&DurationStat::default()),
                compute_infer: Some(proto::StatisticDuration {
                    count: b.count,
                    ns: b.compute_infer_ns,
                }),
                compute_output: duration(&DurationStat::default()),
            })
            .collect(),
        ..Default::default()
    }
}
