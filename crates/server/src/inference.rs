//! The request and answer inside the server: what every front-end (V2 HTTP, V2 gRPC, TF
//! Serving REST, `ferroserve predict`) decodes into and encodes from, and what the
//! [`router`](crate::router) runs. No wire detail is here: how an output goes back (binary
//! or JSON, `raw_output_contents`, TF's row or columnar form) stays with the front-end.

use std::time::{Duration, Instant};

use ferroserve_core::Tensor;
use serde_json::{Map, Value};

use crate::stats::RequestTimes;

/// One inference request, decoded.
#[derive(Clone, Debug, Default)]
pub struct InferRequest {
    /// The client's request id, echoed in the answer.
    pub id: Option<String>,
    /// The input tensors, in the order given.
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, by name and in order; empty asks for all of them. Each name at
    /// most once (the front-end's decoder refuses a repeat).
    pub outputs: Vec<String>,
    /// Scheduling priority: 1 is the highest level; absent or 0 the model's default.
    pub priority: Option<u64>,
    /// How long the request may wait for its answer.
    pub timeout: Option<Duration>,
    /// What composites route by: the request's parameters and the transport's headers.
    pub context: RequestContext,
}

/// What a request brings besides its tensors, for routing: its parameters and the
/// transport's headers (HTTP headers, gRPC metadata), lowercase names.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The request's parameters.
    pub parameters: Map<String, Value>,
    /// The headers, names in lowercase. Front-ends fill them only for a composite (the only
    /// reader), so a plain model's request copies none.
    pub headers: Vec<(String, String)>,
}

impl RequestContext {
    /// The parameter `name` as text, else the header of that name.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.parameters.get(name) {
            return Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// The answer to an [`InferRequest`].
#[derive(Clone, Debug, Default)]
pub struct InferResponse {
    /// The request's id (a bandit makes one up when the client gave none: feedback names it).
    pub id: Option<String>,
    /// The outputs asked for, in the order asked (all of the signature's, in its order, when
    /// none were named).
    pub outputs: Vec<Tensor>,
    /// Response parameters: a composite names the variant that answered (`variant`).
    pub parameters: Map<String, Value>,
}

/// An answer and where its time went, for the statistics (Triton's `compute_input`, `queue`,
/// `compute_infer`; `compute_output` is the front-end's encoding, timed by the router).
#[derive(Debug)]
pub(crate) struct Answered {
    /// The answer.
    pub(crate) response: InferResponse,
    /// From arrival until the inputs were checked and ready.
    pub(crate) compute_input: Duration,
    /// Waiting in the version's queue.
    pub(crate) queue: Duration,
    /// Running the model.
    pub(crate) infer: Duration,
}

impl Answered {
    /// Where the request's time went, `started` being its arrival and `compute_output` the
    /// time spent encoding the answer (zero for a composite's target, which encodes nothing).
    pub(crate) fn times(&self, started: Instant, compute_output: Duration) -> RequestTimes {
        RequestTimes {
            total: started.elapsed(),
            queue: self.queue,
            compute_input: self.compute_input,
            compute_infer: self.infer,
            compute_output,
        }
    }
}

impl InferRequest {
    /// The outputs it asks for, as indices into `signature`'s outputs: all of them, in order,
    /// when it names none. A name asked for twice is refused (front-ends refuse it first, in
    /// their own words).
    pub(crate) fn output_indices(
        &self,
        signature: &ferroserve_core::Signature,
    ) -> Result<Vec<usize>, crate::error::InferError> {
        if self.outputs.is_empty() {
            return Ok((0..signature.outputs.len()).collect());
        }
        let mut indices = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let ix = signature.output_index(name)?;
            if indices.contains(&ix) {
                return Err(crate::error::InferError::Parameter {
                    parameter: "outputs".into(),
                    message: format!("output '{name}' is requested more than once"),
                });
            }
            indices.push(ix);
        }
        Ok(indices)
    }
}
