//! Running a decoded V2 request against a model version, shared by every V2 front-end and by
//! `ferroserve predict`.

use std::time::Instant;

use ferroserve_core::Tensor;

use crate::error::InferError;
use crate::protocol::status::ApiError;
use crate::protocol::v2::codec::{EncodedResponse, ProtocolError, V2Request, encode_response};
use crate::repository::LoadedVersion;
use crate::scheduler::Request;
use crate::stats::RequestTimes;

/// A V2 request that ran: the outputs asked for (each with whether it goes back binary) and
/// where its time went, to be encoded by the front-end and then [`Ran::finish`]ed.
#[derive(Debug)]
pub struct Ran {
    /// The client's request id.
    pub id: Option<String>,
    /// The selected outputs, in the order asked for.
    pub outputs: Vec<(Tensor, bool)>,
    started: Instant,
    compute_input: std::time::Duration,
    queue: std::time::Duration,
    infer: std::time::Duration,
}

impl Ran {
    /// Records the success in the version's statistics; `encoding` started when the front-end
    /// began encoding the answer.
    pub fn finish(&self, version: &LoadedVersion, encoding: Instant) {
        version.stats.record_success(RequestTimes {
            total: self.started.elapsed(),
            queue: self.queue,
            compute_input: self.compute_input,
            compute_infer: self.infer,
            compute_output: encoding.elapsed(),
        });
    }
}

/// Validates `request` against `version`, runs it through the version's queue and encodes the
/// outputs asked for. `started` is when the request arrived; a success is recorded in the
/// version's statistics here, a failure by the caller.
pub async fn execute(
    version: &LoadedVersion,
    request: V2Request,
    started: Instant,
) -> Result<EncodedResponse, ApiError> {
    let ran = run(version, request, started).await?;
    let encoding = Instant::now();
    let encoded = encode_response(
        &version.model_name,
        version.version,
        ran.id.as_deref(),
        &ran.outputs,
    );
    ran.finish(version, encoding);
    Ok(encoded)
}

/// Validates `request` against `version` and runs it through the version's queue; the outputs
/// asked for. Shared by every V2 front-end (HTTP, gRPC).
pub async fn run(
    version: &LoadedVersion,
    request: V2Request,
    started: Instant,
) -> Result<Ran, ApiError> {
    let V2Request {
        id,
        inputs,
        outputs: requested,
        binary_output,
        priority,
        timeout,
    } = request;
    let signature = &version.signature;
    let selection: Vec<(usize, bool)> = if requested.is_empty() {
        (0..signature.outputs.len())
            .map(|i| (i, binary_output))
            .collect()
    } else {
        requested
            .iter()
            .map(|o| {
                let ix = signature.output_index(&o.name).map_err(InferError::from)?;
                Ok((ix, o.binary.unwrap_or(binary_output)))
            })
            .collect::<Result<_, ApiError>>()?
    };
    if let Some(dup) = requested
        .iter()
        .enumerate()
        .find(|(i, o)| requested[..*i].iter().any(|p| p.name == o.name))
    {
        return Err(ProtocolError::Json {
            message: format!("output '{}' is requested more than once", dup.1.name),
        }
        .into());
    }
    let inputs = signature
        .validate_inputs(inputs, version.max_batch_size)
        .map_err(InferError::from)?;
    let rows = match version.max_batch_size {
        0 => 1,
        _ => inputs.first().and_then(Tensor::batch_size).unwrap_or(1),
    };
    let compute_input = started.elapsed();

    let executed = version
        .scheduler
        .infer(Request {
            inputs,
            rows,
            priority,
            timeout,
        })
        .await?;

    let mut outputs: Vec<Option<Tensor>> = executed.outputs.into_iter().map(Some).collect();
    let selected: Vec<(Tensor, bool)> = selection
        .iter()
        .map(|&(ix, binary)| {
            (
                outputs[ix].take().expect("each output is selected once"),
                binary,
            )
        })
        .collect();
    Ok(Ran {
        id,
        outputs: selected,
        started,
        compute_input,
        queue: executed.queue,
        infer: executed.infer,
    })
}
