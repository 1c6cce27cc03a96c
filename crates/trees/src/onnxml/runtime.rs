//! [`OnnxMlRuntime`]: loads `model.onnx` files whose graphs use the `ai.onnx.ml` domain.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use ferroserve_core::model::LoadOptions;
use ferroserve_core::{LoadError, Model, Runtime};
use prost::Message;

use super::graph::OnnxMlModel;
use super::proto::{ModelOps, ModelProto, OperatorSetIdProto};

/// The ONNX model file name.
const MODEL_FILE: &str = "model.onnx";

/// The ONNX-ML interpreter runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnnxMlRuntime;

impl Runtime for OnnxMlRuntime {
    fn name(&self) -> &'static str {
        "onnx-ml"
    }

    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn model_files(&self) -> &'static [&'static str] {
        &[MODEL_FILE]
    }

    /// A `model.onnx` that imports `ai.onnx.ml` and whose every node this interpreter runs;
    /// any other ONNX file (networks, graphs mixing ML and tensor operators) goes to tract.
    fn claims(&self, dir: &Path, files: &[String]) -> bool {
        let path = dir.join(MODEL_FILE);
        files.iter().any(|f| f == MODEL_FILE)
            && imports_ml_domain(&path).unwrap_or(false)
            && std::fs::read(&path).is_ok_and(|bytes| runs_every_node(&bytes))
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let path = dir.join(options.model_file.as_deref().unwrap_or(MODEL_FILE));
        let bytes = crate::runtime::read_model_file(&path)?;
        let model = load_bytes(&bytes).map_err(|message| LoadError::Engine {
            path: path.clone(),
            message,
        })?;
        Ok(Arc::new(model))
    }
}

/// Builds the model in the bytes of an ONNX file, for hosts without a file system (wasm, C).
pub fn load_bytes(bytes: &[u8]) -> Result<OnnxMlModel, String> {
    let proto = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model: {e}"))?;
    OnnxMlModel::from_proto(&proto)
}

/// Whether the ONNX file in `bytes` imports `ai.onnx.ml` and this interpreter runs every one
/// of its nodes: what [`OnnxMlRuntime`] claims; any other ONNX file is tract's.
pub fn claims_bytes(bytes: &[u8]) -> bool {
    imports_ml_domain_in(&mut std::io::Cursor::new(bytes)).unwrap_or(false)
        && runs_every_node(bytes)
}

/// Whether this interpreter runs every node of the ONNX file in `bytes`.
fn runs_every_node(bytes: &[u8]) -> bool {
    ModelOps::decode(bytes)
        .ok()
        .and_then(|m| m.graph)
        .is_some_and(|g| {
            g.node
                .iter()
                .all(|n| super::ops::supports(&n.domain, &n.op_type))
        })
}

/// Whether the ONNX file at `path` imports the `ai.onnx.ml` operator set. Reads only the
/// top-level fields of `ModelProto`, seeking over the graph, so a large network costs a few
/// reads.
pub fn imports_ml_domain(path: &Path) -> std::io::Result<bool> {
    imports_ml_domain_in(&mut std::io::BufReader::new(std::fs::File::open(path)?))
}

/// [`imports_ml_domain`] over any seekable reader of an ONNX file.
fn imports_ml_domain_in(file: &mut (impl Read + Seek)) -> std::io::Result<bool> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not protobuf");
    loop {
        let key = match read_varint(file) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        };
        match key & 7 {
            0 => {
                read_varint(file)?;
            }
            1 => {
                file.seek(SeekFrom::Current(8))?;
            }
            5 => {
                file.seek(SeekFrom::Current(4))?;
            }
            2 => {
                let len = read_varint(file)?;
                if key >> 3 == 8 && len < 4096 {
                    let mut buf = vec![0; len as usize];
                    file.read_exact(&mut buf)?;
                    let opset =
                        OperatorSetIdProto::decode(buf.as_slice()).map_err(|_| invalid())?;
                    if opset.domain == "ai.onnx.ml" {
                        return Ok(true);
                    }
                } else {
                    let len = i64::try_from(len).map_err(|_| invalid())?;
                    file.seek(SeekFrom::Current(len))?;
                }
            }
            _ => return Err(invalid()),
        }
    }
}

fn read_varint(r: &mut impl Read) -> std::io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        r.read_exact(&mut byte)?;
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "varint too long",
    ))
}
