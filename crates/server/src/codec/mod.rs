//! V2 inference bodies: JSON and the binary tensor data extension, both ways.
//!
//! - [`request`]: a body (JSON header + optional binary part) into a [`V2Request`].
//! - [`response`]: output tensors into a body.
//! - [`json`]: typed element parsing of `data` (flat or nested).
//! - [`binary`]: little-endian tensor bytes read back, BYTES with 4-byte length prefixes.

pub(crate) mod binary;
pub(crate) mod json;
pub(crate) mod request;
pub(crate) mod response;

use ferroserve_core::Tensor;

use crate::inference::{InferRequest, RequestContext};

pub(crate) use request::input_header;
pub(crate) use request::{Expected, RequestLimits, decode_request, plan_request};
pub(crate) use response::{EncodedResponse, TensorJson, encode_response};

/// Deserializes one whole JSON document: serde's message names the field at fault (its
/// path, `inputs[0].shape[1]`), and anything but white space after the document is refused
/// rather than ignored (a form post cannot hide a JSON body behind other bytes).
pub(crate) fn json_document<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| e.to_string())?;
    de.end()
        .map_err(|e| format!("{e} after the JSON document"))?;
    Ok(value)
}

/// The header carrying the JSON part's length when a binary part follows.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// A decoded V2 inference request.
#[derive(Clone, Debug, Default)]
pub(crate) struct V2Request {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// The input tensors, in the order given.
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, in order; empty = all outputs.
    pub outputs: Vec<RequestedOutput>,
    /// Whether outputs not asked for individually come back binary (`binary_data_output`).
    pub binary_output: bool,
    /// Request parameter `priority`: 1 is the highest level; absent or 0 the model's default.
    pub priority: Option<u64>,
    /// Request parameter `timeout`, given in microseconds as Triton's clients send it.
    pub timeout: Option<std::time::Duration>,
    /// Every request-level parameter as sent (composites route by them: `sticky_by`).
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

impl V2Request {
    /// The request for the router, and how its answer's outputs go back. An output named
    /// twice is refused here, in the protocol's words.
    pub(crate) fn into_request(self) -> Result<(InferRequest, OutputForm), ProtocolError> {
        let V2Request {
            id,
            inputs,
            outputs,
            binary_output,
            priority,
            timeout,
            parameters,
        } = self;
        if let Some((_, dup)) = outputs
            .iter()
            .enumerate()
            .find(|(i, o)| outputs[..*i].iter().any(|p| p.name == o.name))
        {
            return Err(ProtocolError::Json {
                message: format!("output '{}' is requested more than once", dup.name),
            });
        }
        let form = OutputForm {
            requested: outputs.iter().map(|o| o.binary).collect(),
            binary_output,
        };
        let request = InferRequest {
            id,
            inputs,
            outputs: outputs.into_iter().map(|o| o.name).collect(),
            priority,
            timeout,
            context: RequestContext {
                parameters,
                headers: Vec::new(),
            },
        };
        Ok((request, form))
    }
}

/// How a V2 answer sends each output: in the binary part (the binary tensor data extension)
/// or as JSON `data`.
#[derive(Clone, Debug, Default)]
pub(crate) struct OutputForm {
    /// Each requested output's `binary_data` parameter, in the order asked.
    requested: Vec<Option<bool>>,
    /// `binary_data_output`: the form of the outputs not asked for individually.
    binary_output: bool,
}

impl OutputForm {
    /// Each requested output's `binary_data` (in the order asked), and the form of the rest.
    #[cfg(test)]
    pub(crate) fn new(requested: Vec<Option<bool>>, binary_output: bool) -> OutputForm {
        OutputForm {
            requested,
            binary_output,
        }
    }

    /// Every output as JSON (`ferroserve predict` prints to a terminal or a file).
    pub(crate) fn json() -> OutputForm {
        OutputForm::default()
    }

    /// Whether the answer's output `ix` (in the order of the answer) goes back binary.
    pub(crate) fn binary(&self, ix: usize) -> bool {
        self.requested
            .get(ix)
            .copied()
            .flatten()
            .unwrap_or(self.binary_output)
    }
}

/// One entry of the request's `outputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// Its `binary_data` parameter, when given.
    pub binary: Option<bool>,
}

/// A request body that cannot be decoded, naming the field, tensor or header at fault.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The JSON is malformed or has a field of the wrong form.
    #[error("malformed request: {message}")]
    Json {
        /// serde's message, with the path of the field (`inputs[0].shape[1]`).
        message: String,
    },
    /// A tensor's description or data is wrong.
    #[error("input '{tensor}': {message}")]
    Tensor {
        /// The tensor at fault.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// A header is malformed or inconsistent with the body.
    #[error("header {header}: {message}")]
    Header {
        /// The header's name.
        header: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The binary part is shorter than the tensors it should hold.
    #[error(
        "input '{tensor}': binary data is truncated: {needed} bytes declared but only {available} remain in the body"
    )]
    BinaryTruncated {
        /// The tensor at fault.
        tensor: String,
        /// Bytes its `binary_data_size` declares.
        needed: usize,
        /// Bytes left in the body.
        available: usize,
    },
    /// Bytes follow the last binary tensor.
    #[error("the body has {extra} bytes after the last binary tensor")]
    BinaryTrailing {
        /// How many.
        extra: usize,
    },
    /// A request parameter the server does not implement.
    #[error("parameter '{parameter}' is not supported: {message}")]
    UnsupportedParameter {
        /// The parameter.
        parameter: String,
        /// Why, and what to do instead.
        message: String,
    },
    /// A tensor breaks a limit or does not fit its shape.
    #[error(transparent)]
    Validation(#[from] ferroserve_core::ValidationError),
    /// The request's inputs would take more memory decoded than one request may hold
    /// (checked from the header where it declares sizes, else while decoding, which stops there).
    #[error(
        "the request's inputs decode to at least {bytes} bytes, over the limit of {limit} bytes per request (--max-request-bytes)"
    )]
    DecodedTooLarge {
        /// Bytes the decoded inputs take, or would take.
        bytes: usize,
        /// The limit ([`RequestLimits::max_decoded_bytes`]).
        limit: usize,
    },
    /// The server's memory budget for requests in flight is spent (503).
    #[error(transparent)]
    OverBudget(#[from] crate::budget::OverBudget),
    /// The body is larger than the configured limit.
    #[error("request body exceeds the limit of {limit} bytes (--max-request-bytes)")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client stopped sending its body.
    #[error("no part of the request body arrived for {seconds} s")]
    BodyTimeout {
        /// The time waited.
        seconds: u64,
    },
}

impl ProtocolError {
    /// A [`ProtocolError::Tensor`].
    pub fn tensor(tensor: &str, message: impl Into<String>) -> ProtocolError {
        ProtocolError::Tensor {
            tensor: tensor.to_owned(),
            message: message.into(),
        }
    }
}
