//! [`OnnxModel`]: an optimised tract plan behind the [`Model`] trait.

use std::sync::{Arc, Mutex};

use ferroserve_core::{Model, ModelError, Signature, Tensor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use crate::convert::{from_tract, to_tract};

/// A loaded ONNX model: one optimised plan, shared by every caller.
pub struct OnnxModel {
    /// The plan, optimised once with a symbolic batch dimension.
    plan: Arc<TypedRunnableModel>,
    /// Inputs and outputs, in the plan's order.
    signature: Signature,
    /// Execution states returned by finished calls, reused to skip re-allocating per call.
    /// A std `Mutex`: it is held only to push or pop, never across a computation.
    idle_states: Mutex<Vec<TypedSimpleState>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    pub(crate) fn new(plan: Arc<TypedRunnableModel>, signature: Signature) -> OnnxModel {
        OnnxModel {
            plan,
            signature,
            idle_states: Mutex::new(Vec::new()),
        }
    }

    fn take_state(&self) -> Result<TypedSimpleState, ModelError> {
        let idle = self
            .idle_states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match idle {
            Some(state) => Ok(state),
            None => SimpleState::new(&self.plan).map_err(|e| ModelError::Execution {
                message: format!("{e:#}"),
            }),
        }
    }
}

impl Model for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let values = inputs
            .iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<Result<TVec<_>, _>>()?;
        let mut state = self.take_state()?;
        let outputs = state.run(values).map_err(|e| ModelError::Execution {
            message: format!("{e:#}"),
        })?;
        self.idle_states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(state);
        outputs
            .iter()
            .zip(&self.signature.outputs)
            .map(|(value, spec)| from_tract(&spec.name, value))
            .collect()
    }

    fn engine(&self) -> Option<&'static str> {
        Some("tract")
    }
}
