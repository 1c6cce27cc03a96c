//! [`OnnxMlModel`]: an ONNX graph of ML operators, built once and run node by node.
//!
//! Values live in a map from name to [`Tensor`] for the length of one call; nodes run in file
//! order (ONNX requires it to be topological). The signature comes from the graph's inputs
//! (initializers excluded) and outputs; a `ZipMap` output (a sequence of maps in ONNX) is
//! served as its FP32 `[N, classes]` matrix.

use std::borrow::Cow;
use std::collections::HashMap;

use ferroserve_core::{DataType, Model, ModelError, Signature, Tensor, TensorData, TensorSpec};

use super::ops::{self, Op};
use super::proto::{GraphProto, ModelProto, TypeProto, ValueInfoProto, data_type};

/// A loaded ONNX-ML model.
#[derive(Debug)]
pub struct OnnxMlModel {
    signature: Signature,
    nodes: Vec<BuiltNode>,
    initializers: HashMap<String, Tensor>,
}

#[derive(Debug)]
struct BuiltNode {
    name: String,
    op_type: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    op: Box<dyn Op>,
}

impl OnnxMlModel {
    /// Builds the model from a decoded `ModelProto`.
    pub fn from_proto(model: &ModelProto) -> Result<OnnxMlModel, String> {
        let graph = model.graph.as_ref().ok_or("the model has no graph")?;
        let initializers = initializers(graph)?;
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains_key(&i.name))
            .map(spec)
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(spec)
            .collect::<Result<Vec<_>, _>>()?;
        let mut nodes = Vec::with_capacity(graph.node.len());
        for (i, node) in graph.node.iter().enumerate() {
            let name = if node.name.is_empty() {
                format!("#{i}")
            } else {
                node.name.clone()
            };
            let op =
                ops::build(node).map_err(|e| format!("node '{name}' ({}): {e}", node.op_type))?;
            nodes.push(BuiltNode {
                name,
                op_type: node.op_type.clone(),
                inputs: node.input.clone(),
                outputs: node.output.clone(),
                op,
            });
        }
        Ok(OnnxMlModel {
            signature: Signature { inputs, outputs },
            nodes,
            initializers,
        })
    }
}

/// A graph input or output as a V2 tensor spec.
fn spec(v: &ValueInfoProto) -> Result<TensorSpec, String> {
    let ty = v
        .r#type
        .as_ref()
        .ok_or_else(|| format!("'{}' has no type", v.name))?;
    if let Some(t) = &ty.tensor_type {
        let datatype = datatype(t.elem_type).ok_or_else(|| {
            format!(
                "'{}': element type {} is not supported",
                v.name, t.elem_type
            )
        })?;
        let shape = t.shape.as_ref().map_or_else(
            || vec![-1, -1],
            |s| {
                s.dim
                    .iter()
                    .map(|d| d.dim_value.filter(|&v| v > 0).unwrap_or(-1))
                    .collect()
            },
        );
        return Ok(TensorSpec::new(v.name.clone(), datatype, shape));
    }
    if is_sequence_of_maps(ty) {
        return Ok(TensorSpec::new(
            v.name.clone(),
            DataType::Fp32,
            vec![-1, -1],
        ));
    }
    Err(format!(
        "'{}': only tensors and ZipMap outputs are supported",
        v.name
    ))
}

fn is_sequence_of_maps(ty: &TypeProto) -> bool {
    ty.sequence_type
        .as_ref()
        .and_then(|s| s.elem_type.as_ref())
        .is_some_and(|e| e.map_type.is_some())
}

fn datatype(elem_type: i32) -> Option<DataType> {
    Some(match elem_type {
        data_type::FLOAT => DataType::Fp32,
        data_type::DOUBLE => DataType::Fp64,
        data_type::INT64 => DataType::Int64,
        data_type::INT32 => DataType::Int32,
        data_type::STRING => DataType::Bytes,
        data_type::BOOL => DataType::Bool,
        _ => return None,
    })
}

/// The graph's initializers as tensors (float, double and int64 ones; ML graphs rarely have
/// others).
fn initializers(graph: &GraphProto) -> Result<HashMap<String, Tensor>, String> {
    let mut out = HashMap::new();
    for t in &graph.initializer {
        let shape: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| format!("initializer '{}': dimension {d}", t.name))
            })
            .collect::<Result<_, _>>()?;
        let data = match t.data_type {
            data_type::FLOAT | data_type::DOUBLE => {
                let values = super::attributes::tensor_reals(t)
                    .map_err(|e| format!("initializer '{}': {e}", t.name))?;
                if t.data_type == data_type::FLOAT {
                    TensorData::F32(values.iter().map(|&v| v as f32).collect())
                } else {
                    TensorData::F64(values)
                }
            }
            data_type::INT64 if !t.raw_data.is_empty() => TensorData::I64(
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            data_type::INT64 => TensorData::I64(t.int64_data.clone()),
            other => {
                return Err(format!(
                    "initializer '{}': data type {other} is not supported",
                    t.name
                ));
            }
        };
        let tensor =
            Tensor::new(t.name.clone(), shape, data).map_err(|e| format!("initializer: {e}"))?;
        out.insert(t.name.clone(), tensor);
    }
    Ok(out)
}

impl Model for OnnxMlModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        // The request's tensors are borrowed, the nodes' outputs owned.
        let mut values: HashMap<&str, Cow<'_, Tensor>> = HashMap::new();
        for (spec, t) in self.signature.inputs.iter().zip(inputs) {
            values.insert(spec.name.as_str(), Cow::Borrowed(t));
        }
        let failed = |node: &BuiltNode, message: String| ModelError::Execution {
            message: format!("node '{}' ({}): {message}", node.name, node.op_type),
        };
        for node in &self.nodes {
            let args: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        None
                    } else {
                        values
                            .get(name.as_str())
                            .map(|v| v.as_ref())
                            .or_else(|| self.initializers.get(name))
                    }
                })
                .collect();
            if let Some((name, _)) = node
                .inputs
                .iter()
                .zip(&args)
                .find(|(n, a)| !n.is_empty() && a.is_none())
            {
                return Err(failed(
                    node,
                    format!("input '{name}' is not computed by any earlier node"),
                ));
            }
            let outputs = node.op.run(&args).map_err(|e| failed(node, e))?;
            for (name, (shape, data)) in node.outputs.iter().zip(outputs) {
                if name.is_empty() {
                    continue;
                }
                let tensor = Tensor::new(name.clone(), shape, data)
                    .map_err(|e| failed(node, e.to_string()))?;
                values.insert(name.as_str(), Cow::Owned(tensor));
            }
        }
        self.signature
            .outputs
            .iter()
            .map(|spec| {
                values
                    .remove(spec.name.as_str())
                    .map(Cow::into_owned)
                    .ok_or_else(|| ModelError::Output {
                        tensor: spec.name.clone(),
                        reason: "no node computes it".into(),
                    })
            })
            .collect()
    }
}
