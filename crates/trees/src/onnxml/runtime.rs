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
            && std::fs::read(&path)
                .ok()
                .and_then(|bytes| ModelOps::decode(bytes.as_slice()).ok())
                .and_then(|m| m.graph)
                .is_some_and(|g| {
                    g.node
                        .iter()
                        .all(|n| super::ops::supports(&n.domain, &n.op_type))
                })
    }

    fn load(&self, dir: &Path, options: &LoadOptions) -> Result<Arc<dyn Model>, LoadError> {
        let path = dir.join(options.model_file.as_deref().unwrap_or(MODEL_FILE));
        let bytes = crate::runtime::read_model_file(&path)?;
        let engine = |message: String| LoadError::Engine {
            path: path.clone(),
            message,
        };
        let proto = ModelProto::decode(bytes.as_slice())
            .map_err(|e| engine(format!("not an ONNX model: {e}")))?;
        let model = OnnxMlModel::from_proto(&proto).map_err(engine)?;
        Ok(Arc::new(model))
    }
}

/// Whether the ONNX file at `path` imports the `ai.onnx.ml` operator set. Reads only the
/// top-level fields of `ModelProto`, seeking over the graph, so a large network costs a few
/// reads.
pub fn imports_ml_domain(path: &Path) -> std::io::Result<bool> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not protobuf");
    loop {
        let key = match read_varint(&mut file) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        };
        match key & 7 {
            0 => {
                read_varint(&mut file)?;
            }
            1 => {
                file.seek_relative(8)?;
            }
            5 => {
                file.seek_relative(4)?;
            }
            2 => {
                let len = read_varint(&mut file)?;
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
