//! [`OrtModel`]: an ONNX model on ONNX Runtime behind the [`Model`] trait.
//!
//! ort's `Session::run` takes `&mut self` (the C API's `Run` is thread-safe, but the Rust
//! wrapper does not expose that), so the model keeps a pool of sessions: a call takes an idle
//! one or builds one, and gives it back afterwards. The pool grows to the number of calls that
//! ever ran at once (the server's `instances`), and that many are built at load time so the
//! first requests do not pay for it. The sessions share their pre-packed weights.
//!
//! Every session runs its operators on the calling thread (`intra_op_num_threads = 1`, no
//! spinning): parallelism comes from the server's worker threads, and N sessions never start
//! N thread pools that fight over the cores.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferroserve_core::{LoadError, Model, ModelError, Signature, Tensor, TensorSpec};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};

use super::convert::{ENGINE, datatype_of, from_ort, to_ort};
use super::library::environment;

/// A loaded ONNX model on ONNX Runtime.
pub struct OrtModel {
    path: PathBuf,
    signature: Signature,
    /// Sessions not running a call.
    /// A std `Mutex`: held only to push or pop, never across a computation.
    idle: Mutex<Vec<Session>>,
    weights: PrepackedWeights,
}

impl std::fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtModel")
            .field("path", &self.path)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl OrtModel {
    /// Loads `path` with ONNX Runtime, preparing `instances` sessions (at least one).
    pub fn load(path: &Path, instances: usize) -> Result<OrtModel, LoadError> {
        let engine_error = |message: String| LoadError::Engine {
            path: path.to_owned(),
            message,
        };
        // Before any other ort call: ort panics on every call once the library failed to load.
        environment().map_err(|e| engine_error(e.to_string()))?;
        let weights = PrepackedWeights::new();
        let first = build_session(path, &weights).map_err(engine_error)?;
        let signature = signature_of(&first).map_err(engine_error)?;
        let mut idle = vec![first];
        for _ in 1..instances {
            idle.push(build_session(path, &weights).map_err(engine_error)?);
        }
        Ok(OrtModel {
            path: path.to_owned(),
            signature,
            idle: Mutex::new(idle),
            weights,
        })
    }

    fn take_session(&self) -> Result<Session, ModelError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(session) => Ok(session),
            None => build_session(&self.path, &self.weights)
                .map_err(|message| ModelError::Execution { message }),
        }
    }
}

impl Model for OrtModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let values = inputs.iter().map(to_ort).collect::<Result<Vec<_>, _>>()?;
        let mut session = self.take_session()?;
        let result = session.run(values).map_err(|e| ModelError::Execution {
            message: format!("ONNX Runtime: {e}"),
        });
        let outputs = result.and_then(|outputs| {
            self.signature
                .outputs
                .iter()
                .enumerate()
                .map(|(ix, spec)| from_ort(&spec.name, &outputs[ix]))
                .collect::<Result<Vec<_>, _>>()
        });
        // The session is reusable after a failed run too.
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
        outputs
    }

    fn engine(&self) -> Option<&'static str> {
        Some(ENGINE)
    }
}

/// One session on the calling thread, fully optimised.
fn build_session(path: &Path, weights: &PrepackedWeights) -> Result<Session, String> {
    let environment = environment().map_err(|e| e.to_string())?;
    Session::builder(environment)
        .and_then(|b| Ok(b.with_intra_threads(1)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
        .and_then(|b| Ok(b.with_inter_op_spinning(false)?))
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
        .and_then(|b| Ok(b.with_prepacked_weights(weights)?))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| format!("ONNX Runtime: {e}"))
}

/// Names, datatypes and shapes (-1 for a dynamic dimension) of the session's tensors.
fn signature_of(session: &Session) -> Result<Signature, String> {
    let spec = |outlet: &ort::value::Outlet| -> Result<TensorSpec, String> {
        let name = outlet.name();
        let dtype = outlet.dtype();
        let element = dtype
            .tensor_type()
            .ok_or_else(|| format!("tensor '{name}' is a {dtype}; V2 carries tensors only"))?;
        let datatype = datatype_of(element).ok_or_else(|| {
            format!("tensor '{name}' has type {element:?}, which V2 cannot carry")
        })?;
        let shape = dtype
            .tensor_shape()
            .map(|s| s.iter().map(|&d| if d < 0 { -1 } else { d }).collect())
            .unwrap_or_default();
        Ok(TensorSpec::new(name, datatype, shape))
    };
    Ok(Signature {
        inputs: session
            .inputs()
            .iter()
            .map(spec)
            .collect::<Result<_, _>>()?,
        outputs: session
            .outputs()
            .iter()
            .map(spec)
            .collect::<Result<_, _>>()?,
    })
}
